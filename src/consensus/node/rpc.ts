/**
 * A validator's local HTTP endpoint (loopback by default): how a gateway that is not itself a
 * validator submits transactions to the member's validator and learns which became final, and how
 * an operator or a test reads the node's status. Plain node:http, JSON; no authentication, so bind
 * it to loopback or a trusted interface only.
 *
 *   POST /v1/txs              body: NDJSON, one transaction per line (canonical JSON is one line);
 *                             answer: {"results":[{"accepted":true,"id":hex} | {"accepted":false,"reason","detail"}]}
 *   GET  /v1/status           ConsensusNode.status()
 *   GET  /v1/metrics          ConsensusNode.metrics()
 *   GET  /v1/blocks/<height>  the certified block (codec JSON form)
 *   GET  /v1/proofs/<tx id>   inclusion proof (audit path, header, certificate) of a committed tx
 *   GET  /v1/commits          server-sent events, one per committed block:
 *                             {"height","blockHash","txIds":[hex…],"atMs"}
 *
 * Bounds: a request body is at most `bodyBytesMax` (413 beyond); at most `subscribersMax` commit
 * streams (503 beyond); a subscriber whose socket buffers more than `subscriberBufferBytesMax`
 * unsent bytes is disconnected (it reconnects and reads the blocks it missed with /v1/blocks):
 * a slow reader must not make the validator hold its backlog.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fromHex, toHex } from '../../crypto/hash.ts';
import { inclusionProofToJson } from '../../store/chain.ts';
import { certifiedBlockToJson } from '../codec.ts';
import type { ConsensusNode } from '../node.ts';

export interface RpcOptions {
  host?: string;
  /** 0 = any free port (see {@link RpcServer.url}). */
  port?: number;
  bodyBytesMax?: number;
  subscribersMax?: number;
  subscriberBufferBytesMax?: number;
}

export interface RpcServer {
  /** e.g. http://127.0.0.1:4100 */
  readonly url: string;
  close(): Promise<void>;
}

const newline = 0x0a;

export async function startRpc(node: ConsensusNode, options: RpcOptions = {}): Promise<RpcServer> {
  const bodyBytesMax = options.bodyBytesMax ?? 32 * 1024 * 1024;
  const subscribersMax = options.subscribersMax ?? 16;
  const bufferMax = options.subscriberBufferBytesMax ?? 8 * 1024 * 1024;
  const subscribers = new Set<ServerResponse>();

  const unsubscribe = node.onCommitted((e) => {
    if (subscribers.size === 0) return;
    const line = `data: ${JSON.stringify({
      height: e.height,
      blockHash: toHex(e.blockHash),
      txIds: e.txIds.map(toHex),
      atMs: Date.now(),
    })}\n\n`;
    for (const res of subscribers) {
      if (res.writableLength > bufferMax) {
        subscribers.delete(res);
        res.destroy();
        continue;
      }
      res.write(line);
    }
  });

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (req.method === 'POST' && path === '/v1/txs') {
      const body = await readBody(req, bodyBytesMax);
      if (!body) return json(res, 413, { error: `body above ${bodyBytesMax} bytes` });
      const txs = splitLines(body);
      try {
        const results = node
          .submit(txs)
          .map((r) =>
            r.accepted
              ? { accepted: true, id: toHex(r.id) }
              : { accepted: false, reason: r.reason, detail: r.detail },
          );
        return json(res, 200, { results });
      } catch (err) {
        return json(res, err instanceof RangeError ? 400 : 503, { error: (err as Error).message });
      }
    }
    if (req.method !== 'GET') return json(res, 405, { error: 'method not allowed' });
    if (path === '/v1/status') return json(res, 200, node.status());
    if (path === '/v1/metrics') return json(res, 200, node.metrics());
    const block = /^\/v1\/blocks\/(\d{1,15})$/.exec(path);
    if (block) {
      const cb = node.store.blockAt(Number(block[1]));
      return cb ? json(res, 200, certifiedBlockToJson(cb)) : json(res, 404, { error: 'no such block' });
    }
    const proof = /^\/v1\/proofs\/([0-9a-f]{64})$/.exec(path);
    if (proof) {
      const p = node.store.inclusionProof(fromHex(proof[1]!));
      return p ? json(res, 200, inclusionProofToJson(p)) : json(res, 404, { error: 'not committed' });
    }
    if (path === '/v1/commits') {
      if (subscribers.size >= subscribersMax) return json(res, 503, { error: 'too many subscribers' });
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(': committed blocks\n\n');
      subscribers.add(res);
      res.on('close', () => subscribers.delete(res));
      return;
    }
    return json(res, 404, { error: 'not found' });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: (err as Error).message });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    close: async () => {
      unsubscribe();
      for (const res of subscribers) res.destroy();
      subscribers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The request body, or undefined if it exceeds `max` bytes (the rest is not read). */
async function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).byteLength;
    if (bytes > max) {
      req.destroy();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Non-empty lines as separate byte arrays (copies: the core keeps transactions). */
function splitLines(body: Buffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= body.byteLength; i++) {
    if (i === body.byteLength || body[i] === newline) {
      let end = i;
      if (end > start && body[end - 1] === 0x0d) end--;
      if (end > start) out.push(new Uint8Array(body.subarray(start, end)));
      start = i + 1;
    }
  }
  return out;
}
