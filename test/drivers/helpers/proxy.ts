/**
 * A TCP proxy that can go silent without closing anything: what a pulled cable or a wedged peer
 * looks like to a client (no FIN, no RST, just no bytes).
 */
import { connect, createServer, type Socket } from 'node:net';

export interface FreezableProxy {
  port: number;
  /**
   * Stops forwarding on every current connection (they stay open): in both directions, or only from
   * the client to the server (`'upstream'`: the client's bytes, say its acknowledgements, are lost).
   */
  freeze(direction?: 'both' | 'upstream'): void;
  /** New connections forward normally again (frozen ones stay frozen until closed). */
  thaw(): void;
  /**
   * Resets every current connection, both ends, while the server behind stays up: a cable pulled and
   * plugged back, a switch rebooting. The listener keeps accepting.
   */
  drop(): void;
  connections(): number;
  close(): Promise<void>;
}

export async function startProxy(
  targetPort: number,
  targetHost = '127.0.0.1',
  options: {
    /**
     * Hold the server's bytes and pass them on every `coalesceMs` in one write: several responses
     * then reach the client in one socket read, as on a slow link or a loaded machine.
     */
    coalesceMs?: number;
  } = {},
): Promise<FreezableProxy> {
  const pairs = new Set<{ a: Socket; b: Socket; frozen: boolean; upFrozen: boolean }>();
  const server = createServer((a) => {
    const b = connect(targetPort, targetHost);
    const pair = { a, b, frozen: false, upFrozen: false };
    pairs.add(pair);
    a.on('data', (d) => {
      if (!pair.frozen && !pair.upFrozen) b.write(d);
    });
    let held: Buffer[] = [];
    const flush = () => {
      if (held.length > 0 && !pair.frozen) a.write(Buffer.concat(held));
      held = [];
    };
    const timer = options.coalesceMs ? setInterval(flush, options.coalesceMs) : undefined;
    b.on('data', (d) => {
      if (pair.frozen) return;
      if (timer) held.push(d);
      else a.write(d);
    });
    const end = () => {
      clearInterval(timer);
      pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    a.on('close', end);
    b.on('close', end);
    a.on('error', end);
    b.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    freeze(direction = 'both') {
      for (const p of pairs) {
        if (direction === 'both') p.frozen = true;
        else p.upFrozen = true;
      }
    },
    thaw() {},
    drop() {
      for (const p of pairs) {
        p.a.resetAndDestroy();
        p.b.resetAndDestroy();
      }
    },
    connections: () => pairs.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of pairs) {
          p.a.destroy();
          p.b.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
