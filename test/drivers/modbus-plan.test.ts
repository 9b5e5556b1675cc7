/** Pure tests of Modbus request planning and decoding: no server. */
import { describe, expect, it } from 'vitest';
import {
  type ByteOrder,
  decodeBit,
  encodeRegisters,
  registerDecoder,
} from '../../src/drivers/modbus/decode.ts';
import {
  type ModbusArea,
  type PlanTag,
  planProblems,
  planRequests,
  tagSize,
} from '../../src/drivers/modbus/plan.ts';

/** mulberry32: a small seeded PRNG so failures reproduce (the seed is in the test name). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const limits = { maxRegistersPerRequest: 125, maxBitsPerRequest: 2000, maxGapRegisters: 8, maxGapBits: 32 };
const orders: ByteOrder[] = ['ABCD', 'BADC', 'CDAB', 'DCBA'];

describe('planRequests', () => {
  it('merges contiguous and near-contiguous tags and splits at the gap limit', () => {
    const tags: PlanTag[] = [
      { unitId: 1, area: 'holding', address: 0, type: 'uint16' },
      { unitId: 1, area: 'holding', address: 1, type: 'float32' },
      { unitId: 1, area: 'holding', address: 11, type: 'uint16' }, // gap 8: merged
      { unitId: 1, area: 'holding', address: 21, type: 'uint16' }, // gap 9: new request
    ];
    expect(planRequests(tags, limits).map((r) => [r.address, r.count, r.tags])).toEqual([
      [0, 12, [0, 1, 2]],
      [21, 1, [3]],
    ]);
  });

  it('never exceeds the per-request maximum and keeps a gap of 0 strict', () => {
    const tags: PlanTag[] = Array.from({ length: 300 }, (_, i) => ({
      unitId: 1,
      area: 'input' as const,
      address: i,
      type: 'uint16' as const,
    }));
    const plan = planRequests(tags, limits);
    expect(plan.map((r) => r.count)).toEqual([125, 125, 50]);
    const strict = planRequests(
      [
        { unitId: 1, area: 'holding', address: 0, type: 'uint16' },
        { unitId: 1, area: 'holding', address: 2, type: 'uint16' },
      ],
      { ...limits, maxGapRegisters: 0 },
    );
    expect(strict).toHaveLength(2);
  });

  it('handles overlapping tags (a float and its low word read as int16) in one request', () => {
    const plan = planRequests(
      [
        { unitId: 1, area: 'holding', address: 4, type: 'float64' },
        { unitId: 1, area: 'holding', address: 5, type: 'int16' },
      ],
      limits,
    );
    expect(plan.map((r) => [r.address, r.count, r.tags])).toEqual([[4, 4, [0, 1]]]);
  });

  it('reports tags that cannot be planned', () => {
    const tag: PlanTag = { unitId: 1, area: 'holding', address: 65_535, type: 'uint32' };
    expect(planProblems([tag], limits)[0]?.message).toMatch(/runs past the last address/);
    const big: PlanTag = { unitId: 1, area: 'holding', address: 0, type: 'string', length: 40 };
    expect(planProblems([big], { ...limits, maxRegistersPerRequest: 10 })[0]?.message).toMatch(/at most 10/);
    expect(() => planRequests([big], { ...limits, maxRegistersPerRequest: 10 })).toThrow(RangeError);
  });

  for (const seed of [1, 2, 3, 42, 1234]) {
    it(`random maps (seed ${seed}): every tag covered once, limits kept, no two requests mergeable`, () => {
      const rnd = prng(seed);
      const areas: ModbusArea[] = ['coil', 'discrete', 'holding', 'input'];
      const types = ['int16', 'uint16', 'int32', 'uint32', 'float32', 'float64', 'string'] as const;
      const tags: PlanTag[] = Array.from({ length: 200 }, () => {
        const area = areas[Math.floor(rnd() * 4)]!;
        const bit = area === 'coil' || area === 'discrete';
        const type = bit ? 'bit' : types[Math.floor(rnd() * types.length)]!;
        return {
          unitId: 1 + Math.floor(rnd() * 3),
          area,
          address: Math.floor(rnd() * 3000),
          type,
          length: type === 'string' ? 1 + Math.floor(rnd() * 40) : undefined,
        };
      });
      const lim = {
        ...limits,
        maxRegistersPerRequest: 30 + Math.floor(rnd() * 96),
        maxGapRegisters: Math.floor(rnd() * 20),
      };
      const plan = planRequests(tags, lim);
      const seen = plan.flatMap((r) => r.tags).sort((a, b) => a - b);
      expect(seen).toEqual(tags.map((_, i) => i));
      for (const r of plan) {
        const bit = r.area === 'coil' || r.area === 'discrete';
        expect(r.count).toBeLessThanOrEqual(bit ? lim.maxBitsPerRequest : lim.maxRegistersPerRequest);
        for (const i of r.tags) {
          const t = tags[i]!;
          expect([t.unitId, t.area]).toEqual([r.unitId, r.area]);
          expect(t.address).toBeGreaterThanOrEqual(r.address);
          expect(t.address + tagSize(t)).toBeLessThanOrEqual(r.address + r.count);
        }
      }
      // Optimality of the greedy plan: the next request of the same unit and area could not have
      // taken its first tag (too far, or the span would exceed the limit).
      for (let k = 1; k < plan.length; k++) {
        const a = plan[k - 1]!;
        const b = plan[k]!;
        if (a.unitId !== b.unitId || a.area !== b.area) continue;
        const bit = a.area === 'coil' || a.area === 'discrete';
        const gap = b.address - (a.address + a.count);
        const first = tags[b.tags[0]!]!;
        const span = Math.max(a.address + a.count, first.address + tagSize(first)) - a.address;
        const tooFar = gap > (bit ? lim.maxGapBits : lim.maxGapRegisters);
        const tooBig = span > (bit ? lim.maxBitsPerRequest : lim.maxRegistersPerRequest);
        expect(tooFar || tooBig).toBe(true);
      }
    });
  }
});

describe('decoding', () => {
  const numeric = [
    ['int16', [-32768, -1, 0, 1, 32767]],
    ['uint16', [0, 1, 65535]],
    ['int32', [-2147483648, -1, 0, 70000, 2147483647]],
    ['uint32', [0, 1, 4294967295]],
    // A float32 decodes as the shortest decimal that is the same float32 (3.14, not 3.140000104904175).
    ['float32', [0, -0.5, 3.14, 1e30, Number.POSITIVE_INFINITY]],
    ['float64', [0, Math.PI, -1e-300, Number.MAX_VALUE]],
  ] as const;
  for (const [type, values] of numeric) {
    it(`${type} round-trips in every byte order`, () => {
      for (const byteOrder of orders) {
        for (const v of values) {
          const words = encodeRegisters(v, { type, byteOrder });
          const bytes = Buffer.alloc(words.length * 2 + 2);
          for (let i = 0; i < words.length; i++) bytes.writeUInt16BE(words[i]!, 2 + 2 * i);
          expect(registerDecoder({ type, byteOrder, scale: 1, offset: 0 }).decode(bytes, 1)).toBe(v);
        }
      }
    });
  }

  it('float32 NaN decodes as NaN', () => {
    const words = encodeRegisters(Number.NaN, { type: 'float32', byteOrder: 'ABCD' });
    const bytes = Buffer.from(words.flatMap((w) => [w >> 8, w & 0xff]));
    expect(
      registerDecoder({ type: 'float32', byteOrder: 'ABCD', scale: 1, offset: 0 }).decode(bytes, 0),
    ).toBeNaN();
  });

  it('known wire images (one per byte order) for float32 1.0 = 0x3F800000', () => {
    const wire: Record<ByteOrder, number[]> = {
      ABCD: [0x3f, 0x80, 0x00, 0x00],
      BADC: [0x80, 0x3f, 0x00, 0x00],
      CDAB: [0x00, 0x00, 0x3f, 0x80],
      DCBA: [0x00, 0x00, 0x80, 0x3f],
    };
    for (const order of orders) {
      const d = registerDecoder({ type: 'float32', byteOrder: order, scale: 1, offset: 0 });
      expect(d.decode(Uint8Array.from(wire[order]), 0)).toBe(1);
    }
  });

  it('decimal scales give the decimal, not binary noise', () => {
    const d = registerDecoder({ type: 'uint16', byteOrder: 'ABCD', scale: 0.1, offset: 0 });
    const out: number[] = [];
    for (let raw = 0; raw < 2000; raw++) out.push(d.decode(Uint8Array.of(raw >> 8, raw & 0xff), 0) as number);
    expect(out.every((v, raw) => v === Number((raw / 10).toFixed(1)))).toBe(true);
  });

  it('bits are least-significant first within each byte', () => {
    const data = Uint8Array.of(0b0000_0101, 0b1000_0000);
    expect([0, 1, 2, 15].map((i) => decodeBit(data, i))).toEqual([true, false, true, true]);
  });
});
