/**
 * Real signed production events for the runtime's tests and benchmark: test gateways with Ed25519
 * keys, their key list (the file `masbc-edge peer --gateway-keys` reads), and events signed per
 * event or per batch (src/edge/signer.ts), as canonical bytes ready to submit.
 */
import { writeFileSync } from 'node:fs';
import type { GatewayKeysDocument } from '../../../src/consensus/node/events.ts';
import { generateKey, publicKeyRecord } from '../../../src/crypto/keys.ts';
import { encodeEvent, type SignedEvent } from '../../../src/edge/event.ts';
import { type ChainHead, EventSigner, emptyHead, type SigningMode } from '../../../src/edge/signer.ts';
import { type GatewayKey, type KeyRegistry, keyRegistry } from '../../../src/edge/verify.ts';

export interface TestGateway {
  signer: EventSigner;
  head: ChainHead;
  key: GatewayKey;
}

export interface GatewaySet {
  gateways: TestGateway[];
  registry: KeyRegistry;
  document: GatewayKeysDocument;
}

export function testGateways(count: number, mode: SigningMode = 'event'): GatewaySet {
  const gateways = Array.from({ length: count }, (_, i) => {
    const key = generateKey('ed25519');
    const identity = { enterprise: `ent-${i + 1}`, site: 'site', line: 'line', gateway: `gw-${i + 1}` };
    const gatewayKey: GatewayKey = {
      keyId: key.keyId,
      alg: key.alg,
      publicKey: key.publicKey,
      enterprise: identity.enterprise,
      gateway: identity.gateway,
    };
    return { signer: new EventSigner(identity, key, { mode }), head: emptyHead, key: gatewayKey };
  });
  return {
    gateways,
    registry: keyRegistry(gateways.map((g) => g.key)),
    document: {
      gateways: gateways.map((g) => ({
        enterprise: g.key.enterprise,
        gateway: g.key.gateway,
        publicKey: publicKeyRecord(g.key),
      })),
    },
  };
}

export function writeGatewayKeys(file: string, set: GatewaySet): void {
  writeFileSync(file, JSON.stringify(set.document));
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
