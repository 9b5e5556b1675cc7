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
  connections(): number;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FreezableProxy> {
  const pairs = new Set<{ a: Socket; b: Socket; frozen: boolean; upFrozen: boolean }>();
  const server = createServer((a) => {
    const b = connect(targetPort, targetHost);
    const pair = { a, b, frozen: false, upFrozen: false };
    pairs.add(pair);
    a.on('data', (d) => {
      if (!pair.frozen && !pair.upFrozen) b.write(d);
    });
    b.on('data', (d) => {
      if (!pair.frozen) a.write(d);
    });
    const end = () => {
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
