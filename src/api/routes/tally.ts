/**
 * The output tally (issue 11; MASBC §4.3, the basis for splitting profit): events per member, kind
 * and period, counted from committed envelopes alone (never bodies), so every validator holding the
 * same blocks answers the same bytes. Periods are UTC days or months of the envelope's
 * `sourceTimeMs` (the device's time, signed by the gateway), or the whole range (`all`).
 *
 *   GET /v1/tally?from=<ISO date|ms>&to=<ISO date|ms>[&period=day|month|all][&at=<height>]
 *   → {"chainId","asOfHeight","blockHash","from","to","period","rows":[{member,kind,period,count}]}
 *
 * `from` is inclusive, `to` exclusive. `at` asks for the tally as of a lower height (what another
 * member answered, say); the default is the current height. Rows are sorted by member, period, kind.
 *
 * Bounds: the per-day counts kept in memory (`tallyCellsMax`; beyond, 503 `tally_too_large`), the
 * range (`tallyRangeMaxMs`), and blocks read per turn of the event loop while catching up
 * (`tallyBlocksPerTurn`).
 */
import type { FastifyInstance } from 'fastify';
import { decodeTx } from '../../consensus/app/tx.ts';
import { blockHash } from '../../consensus/core/signing.ts';
import type { ConsensusNode } from '../../consensus/runtime/node.ts';
import { toHex } from '../../crypto/hash.ts';
import { type AccessCounters, refuse } from '../auth/policy.ts';

export const tallyCellsMax = 1_000_000;
export const tallyRangeMaxMs = 100 * 366 * 86_400_000;
export const tallyBlocksPerTurn = 256;
const dayMs = 86_400_000;

export const tallyPeriods = ['day', 'month', 'all'] as const;
export type TallyPeriod = (typeof tallyPeriods)[number];

export interface TallyRow {
  member: string;
  kind: string;
  period: string;
  count: number;
}

export interface Tally {
  chainId: string;
  asOfHeight: number;
  blockHash: string;
  from: string;
  to: string;
  period: TallyPeriod;
  rows: TallyRow[];
}

export class TallyTooLarge extends Error {
  override name = 'TallyTooLarge';
}

/** Per-day counts `member\tkind\tdayStartMs` → count, from height 1 to `height`. */
export class DayCounts {
  height = 0;
  readonly cells = new Map<string, number>();

  /** Folds the envelopes of one committed block (batches only; other transactions count nothing). */
  add(txs: readonly Uint8Array[], height: number): void {
    if (height !== this.height + 1) throw new Error(`tally: block ${height} after ${this.height}`);
    for (const tx of txs) {
      const d = decodeTx(tx);
      if (!d.ok) continue;
      for (const e of d.batch.envelopes) {
        const key = `${e.enterprise}\t${e.kind}\t${Math.floor(e.sourceTimeMs / dayMs) * dayMs}`;
        const n = this.cells.get(key);
        if (n === undefined && this.cells.size >= tallyCellsMax)
          throw new TallyTooLarge(`more than ${tallyCellsMax} member/kind/day counts`);
        this.cells.set(key, (n ?? 0) + 1);
      }
    }
    this.height = height;
  }
}

function periodOf(dayStartMs: number, period: TallyPeriod, from: string): string {
  const iso = new Date(dayStartMs).toISOString();
  return period === 'day' ? iso.slice(0, 10) : period === 'month' ? iso.slice(0, 7) : from;
}

/** The rows of `counts` within [fromMs, toMs), grouped by `period`; deterministic order. */
export function tallyRows(counts: DayCounts, fromMs: number, toMs: number, period: TallyPeriod): TallyRow[] {
  const from = new Date(fromMs).toISOString();
  const grouped = new Map<string, TallyRow>();
  for (const [key, count] of counts.cells) {
    const [member, kind, day] = key.split('\t') as [string, string, string];
    const dayStart = Number(day);
    // A day counts when it lies inside the range; ranges are meant in whole days (documented).
    if (dayStart < Math.floor(fromMs / dayMs) * dayMs || dayStart >= toMs) continue;
    const p = periodOf(dayStart, period, from);
    const k = `${member}\t${p}\t${kind}`;
    const row = grouped.get(k);
    if (row) row.count += count;
    else grouped.set(k, { member, kind, period: p, count });
  }
  return [...grouped.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
}

const isoDate = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?Z)?$/;

/** Parses `from`/`to`: an ISO date (UTC) or ms since the epoch. */
export function parseInstant(text: string | undefined): number | undefined {
  if (text === undefined || text.length > 32) return undefined;
  if (/^\d{1,16}$/.test(text)) return Number(text);
  if (!isoDate.test(text)) return undefined;
  const ms = Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text);
  return Number.isFinite(ms) ? ms : undefined;
}

/** Registers GET /v1/tally. */
export function registerTally(app: FastifyInstance, node: ConsensusNode, counters: AccessCounters): void {
  const live = new DayCounts();
  let catchingUp: Promise<void> | null = null;

  async function advance(counts: DayCounts, to: number): Promise<void> {
    while (counts.height < to) {
      const stop = Math.min(to, counts.height + tallyBlocksPerTurn);
      while (counts.height < stop) {
        const cb = node.store.blockAt(counts.height + 1);
        if (!cb) throw new Error(`block ${counts.height + 1} is missing from the store`);
        counts.add(cb.block.txs, counts.height + 1);
      }
      if (counts.height < to) await new Promise((r) => setImmediate(r));
    }
  }

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/tally', async (req, reply) => {
    const q = req.query;
    const fromMs = parseInstant(q.from);
    const toMs = parseInstant(q.to);
    const period = (q.period ?? 'day') as TallyPeriod;
    const tip = node.store.height;
    const at = q.at === undefined ? tip : /^\d{1,15}$/.test(q.at) ? Number(q.at) : Number.NaN;
    if (
      fromMs === undefined ||
      toMs === undefined ||
      !(toMs > fromMs) ||
      toMs - fromMs > tallyRangeMaxMs ||
      !tallyPeriods.includes(period) ||
      !(at >= 0 && at <= tip)
    ) {
      return refuse(reply, counters, {
        status: 400,
        code: 'bad_query',
        message: `expected from and to (ISO dates or ms, from < to, at most ${tallyRangeMaxMs / dayMs / 366} years), period day|month|all, at ≤ ${tip}`,
      });
    }
    let counts = live;
    try {
      if (at >= live.height) {
        // One catch-up at a time; later requests wait for it.
        while (live.height < at) {
          catchingUp ??= advance(live, at).finally(() => {
            catchingUp = null;
          });
          await catchingUp;
        }
      }
      if (live.height !== at) {
        counts = new DayCounts();
        await advance(counts, at);
      }
    } catch (err) {
      if (err instanceof TallyTooLarge)
        return reply.code(503).send({ code: 'tally_too_large', error: err.message });
      throw err;
    }
    const head = at === 0 ? null : node.store.blockAt(at);
    const tally: Tally = {
      chainId: node.genesis.chainId,
      asOfHeight: at,
      blockHash: head ? toHex(blockHash(head.block.header)) : toHex(node.genesis.hashBytes),
      from: new Date(fromMs).toISOString(),
      to: new Date(toMs).toISOString(),
      period,
      rows: tallyRows(counts, fromMs, toMs, period),
    };
    return tally;
  });
}
