/**
 * Real signed batches for the runtime's tests: the test gateways a local alliance's genesis
 * registers (`createLocalAlliance({ gateways })`), and a stranger the genesis does not know, signing
 * batches (src/event/signer.ts) as transactions ready to submit, with their bodies. Each gateway
 * signs one seq/prev chain, which the ledger commits only in order.
 */
import { gatewayRegistryOf } from '../../../src/consensus/app/registry.ts';
import type { SubmitBatch } from '../../../src/consensus/runtime/client.ts';
import { generateKey, loadKeyFile, type Signer } from '../../../src/crypto/keys.ts';
import type { LocalAlliance } from '../../../src/devtools/local-alliance.ts';
import { type EventRecord, encodeBody } from '../../../src/event/event.ts';
import { type ChainHead, EventSigner, emptyHead } from '../../../src/event/signer.ts';
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

function gatewayOf(enterprise: string, gateway: string, key: Signer): TestGateway {
  const identity = { enterprise, site: 'site', line: 'line', gateway };
  return { chain: `${enterprise}/${gateway}`, signer: new EventSigner(identity, key), head: emptyHead };
}

/** The gateways registered in the alliance's genesis, in the order of its `gateways:` list. */
export function allianceGateways(alliance: LocalAlliance): GatewaySet {
  const gateways = alliance.genesis.gateways.map((g) =>
    gatewayOf(
      g.memberId,
      g.gateway,
      loadKeyFile(alliance.gatewayKeyFiles.get(`${g.memberId}/${g.gateway}`)!),
    ),
  );
  return { gateways, registry: gatewayRegistryOf(alliance.genesis) };
}

/** A gateway whose key no genesis registers: its events are refused as unknown_key. */
export function strangerGateway(): TestGateway {
  return gatewayOf('member-1', 'gw-stranger', generateKey('ed25519'));
}

let partCounter = 0;

export interface SignedEvents {
  events: EventRecord[];
  /** One submission per batch: the transaction and its bodies. */
  batches: SubmitBatch[];
  /** The transactions alone (what the node takes). */
  bytes: Uint8Array[];
  /** Their ids, hex. */
  txIds: string[];
}

/** `count` part-completed events from `gw`, `perBatch` to a signed batch (one transaction each). */
export function signEvents(gw: TestGateway, count: number, perBatch = 1): SignedEvents {
  const out: SignedEvents = { events: [], batches: [], bytes: [], txIds: [] };
  for (let done = 0; done < count; done += perBatch) {
    const drafts = Array.from({ length: Math.min(perBatch, count - done) }, () => {
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
    const { batch, events, head } = gw.signer.sign(drafts, gw.head);
    gw.head = head;
    out.events.push(...events);
    out.batches.push({ tx: batch.tx, bodies: events.map((e) => encodeBody(e.body!)) });
    out.bytes.push(batch.tx);
    out.txIds.push(batch.txId);
  }
  return out;
}
