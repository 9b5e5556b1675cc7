/** The normaliser with synthetic readings: pure, no drivers, no clock. */
import { describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../src/crypto/canonical.ts';
import { generateKey } from '../../src/crypto/keys.ts';
import { arrayTextCharsMax } from '../../src/drivers/bounds.ts';
import type { Quality, Reading, ReadingValue } from '../../src/drivers/types.ts';
import { contextCharsMax, textValueCharsMax } from '../../src/event/bounds.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { EventSigner, emptyHead } from '../../src/event/signer.ts';
import { createNormaliser, type NormaliserDevice } from '../../src/normaliser/normaliser.ts';
import { ruleSchema } from '../../src/normaliser/rules-schema.ts';

const rule = (r: Record<string, unknown>) => ruleSchema.parse(r);

const cnc: NormaliserDevice = {
  id: 'cnc1',
  station: 'ST-10',
  tags: [
    { name: 'state' },
    { name: 'lotId' },
    { name: 'orderId' },
    { name: 'serial' },
    { name: 'step' },
    { name: 'partCount' },
    { name: 'diameter', unit: 'mm' },
    { name: 'alarmActive' },
    { name: 'alarmText' },
    { name: 'ovenTemp', unit: 'degC' },
  ],
  context: { lot: 'lotId', order: 'orderId', product: 'serial', step: 'step' },
  rules: [
    rule({
      name: 'part',
      trigger: 'counter',
      tag: 'partCount',
      kind: 'part_completed',
      values: ['diameter'],
    }),
    rule({ name: 'lot', trigger: 'change', tag: 'lotId', kind: 'lot_started' }),
    rule({ name: 'step', trigger: 'change', tag: 'step', kind: 'step_started' }),
    rule({ name: 'state', trigger: 'change', tag: 'state', kind: 'equipment_status', values: ['state'] }),
    rule({ name: 'alarm', trigger: 'rising', tag: 'alarmActive', kind: 'alarm', values: ['alarmText'] }),
    rule({ name: 'cleared', trigger: 'falling', tag: 'alarmActive', kind: 'alarm', values: ['alarmActive'] }),
  ],
};

function setup(devices: NormaliserDevice[] = [cnc]) {
  const drafts: EventDraft[] = [];
  const warnings: string[] = [];
  const n = createNormaliser(devices, {
    onDrafts: (d) => drafts.push(...d),
    log: { info() {}, warn: (m) => warnings.push(m), error() {} },
  });
  let t = 1_000_000;
  /** Pushes one batch at the next millisecond: [tag, value] or [tag, value, quality]. */
  const push = (...items: [string, ReadingValue, Quality?][]) => {
    t += 1;
    const batch: Reading[] = items.map(([tag, value, quality]) => ({
      device: devices[0]!.id,
      tag,
      value,
      quality: quality ?? 'good',
      sourceTimeMs: t,
    }));
    const before = drafts.length;
    n.push(batch);
    return drafts.slice(before);
  };
  return { n, drafts, warnings, push };
}

describe('counter trigger', () => {
  it('takes the first reading as the baseline, then one event per increment with its values', () => {
    const { push } = setup();
    expect(push(['lotId', 'L1'], ['partCount', 40], ['diameter', 10.01])).toEqual([]);
    const [e] = push(['diameter', 10.02], ['partCount', 41], ['serial', 'SN-41']);
    expect(e).toMatchObject({
      kind: 'part_completed',
      dataClass: 'process',
      station: 'ST-10',
      device: 'cnc1',
      rule: 'part',
      lot: 'L1',
      product: 'SN-41',
      values: { diameter: { v: 10.02, unit: 'mm', q: 'good' }, partCount: { v: 41, q: 'good' } },
    });
  });

  it('emits one event per increment when the counter jumped; only the last part has measurements', () => {
    const { push } = setup();
    push(['lotId', 'L1'], ['partCount', 10], ['serial', 'SN-10']);
    const events = push(['partCount', 13], ['diameter', 9.99], ['serial', 'SN-13']);
    expect(events.map((e) => e.values.partCount?.v)).toEqual([11, 12, 13]);
    expect(events.map((e) => e.values.diameter)).toEqual([
      { v: null, unit: 'mm', q: 'bad' },
      { v: null, unit: 'mm', q: 'bad' },
      { v: 9.99, unit: 'mm', q: 'good' },
    ]);
    expect(events.map((e) => e.product)).toEqual([undefined, undefined, 'SN-13']);
    expect(events.every((e) => e.lot === 'L1')).toBe(true);
  });

  it('treats a decrease as a reset to 0 and counts the parts made since', () => {
    const { n, push } = setup();
    push(['partCount', 500]);
    expect(push(['partCount', 0])).toEqual([]);
    push(['partCount', 500]);
    expect(push(['partCount', 2]).map((e) => e.values.partCount?.v)).toEqual([1, 2]);
    expect(n.stats().counterResets).toBe(2);
  });

  it('wraps at rollover when the wrapped step is plausible', () => {
    const dev = {
      ...cnc,
      rules: [
        rule({ name: 'p', trigger: 'counter', tag: 'partCount', kind: 'part_completed', rollover: 65535 }),
      ],
    };
    const { n, push } = setup([dev]);
    push(['partCount', 65534]);
    expect(push(['partCount', 1]).map((e) => e.values.partCount?.v)).toEqual([65535, 0, 1]);
    expect(n.stats().counterWraps).toBe(1);
    // Far from the top, a decrease is still a reset.
    push(['partCount', 30000]);
    expect(push(['partCount', 3]).map((e) => e.values.partCount?.v)).toEqual([1, 2, 3]);
  });

  it('re-synchronises without events on a jump above maxIncrement, and on garbage', () => {
    const { n, push, warnings } = setup();
    push(['partCount', 1]);
    expect(push(['partCount', 1_000_001])).toEqual([]);
    expect(push(['partCount', 1_000_002])).toHaveLength(1);
    expect(push(['partCount', 'x'])).toEqual([]);
    expect(push(['partCount', 2.5])).toEqual([]);
    expect(n.stats().counterResyncs).toBe(3);
    expect(warnings[0]).toMatch(/jumped from 1 to 1000001/);
  });

  it('random counter walks: exactly one event per part, in order, never more than maxIncrement per step', () => {
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const { push } = setup();
    let count = 1000;
    push(['partCount', count]);
    const seen: number[] = [];
    for (let i = 0; i < 500; i++) {
      count += Math.floor(rnd() * 5); // 0..4 parts between reads
      const bad = rnd() < 0.1;
      for (const e of push(['partCount', bad ? null : count, bad ? 'bad' : 'good']))
        seen.push(e.values.partCount!.v as number);
    }
    push(['partCount', count]);
    expect(seen).toEqual(Array.from({ length: count - 1000 }, (_, i) => 1001 + i));
  });
});

describe('lot and step changes', () => {
  it('finishes the previous lot with the context it started with, then starts the new one', () => {
    const { push } = setup();
    expect(push(['lotId', 'L1'], ['orderId', 'O1'], ['step', 'S1'])).toEqual([]);
    const events = push(['orderId', 'O2'], ['lotId', 'L2']);
    expect(events.map((e) => [e.kind, e.lot, e.order])).toEqual([
      ['lot_finished', 'L1', 'O1'],
      ['lot_started', 'L2', 'O2'],
    ]);
    const later = push(['lotId', 'L3']);
    expect(later.map((e) => [e.kind, e.lot, e.order])).toEqual([
      ['lot_finished', 'L2', 'O2'],
      ['lot_started', 'L3', 'O2'],
    ]);
  });

  it('an empty lot id means no lot: finish only, then start only', () => {
    const { push } = setup();
    push(['lotId', 'L1']);
    expect(push(['lotId', '']).map((e) => [e.kind, e.lot])).toEqual([['lot_finished', 'L1']]);
    expect(push(['lotId', 'L2']).map((e) => [e.kind, e.lot])).toEqual([['lot_started', 'L2']]);
  });

  it('step changes pair step_finished and step_started the same way', () => {
    const { push } = setup();
    push(['lotId', 'L1'], ['step', 'roughing']);
    expect(push(['step', 'finishing']).map((e) => [e.kind, e.step, e.lot])).toEqual([
      ['step_finished', 'roughing', 'L1'],
      ['step_started', 'finishing', 'L1'],
    ]);
  });

  it('finishPrevious: skip, and initial: emit', () => {
    const dev = {
      ...cnc,
      rules: [
        rule({
          name: 'lot',
          trigger: 'change',
          tag: 'lotId',
          kind: 'lot_started',
          finishPrevious: 'skip',
          initial: 'emit',
        }),
      ],
    };
    const { push } = setup([dev]);
    expect(push(['lotId', 'L1']).map((e) => [e.kind, e.lot])).toEqual([['lot_started', 'L1']]);
    expect(push(['lotId', 'L2']).map((e) => [e.kind, e.lot])).toEqual([['lot_started', 'L2']]);
  });

  it('in one batch, lot rules run before the others; a part counted in the same read has no lot', () => {
    const { push } = setup();
    push(['lotId', 'L1'], ['partCount', 7]);
    const events = push(['partCount', 1], ['lotId', 'L2']);
    // Made before or after the lot change? One read cannot tell (issue 14, item 2).
    expect(events.map((e) => [e.kind, e.lot])).toEqual([
      ['lot_finished', 'L1'],
      ['lot_started', 'L2'],
      ['part_completed', undefined],
    ]);
    expect(events[2]!.values['@context']).toEqual({
      v: 'lot unknown: it changed between two readings of the counter (7 and 1)',
      q: 'uncertain',
    });
  });
});

describe('parts across a context change (issue 14, item 2)', () => {
  const unknown = (e: EventDraft | undefined) => e?.values['@context']?.v;

  it('a counter jump across a lot change during an outage books no part to either lot', () => {
    const { n, push } = setup();
    push(['lotId', 'LOT-67'], ['orderId', 'ORD-0033'], ['partCount', 41]);
    // The connection is lost: every tag reads bad.
    push(['lotId', null, 'bad'], ['orderId', null, 'bad'], ['partCount', null, 'bad']);
    // Back: the lot changed and the counter moved by 3. Which parts were made under LOT-67?
    const events = push(['lotId', 'LOT-68'], ['orderId', 'ORD-0034'], ['partCount', 44]);
    expect(events.map((e) => [e.kind, e.lot, e.order])).toEqual([
      ['lot_finished', 'LOT-67', 'ORD-0033'],
      ['lot_started', 'LOT-68', 'ORD-0034'],
      ['part_completed', undefined, undefined],
      ['part_completed', undefined, undefined],
      ['part_completed', undefined, undefined],
    ]);
    expect(unknown(events[4])).toBe(
      'lot, order unknown: they changed between two readings of the counter (41 and 44)',
    );
    expect(n.stats().contextUnknown).toBe(3);
    // From here on the readings say it: the next part is LOT-68's.
    const [next] = push(['partCount', 45]);
    expect([next!.lot, next!.order, unknown(next)]).toEqual(['LOT-68', 'ORD-0034', undefined]);
  });

  it('keeps what did not change: a new lot of the same order keeps the order', () => {
    const { push } = setup();
    push(['lotId', 'L1'], ['orderId', 'O1'], ['partCount', 1]);
    const events = push(['lotId', 'L2'], ['orderId', 'O1'], ['partCount', 3]);
    const parts = events.filter((e) => e.kind === 'part_completed');
    expect(parts.map((e) => [e.lot, e.order])).toEqual([
      [undefined, 'O1'],
      [undefined, 'O1'],
    ]);
    expect(unknown(parts[1])).toBe('lot unknown: it changed between two readings of the counter (1 and 3)');
  });

  it('a lot change seen while the counter stood still is the context of the next parts', () => {
    const { push } = setup();
    push(['lotId', 'L1'], ['partCount', 5]);
    // A subscription reports only changes: the lot changes, the counter is still 5.
    push(['lotId', 'L2']);
    const [e] = push(['partCount', 6]);
    expect([e!.lot, unknown(e)]).toEqual(['L2', undefined]);
  });

  it('a lot change in one delivery, before a part in the same delivery, by source time', () => {
    const { n, drafts } = setup();
    const at = (tag: string, value: ReadingValue, t: number): Reading => ({
      device: 'cnc1',
      tag,
      value,
      quality: 'good',
      sourceTimeMs: t,
    });
    n.push([at('lotId', 'L1', 10), at('partCount', 5, 10)]);
    // One OPC UA publish holding queued changes: part 6 at t=20 (L1), lot L2 at t=30, part 7 at t=40.
    n.push([at('partCount', 6, 20), at('lotId', 'L2', 30), at('partCount', 7, 40)]);
    const parts = drafts.filter((d) => d.kind === 'part_completed');
    expect(parts.map((d) => [d.values.partCount?.v, d.lot, unknown(d)])).toEqual([
      [6, 'L1', undefined],
      [7, 'L2', undefined],
    ]);
  });

  it('a counter reading older than the lot change it follows is not booked to the new lot', () => {
    const { n, drafts } = setup();
    const at = (tag: string, value: ReadingValue, t: number): Reading => ({
      device: 'cnc1',
      tag,
      value,
      quality: 'good',
      sourceTimeMs: t,
    });
    n.push([at('lotId', 'L1', 10), at('partCount', 5, 10)]);
    n.push([at('lotId', 'L2', 30)]);
    // A slowly sampled counter reports a part completed at t=25, before the lot changed.
    n.push([at('partCount', 6, 25)]);
    const [part] = drafts.filter((d) => d.kind === 'part_completed');
    expect([part!.lot, unknown(part)]).toEqual([
      undefined,
      'lot unknown: it changed between two readings of the counter (5 and 6)',
    ]);
  });

  it('across a gateway restart: a lot changed while the gateway was down books no part', () => {
    const a = setup();
    a.push(['lotId', 'L1'], ['orderId', 'O1'], ['partCount', 10]);
    const b = setup();
    b.n.loadState(JSON.parse(JSON.stringify(a.n.saveState())));
    // Same lot after the restart: the parts are L1's.
    const same = b.push(['lotId', 'L1'], ['orderId', 'O1'], ['partCount', 11]);
    expect(same.map((e) => [e.lot, e.order, unknown(e)])).toEqual([['L1', 'O1', undefined]]);
    const c = setup();
    c.n.loadState(JSON.parse(JSON.stringify(a.n.saveState())));
    const changed = c.push(['lotId', 'L2'], ['orderId', 'O2'], ['partCount', 11]);
    expect(changed.filter((e) => e.kind === 'part_completed').map((e) => [e.lot, e.order])).toEqual([
      [undefined, undefined],
    ]);
  });
});

describe('one delivery sets the context before its rules run (issue 14, item 5)', () => {
  it('the first status event carries the lot and order of the same delivery, though they are newer', () => {
    const dev: NormaliserDevice = {
      ...cnc,
      rules: [
        rule({
          name: 'state',
          trigger: 'change',
          tag: 'state',
          kind: 'equipment_status',
          initial: 'emit',
          values: ['state'],
        }),
      ],
    };
    const { n, drafts } = setup([dev]);
    // The first publish of a subscription: each value with its own (last change) source time.
    n.push([
      { device: 'cnc1', tag: 'state', value: 'Running', quality: 'good', sourceTimeMs: 1_000 },
      { device: 'cnc1', tag: 'lotId', value: 'LOT-68', quality: 'good', sourceTimeMs: 2_000 },
      { device: 'cnc1', tag: 'orderId', value: 'ORD-0034', quality: 'good', sourceTimeMs: 2_000 },
    ]);
    expect(drafts.map((d) => [d.kind, d.lot, d.order, d.sourceTimeMs])).toEqual([
      ['equipment_status', 'LOT-68', 'ORD-0034', 1_000],
    ]);
  });
});

describe('edges, status and updates', () => {
  it('rising and falling edges, status changes', () => {
    const { push } = setup();
    push(['alarmActive', false], ['state', 'Running']);
    const raised = push(['alarmActive', true], ['alarmText', 'Spindle overload'], ['state', 'Down']);
    expect(raised.map((e) => [e.kind, e.dataClass, e.rule])).toEqual([
      ['equipment_status', 'equipment', 'state'],
      ['alarm', 'equipment', 'alarm'],
    ]);
    expect(raised[1]!.values).toEqual({ alarmText: { v: 'Spindle overload', q: 'good' } });
    expect(push(['alarmActive', true])).toEqual([]);
    expect(push(['alarmActive', false]).map((e) => e.rule)).toEqual(['cleared']);
    expect(push(['state', 'Down'])).toEqual([]);
  });

  it('update: one event per reading, with the context from the same message', () => {
    const oven: NormaliserDevice = {
      id: 'oven1',
      station: 'ST-30',
      tags: [
        { name: 'scanMaterial' },
        { name: 'scanQty', unit: 'kg' },
        { name: 'scanLot' },
        { name: 'ovenLot' },
      ],
      context: { lot: 'ovenLot' },
      rules: [
        rule({
          name: 'material',
          trigger: 'update',
          tag: 'scanMaterial',
          kind: 'material_consumed',
          values: ['scanMaterial', 'scanQty'],
          context: { lot: 'scanLot' },
        }),
      ],
    };
    const { push } = setup([oven]);
    push(['ovenLot', 'OVEN-LOT']);
    // The lot comes after the material in the batch: it still applies to this message's event.
    const [e] = push(['scanMaterial', 'RM-1'], ['scanQty', 2.5], ['scanLot', 'L7']);
    expect(e).toMatchObject({
      kind: 'material_consumed',
      lot: 'L7',
      values: { scanMaterial: { v: 'RM-1', q: 'good' }, scanQty: { v: 2.5, unit: 'kg', q: 'good' } },
    });
    expect(push(['scanMaterial', 'RM-1'], ['scanQty', 2.5], ['scanLot', 'L7'])).toHaveLength(1);
  });
});

describe('quality', () => {
  it('bad readings never trigger and never lend a value; uncertain ones are carried as such', () => {
    const { n, push } = setup();
    push(['lotId', 'L1'], ['partCount', 1], ['diameter', 10]);
    expect(push(['partCount', null, 'bad'], ['diameter', null, 'bad'], ['lotId', null, 'bad'])).toEqual([]);
    expect(n.stats().badTriggers).toBe(2);
    // Counter advanced during the outage; the diameter is still unreadable and the lot unknown.
    const events = push(['partCount', 3]);
    expect(events).toHaveLength(2);
    expect(events[1]!.values.diameter).toEqual({ v: null, unit: 'mm', q: 'bad' });
    expect(events[1]!.lot).toBeUndefined();
    // Same lot after the outage: no lot change.
    expect(push(['lotId', 'L1'])).toEqual([]);
    const [u] = push(['diameter', 10.5, 'uncertain'], ['partCount', 4]);
    expect(u!.values.diameter).toEqual({ v: 10.5, unit: 'mm', q: 'uncertain' });
    expect(u!.lot).toBe('L1');
  });

  it('non-finite numbers are bad values and over-long strings are cut and uncertain', () => {
    const { push } = setup();
    push(['state', 'Idle']);
    const dev = cnc.rules.find((r) => r.name === 'state');
    expect(dev).toBeDefined();
    push(['partCount', 1]);
    const [e] = push(['diameter', Number.NaN], ['partCount', 2]);
    expect(e!.values.diameter).toEqual({ v: null, unit: 'mm', q: 'bad' });
    const long = 'x'.repeat(2000);
    const [s] = push(['state', long]);
    expect(s!.values.state).toEqual({ v: 'x'.repeat(1024), q: 'uncertain' });
  });
});

describe('period trigger', () => {
  const oven: NormaliserDevice = {
    id: 'oven1',
    station: 'ST-30',
    tags: [{ name: 'ovenTemp', unit: 'degC' }, { name: 'ovenLot' }],
    context: { lot: 'ovenLot' },
    rules: [
      rule({ name: 'temp', trigger: 'period', everyMs: 5000, kind: 'measurement', values: ['ovenTemp'] }),
    ],
  };

  it('fires on wall-clock multiples of everyMs with the current values and lot; skips what it missed', () => {
    const { n, drafts } = setup([oven]);
    n.push([
      { device: 'oven1', tag: 'ovenTemp', value: 180.5, quality: 'good', sourceTimeMs: 1_000 },
      { device: 'oven1', tag: 'ovenLot', value: 'L9', quality: 'good', sourceTimeMs: 1_000 },
    ]);
    expect(n.tick(1_000)).toBe(0);
    expect(n.nextTickMs()).toBe(5_000);
    expect(n.tick(4_999)).toBe(0);
    expect(n.tick(5_003)).toBe(1);
    expect(drafts[0]).toMatchObject({
      kind: 'measurement',
      lot: 'L9',
      sourceTimeMs: 5_003,
      values: { ovenTemp: { v: 180.5, unit: 'degC', q: 'good' } },
    });
    expect(n.tick(5_500)).toBe(0);
    // A 30 s stall: one event, not six.
    expect(n.tick(40_000)).toBe(1);
    expect(n.nextTickMs()).toBe(45_000);
  });

  it('is skipped while none of its values is usable', () => {
    const { n } = setup([oven]);
    n.tick(0);
    expect(n.tick(5_000)).toBe(0);
    n.push([
      { device: 'oven1', tag: 'ovenTemp', value: null, quality: 'bad', sourceTimeMs: 6_000, reason: 'x' },
    ]);
    expect(n.tick(10_000)).toBe(0);
    expect(n.stats().periodSkipped).toBe(2);
  });
});

describe('bookkeeping', () => {
  it('counts readings of unknown devices and tags, and sorts a batch by source time', () => {
    const { n, drafts } = setup();
    n.push([
      { device: 'nope', tag: 'x', value: 1, quality: 'good', sourceTimeMs: 1 },
      { device: 'cnc1', tag: 'nope', value: 1, quality: 'good', sourceTimeMs: 1 },
    ]);
    expect(n.stats().unknownReadings).toBe(2);
    n.push([
      { device: 'cnc1', tag: 'partCount', value: 5, quality: 'good', sourceTimeMs: 20 },
      { device: 'cnc1', tag: 'partCount', value: 3, quality: 'good', sourceTimeMs: 10 },
    ]);
    // Applied as 3 then 5: two parts, not a reset.
    expect(drafts.map((d) => d.values.partCount?.v)).toEqual([4, 5]);
  });

  it('saved state carries counters and lots across a restart', () => {
    const a = setup();
    a.push(['lotId', 'L1'], ['orderId', 'O1'], ['partCount', 10]);
    const state = JSON.parse(JSON.stringify(a.n.saveState()));
    const b = setup();
    b.n.loadState(state);
    const events = b.push(['lotId', 'L2'], ['orderId', 'O2'], ['partCount', 12]);
    // The parts counted while the gateway was down may be L1's or L2's: booked to neither.
    expect(events.map((e) => [e.kind, e.lot, e.values.partCount?.v])).toEqual([
      ['lot_finished', 'L1', undefined],
      ['lot_started', 'L2', undefined],
      ['part_completed', undefined, 11],
      ['part_completed', undefined, 12],
    ]);
    expect(events[0]!.order).toBe('O1');
  });

  it('rejects rules naming unknown tags (the config loader reports them first)', () => {
    const bad = {
      ...cnc,
      rules: [rule({ name: 'x', trigger: 'change', tag: 'ghost', kind: 'measurement' })],
    };
    expect(() => setup([bad])).toThrow(/no tag named "ghost"/);
  });
});

describe('text at the bounds of the signed body (src/event/bounds.ts, counted in code points)', () => {
  const emoji = '😀'; // one code point, two UTF-16 units
  it('keeps a value of exactly textValueCharsMax code points whole, and cuts a longer one between code points', () => {
    const { push } = setup();
    push(['alarmActive', false]);
    const whole = `${'a'.repeat(textValueCharsMax - 1)}${emoji}`;
    const [kept] = push(['alarmActive', true], ['alarmText', whole]);
    expect(kept!.values.alarmText).toEqual({ v: whole, q: 'good' });
    push(['alarmActive', false]);
    const [cut] = push(
      ['alarmActive', true],
      ['alarmText', `${'a'.repeat(textValueCharsMax - 1)}${emoji}${emoji}`],
    );
    expect(cut!.values.alarmText).toEqual({ v: whole, q: 'uncertain' });
    // Never a lone surrogate, which no canonical encoder accepts.
    expect(() => encodeCanonical(cut!.values)).not.toThrow();
  });

  it('keeps a context value of exactly contextCharsMax code points, and leaves out a longer one', () => {
    const { n, push } = setup();
    const lot = emoji.repeat(contextCharsMax);
    push(['lotId', lot], ['partCount', 1]);
    expect(push(['partCount', 2])[0]!.lot).toBe(lot);
    push(['lotId', `${lot}x`]);
    expect(push(['partCount', 3])[0]!.lot).toBeUndefined();
    expect(n.stats().contextTooLong).toBeGreaterThan(0);
  });
});

describe('the text bound, kept in two places', () => {
  it("the drivers' array-text bound is the event body's text bound (drivers may not import the event model)", () => {
    expect(arrayTextCharsMax).toBe(textValueCharsMax);
  });
});

describe('text that is not well-formed (a lone surrogate from a device)', () => {
  it('signs: the value keeps its text with U+FFFD, marked uncertain; a context value is left out and counted', () => {
    const { n, push } = setup();
    push(['alarmActive', false]);
    const [alarm] = push(['alarmActive', true], ['alarmText', 'E42 \ud800'], ['lotId', 'L\udc00']);
    expect(alarm!.values.alarmText).toEqual({ v: 'E42 \ufffd', q: 'uncertain' });
    expect(alarm!.lot).toBeUndefined();
    expect(n.stats().contextMalformed).toBeGreaterThan(0);
    const signer = new EventSigner(
      { enterprise: 'acme', site: 's', line: 'l', gateway: 'gw' },
      generateKey(),
    );
    expect(signer.sign([alarm!], emptyHead).events).toHaveLength(1);
  });
});
