/**
 * Durability under kill -9: a child appends to the outbox and reports each acknowledged seq; we kill
 * it at random moments, reopen, and check that every acknowledged event is there, intact, with an
 * unbroken seq/prev chain. (SIGKILL leaves the OS page cache intact, so this proves crash safety of
 * the transaction design, not power-loss safety; that rests on synchronous=FULL, see docs/store.md.)
 */
import { spawn } from 'node:child_process';

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateKey, writeKeyFile } from '../../src/crypto/keys.ts';
import { emptyHead } from '../../src/event/signer.ts';
import { BatchVerifier, checkLink, keyRegistry } from '../../src/event/verify.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { testSeed, withSeed } from '../helpers/seed.ts';
import { tempDir } from '../helpers/tmp.ts';

const kills = Number(process.env.KILL9_ROUNDS ?? 50);
const fixture = join(import.meta.dirname, 'fixtures', 'appender.ts');

/** Runs the appender until it has acknowledged something, waits a random moment, kills it. */
function runAndKill(path: string, keyFile: string, seed: number, delayMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, path, keyFile, String(seed)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let acked = -1;
    let buffer = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const line of lines) {
        const [word, n] = line.split(' ');
        if (word === 'ack') acked = Math.max(acked, Number(n));
        if (word === 'ack' && !timer) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('exit', (_code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`appender exited on its own: ${stderr}`));
      else resolve(acked);
    });
  });
}

describe('outbox durability under kill -9', () => {
  it(`keeps every acknowledged event, intact and chained, across ${kills} kills at random moments`, {
    timeout: 180_000,
  }, async () => {
    const dir = tempDir('kill9');
    const path = join(dir, 'outbox.db');
    const keyFile = join(dir, 'gw.key');
    const key = generateKey();
    writeKeyFile(keyFile, key);
    const verifier = new BatchVerifier(keyRegistry([{ ...key, enterprise: 'acme', gateway: 'gw1' }]));
    let acknowledged = 0;
    let checked = 0;
    // The kill delays come from a seed: a failure names it, KILL9_SEED replays the same delays.
    const s = testSeed('KILL9_SEED');
    await withSeed(s, async () => {
      for (let round = 1; round <= kills; round++) {
        const acked = await runAndKill(path, keyFile, round, s.rng.int(0, 59));
        acknowledged = Math.max(acknowledged, acked);
        const outbox = Outbox.open({ path, verifier, maxBytes: 1 << 30, maxRows: 10_000_000 });
        try {
          // Every acknowledged event is there; anything after it was written in a committed transaction.
          expect(outbox.head.seq, `round ${round}`).toBeGreaterThanOrEqual(acknowledged);
          let head = emptyHead;
          for (let after = 0; ; ) {
            const batches = outbox.pending({ afterSeq: after, eventsMax: 5_000 });
            if (batches.length === 0) break;
            for (const b of batches) {
              const decoded = verifier.verify(b.tx);
              checkLink(head, decoded.header);
              head = { seq: b.firstSeq + b.count - 1, id: b.events.at(-1)!.id };
            }
            after = batches.at(-1)!.firstSeq;
          }
          expect(head, `round ${round}`).toEqual(outbox.head);
          expect(outbox.stats().corrupt).toEqual([]);
          checked = head.seq;
          acknowledged = head.seq;
        } finally {
          outbox.close();
        }
      }
      expect(checked).toBeGreaterThan(kills);
    });
  });
});
