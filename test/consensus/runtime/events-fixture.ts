/**
 * Real signed production events for the runtime's tests: the test gateways a local alliance's
 * genesis registers (`createLocalAlliance({ gateways })`), and a stranger the genesis does not know,
 * signing per event or per batch (src/event/signer.ts) as canonical bytes ready to submit. Each
 * gateway signs one seq/prev chain, which the ledger commits only in order.
 */
import { gatewayRegistryOf } from '../../../src/consensus/app/registry.ts';
import { generateKey, loadKeyFile, type Signer } from '../../../src/crypto/keys.ts';
import type { LocalAlliance } from '../../../src/devtools/local-alliance.ts';
import { encodeEvent, type SignedEvent } from '../../../src/event/event.ts';
import { type ChainHead, EventSigner, emptyHead, type SigningMode } from '../../../src/event/signer.ts';
import type { KeyRegistry } from '../../../src/event/verify.ts';

export interface TestGateway {
  /** `member/gateway`: the ledger's chain key. */
  chain: string;
  signer: EventSigner;
  head: ChainHead;
}

export interface GatewaySet {
  gateways: TestGateway[];
  /** The genesis's registry (what every validator checks events against). */
  registry: KeyRegistry;
}

function gatewayOf(enterprise: string, gateway: string, key: Signer, mode: SigningMode): TestGateway {
  const identity = { enterprise, site: 'site', line: 'line', gateway };
  return {
    chain: `${enterprise}/${gateway}`,
    signer: new EventSigner(identity, key, { mode }),
    head: emptyHead,
  };
}

/** The gateways registered in the alliance's genesis, in the order of its `gateways:` list. */
export function allianceGateways(alliance: LocalAlliance, mode: SigningMode = 'event'): GatewaySet {
  const gateways = alliance.genesis.gateways.map((g) =>
    gatewayOf(
      g.memberId,
      g.gateway,
      loadKeyFile(alliance.gatewayKeyFiles.get(`${g.memberId}/${g.gateway}`)!),
      mode,
    ),
  );
  return { gateways, registry: gatewayRegistryOf(alliance.genesis) };
}

/** A gateway whose key no genesis registers: its events are refused as unknown_key. */
export function strangerGateway(mode: SigningMode = 'event'): TestGateway {
  return gatewayOf('member-1', 'gw-stranger', generateKey('ed25519'), mode);
}

let partCounter = 0;

/** `count` part-completed events from `gw`, signed in one call (one batch in 'batch' mode). */
export function signEvents(gw: TestGateway, count: number): { events: SignedEvent[]; bytes: Uint8Array[] } {
  const drafts = Array.from({ length: count }, () => {
    partCounter++;
    return {
      kind: 'part_completed' as const,
      dataClass: 'process' as const,
      station: 'cnc-1',
      device: 'cnc-1',
      sourceTimeMs: 1_767_000_000_000 + partCounter,
      lot: `LOT-${Math.floor(partCounter / 100)}`,
      product: `SN-${partCounter}`,
      values: { diameter: { v: 12 + (partCounter % 7) / 100, unit: 'mm', q: 'good' as const } },
    };
  });
  const { events, head } = gw.signer.sign(drafts, gw.head);
  gw.head = head;
  const enc = new TextEncoder();
  return { events, bytes: events.map((e) => enc.encode(encodeEvent(e))) };
}
