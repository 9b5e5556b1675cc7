/**
 * Bodies never reach the network: four validators assembled as `peer` and a gateway assemble them
 * (src/validator/validator.ts), over real libp2p on loopback. acme's batches go in with their bodies
 * through acme's validator; every payload any validator hands to the libp2p transport is recorded
 * before it is encrypted (the wire is Noise-encrypted, so this is where a leak would show), and none
 * holds a byte of a body. The bodies are in acme's body store, and in no other member's.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Libp2pTransport } from '../../src/consensus/net/libp2p.ts';
import { decodeMessage } from '../../src/consensus/wire/codec.ts';
import { toHex } from '../../src/crypto/hash.ts';
import { loadKeyFile } from '../../src/crypto/keys.ts';
import { createLocalAlliance } from '../../src/devtools/local-alliance.ts';
import { encodeBody } from '../../src/event/event.ts';
import { EventSigner, emptyHead } from '../../src/event/signer.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { type RunningValidator, startValidator } from '../../src/validator/validator.ts';
import { until } from '../consensus/runtime/cluster-fixture.ts';
import { tempDir } from '../helpers/tmp.ts';

const sent: Uint8Array[] = [];
const send = Libp2pTransport.prototype.send;
const broadcast = Libp2pTransport.prototype.broadcast;
Libp2pTransport.prototype.send = function (to, payload) {
  sent.push(payload.slice());
  return send.call(this, to, payload);
};
Libp2pTransport.prototype.broadcast = function (payload) {
  sent.push(payload.slice());
  return broadcast.call(this, payload);
};

const validators: RunningValidator[] = [];
afterAll(async () => {
  for (const v of validators) await v.stop();
  Libp2pTransport.prototype.send = send;
  Libp2pTransport.prototype.broadcast = broadcast;
});

describe('bodies and the network', () => {
  it('no body byte is handed to the libp2p transport; the bodies are in their member store only', async () => {
    const dir = tempDir('privacy');
    const members = ['acme', 'borealis', 'cobalt', 'dynamo'];
    const alliance = await createLocalAlliance({
      dir: join(dir, 'alliance'),
      members,
      chainId: 'privacy',
      gateways: { acme: ['gw-1'] },
      params: { viewChangeTimeoutMs: 1_000 } as never,
    });
    for (const m of members) {
      validators.push(
        await startValidator({
          genesisFile: alliance.genesisFile,
          keyFile: alliance.keyFiles.get(m)!,
          dataDir: join(dir, 'data', m),
          timing: { statusIntervalMs: 100 },
          log: silentLogger,
        }),
      );
    }
    const acme = validators[0]!;
    const signer = new EventSigner(
      { enterprise: 'acme', site: 'plant-secret', line: 'line-secret', gateway: 'gw-1' },
      loadKeyFile(alliance.gatewayKeyFiles.get('acme/gw-1')!),
    );
    let head = emptyHead;
    const secrets = new Set<string>();
    const txIds: string[] = [];
    for (let round = 0; round < 5; round++) {
      const drafts = Array.from({ length: 20 }, (_, i) => ({
        kind: 'part_completed' as const,
        dataClass: 'process' as const,
        station: 'ST-SECRET',
        device: 'cnc-secret',
        sourceTimeMs: 1_767_000_000_000 + round * 100 + i,
        lot: `LOT-SECRET-${round}`,
        order: 'ORD-ACME-7',
        product: `SN-SECRET-${round}-${i}`,
        values: { diameter: { v: 25.003 + i / 1000, unit: 'mm', q: 'good' as const } },
      }));
      const r = signer.sign(drafts, head);
      head = r.head;
      const bodies = r.events.map((e) => encodeBody(e.body!));
      for (const e of r.events) {
        secrets.add(e.body!.salt);
        secrets.add(e.body!.product!);
      }
      const [v] = await acme.client.submit([{ tx: r.batch.tx, bodies }]);
      expect(v).toEqual({ accepted: true, bodiesKept: true });
      txIds.push(r.batch.txId);
    }
    for (const s of [
      'LOT-SECRET-',
      'ORD-ACME-7',
      'ST-SECRET',
      'cnc-secret',
      'plant-secret',
      'line-secret',
      '25.003',
    ])
      secrets.add(s);
    await until(
      () => validators.every((v) => txIds.every((id) => v.node.store.hasTx(Buffer.from(id, 'hex')))),
      'every batch final at every validator',
      30_000,
    );
    // Everything sent, as sent, and every transaction inside the messages as decoded (the wire form
    // may encode transaction bytes).
    const parts: Uint8Array[] = [...sent];
    for (const payload of sent) {
      const d = decodeMessage(payload);
      if (!d.ok) continue;
      const m = d.value;
      if (m.type === 'pre-prepare' || m.type === 'proposal-response') parts.push(...m.block.txs);
      if (m.type === 'txs') parts.push(...m.txs);
      if (m.type === 'sync-response') for (const cb of m.blocks) parts.push(...cb.block.txs);
    }
    // The batches did travel (the envelopes are in what was sent) ...
    const wire = Buffer.concat(parts).toString('latin1');
    expect(sent.length).toBeGreaterThan(20);
    const firstEnvelopeId = acme.bodies.byTx(txIds[0]!)[0]!.env.prev;
    expect(firstEnvelopeId).toBe('0'.repeat(64));
    expect(wire).toContain('"kind":"part_completed"');
    // ... and no body did.
    expect([...secrets].filter((x) => wire.includes(x))).toEqual([]);
    // The bodies: all in acme's store, none anywhere else.
    expect(acme.bodies.stats()).toMatchObject({ bodies: 100, committed: 100 });
    for (const v of validators.slice(1)) expect(v.bodies.stats().bodies).toBe(0);
    expect(toHex(Buffer.from(acme.bodies.byLot('LOT-SECRET-3', 100)[0]!.id, 'hex'))).toHaveLength(64);
  });
});
