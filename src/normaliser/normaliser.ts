/**
 * The normaliser: per-device rules turn readings into EventDrafts (see docs/device-maps.md for the
 * rules as plant engineers write them). Pure: no clock, timers, I/O, crypto or storage inside. The
 * caller pushes readings, ticks the clock for `period` rules, and receives drafts through a callback
 * (the pipeline signs them and appends them to the outbox).
 *
 * Semantics, in short (details and reasons in docs/device-maps.md):
 * - A batch (one poll, one publish, one MQTT message) is applied atomically, in groups of equal source
 *   time in time order: every reading of a group updates the tag table first, then the rules its tags
 *   trigger run — lot and step rules before the others — so a message carrying both a material scan
 *   and its lot produces one event with that lot. A context tag without a usable value when the batch
 *   arrives (start-up, a lost connection) takes its value from the batch before any rule runs.
 * - Quality: bad readings never trigger a rule and never lend a value: an event carries a bad tag as
 *   `{v: null, q: 'bad'}` and leaves out context from bad tags. Uncertain readings trigger and are
 *   carried as `q: 'uncertain'`. Triggers compare with the last usable value, so good → bad → good with
 *   the same value is no change, and parts counted during an outage are still reported.
 * - counter: one event per increment, numbered with the count each part reached. When the counter
 *   moved by more than one between reads, only the last part has measured values; the earlier ones
 *   carry `{v: null, q: 'bad'}` (not observed) and no product serial. A lot, order or step that
 *   changed between the two readings of the counter is left out of every part of the step, with the
 *   reason in values['@context']: the readings cannot say which parts were made before the change
 *   (issue 14: an outage across a lot change booked the old lot's parts to the new one). A decrease is a wrap when
 *   `rollover` is set and the wrapped step is plausible, else a reset to 0. A step above
 *   `maxIncrement` re-synchronises without events (counted, logged).
 * - change with kind lot_started/step_started also emits lot_finished/step_finished for the previous
 *   value, with the context that lot or step started with. An empty value means "no lot".
 * - period: aligned to the wall clock; skipped while none of its values is usable.
 * State is bounded by the device maps: one slot per tag and per rule, nothing grows with time.
 *
 * @example
 *   const n = createNormaliser(config.devices, { onDrafts: (drafts) => outbox.append(drafts) });
 *   driverCtx.onReadings = (batch) => n.push(batch);
 *   setInterval(() => n.tick(Date.now()), 100);
 */
import type { DriverLogger, Quality, Reading, ReadingValue } from '../drivers/types.ts';
import { contextCharsMax, textValueCharsMax } from '../event/bounds.ts';
import type { EventDraft, EventValue } from '../event/draft.ts';
import { type DataClass, defaultDataClass, type EventKind } from '../event/kinds.ts';
import type { Rule, RuleContext } from './rules-schema.ts';

/** What the normaliser needs of a device map (a DeviceConfig has it all). */
export interface NormaliserDevice {
  id: string;
  station: string;
  enabled?: boolean;
  context?: RuleContext | undefined;
  rules: readonly Rule[];
  tags: readonly { name: string; unit?: string | undefined }[];
}

export interface NormaliserOptions {
  /** Receives the drafts produced by one push() or tick(), in order; never called with none. */
  onDrafts(drafts: EventDraft[]): void;
  log?: DriverLogger;
}

export interface NormaliserStats {
  readings: number;
  /** Readings of devices or tags the normaliser does not know. */
  unknownReadings: number;
  /** Bad readings that reached a rule's trigger tag and so triggered nothing. */
  badTriggers: number;
  events: Partial<Record<EventKind, number>>;
  /** Period events skipped because none of their values was usable. */
  periodSkipped: number;
  counterResets: number;
  counterWraps: number;
  /** Counter steps above maxIncrement (or non-integer counters) re-synchronised without events. */
  counterResyncs: number;
  /** Context values longer than contextCharsMax, left out of events. */
  contextTooLong: number;
  /** Context values that are not well-formed text (lone surrogates), left out of events. */
  contextMalformed: number;
  /**
   * Part events whose lot, order, product or step was left out because it changed between two
   * readings of the counter (an outage, a lost message, one read showing both): see #counter.
   */
  contextUnknown: number;
}

/** Rule memory that survives a restart when the caller saves it (see saveState). */
export interface NormaliserState {
  version: 1;
  rules: Record<
    string,
    { last?: ReadingValue; started?: ContextValues; nextDueMs?: number; basis?: CounterBasis }
  >;
}

/**
 * counter rules: the context known to hold while the counter had its last value (see #counter). A
 * part counted later belongs to this context only if it did not change in between.
 */
export interface CounterBasis {
  /** Last known value of each context key (also while the tag reads bad). */
  context: ContextValues;
  /** Source time from which `context` is known to hold: the counter's reading, or a context change. */
  atMs: number;
  /** The context at the counter's reading, when a later context change moved `context` on. */
  before?: ContextValues;
}

/** Value key of the note on a part event whose context could not be told (never a tag name). */
export const contextNoteKey = '@context';

/** Length in code points (the event model's bounds count code points, not UTF-16 units). */
function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

type ContextKey = 'lot' | 'product' | 'order' | 'step';
type ContextValues = Partial<Record<ContextKey, string>>;
const contextKeys: readonly ContextKey[] = ['lot', 'product', 'order', 'step'];
/**
 * Context that spans many parts (a lot, an order, a process step): a part counted across a change of
 * it cannot be attributed. The product serial is the part's own, like its measurements: the last part
 * of a step takes it from the same read, the earlier ones go without (see #counter).
 */
const spanKeys: readonly ContextKey[] = ['lot', 'order', 'step'];

interface TagSlot {
  name: string;
  unit: string | undefined;
  /** Last usable (good or uncertain) value. */
  value: ReadingValue;
  /** Quality of the latest reading; null before the first. */
  quality: Quality | null;
  /** A usable reading was seen: `value` is the last known one, even while the tag reads bad. */
  known: boolean;
  /** Some rule takes context from this tag. */
  context: boolean;
  /** Counter rules whose context this tag is part of. */
  counters: RuleState[];
  /** Batch number in which this slot was last looked at by #presetContext. */
  batch: number;
}

interface DeviceState {
  id: string;
  station: string;
  tags: Map<string, TagSlot>;
  /** Rules by trigger tag. */
  triggers: Map<string, RuleState[]>;
}

interface RuleState {
  key: string;
  rule: Rule;
  device: DeviceState;
  index: number;
  /** Lot and step rules run before the others of the same group. */
  priority: 0 | 1;
  dataClass: DataClass;
  context: Partial<Record<ContextKey, TagSlot>>;
  values: TagSlot[];
  trigger: TagSlot | null;
  /** Last usable trigger value (boolean for edges); undefined before the baseline. */
  last: ReadingValue | undefined;
  /** For lot/step rules: the context the current lot or step started with. */
  started: ContextValues | undefined;
  nextDueMs: number | undefined;
  /** counter: the context known to hold at its last value. */
  basis: CounterBasis | undefined;
  /** Group in which a context change last re-based this counter (avoids a Set per group). */
  rebased: number;
  /** Readings of the trigger tag in the current group (for `update`). */
  pending: number;
  /** Group number in which this rule was last touched (avoids a Set per group). */
  mark: number;
}

const finishedKind: Partial<Record<EventKind, { kind: EventKind; key: ContextKey }>> = {
  lot_started: { kind: 'lot_finished', key: 'lot' },
  step_started: { kind: 'step_finished', key: 'step' },
};

export class Normaliser {
  readonly #devices = new Map<string, DeviceState>();
  readonly #rules: RuleState[] = [];
  readonly #periodic: RuleState[] = [];
  readonly #onDrafts: (drafts: EventDraft[]) => void;
  readonly #log: DriverLogger | undefined;
  readonly #stats: NormaliserStats = {
    readings: 0,
    unknownReadings: 0,
    badTriggers: 0,
    events: {},
    periodSkipped: 0,
    counterResets: 0,
    counterWraps: 0,
    counterResyncs: 0,
    contextTooLong: 0,
    contextMalformed: 0,
    contextUnknown: 0,
  };
  #group = 0;
  #batch = 0;
  readonly #touched: RuleState[] = [];
  readonly #rebase: RuleState[] = [];

  constructor(devices: readonly NormaliserDevice[], options: NormaliserOptions) {
    this.#onDrafts = options.onDrafts;
    this.#log = options.log;
    for (const d of devices) {
      if (d.enabled === false) continue;
      if (this.#devices.has(d.id)) throw new Error(`normaliser: duplicate device id ${d.id}`);
      const tags = new Map<string, TagSlot>();
      for (const t of d.tags) {
        tags.set(t.name, {
          name: t.name,
          unit: t.unit,
          value: null,
          quality: null,
          known: false,
          context: false,
          counters: [],
          batch: 0,
        });
      }
      const device: DeviceState = { id: d.id, station: d.station, tags, triggers: new Map() };
      const slot = (name: string, where: string): TagSlot => {
        const s = tags.get(name);
        if (!s) throw new Error(`normaliser: device ${d.id}, ${where}: no tag named "${name}"`);
        return s;
      };
      d.rules.forEach((rule, index) => {
        const merged = { ...d.context, ...rule.context };
        const context: Partial<Record<ContextKey, TagSlot>> = {};
        for (const k of contextKeys) {
          const name = merged[k];
          if (name) {
            context[k] = slot(name, `rule ${rule.name} context.${k}`);
            context[k].context = true;
          }
        }
        const values = rule.values.map((v) => slot(v, `rule ${rule.name} values`));
        const kind = rule.kind as EventKind;
        const state: RuleState = {
          key: `${d.id}/${rule.name}`,
          rule,
          device,
          index,
          priority: kind.startsWith('lot_') || kind.startsWith('step_') ? 0 : 1,
          dataClass: (rule.dataClass as DataClass | undefined) ?? defaultDataClass[kind],
          context,
          values,
          trigger: rule.trigger === 'period' ? null : slot(rule.tag, `rule ${rule.name} tag`),
          last: undefined,
          started: undefined,
          nextDueMs: undefined,
          basis: undefined,
          rebased: -1,
          pending: 0,
          mark: -1,
        };
        this.#rules.push(state);
        if (rule.trigger === 'counter') {
          for (const s of new Set(Object.values(context))) s.counters.push(state);
        }
        if (rule.trigger === 'period') {
          this.#periodic.push(state);
        } else {
          const list = device.triggers.get(rule.tag) ?? [];
          list.push(state);
          device.triggers.set(rule.tag, list);
        }
      });
      this.#devices.set(d.id, device);
    }
  }

  /** Applies one batch of readings (see the module comment); returns the number of drafts emitted. */
  push(readings: readonly Reading[]): number {
    if (readings.length === 0) return 0;
    const ordered = isTimeOrdered(readings)
      ? readings
      : [...readings].sort((a, b) => a.sourceTimeMs - b.sourceTimeMs);
    this.#presetContext(ordered);
    const drafts: EventDraft[] = [];
    let start = 0;
    while (start < ordered.length) {
      const t = ordered[start]!.sourceTimeMs;
      let end = start + 1;
      while (end < ordered.length && ordered[end]!.sourceTimeMs === t) end++;
      this.#applyGroup(ordered, start, end, drafts);
      start = end;
    }
    if (drafts.length > 0) this.#onDrafts(drafts);
    return drafts.length;
  }

  /** Runs the period rules due at `nowMs`; returns the number of drafts emitted. */
  tick(nowMs: number): number {
    const drafts: EventDraft[] = [];
    for (const r of this.#periodic) {
      const every = (r.rule as Extract<Rule, { trigger: 'period' }>).everyMs;
      if (r.nextDueMs === undefined) r.nextDueMs = alignedAfter(nowMs, every);
      if (nowMs < r.nextDueMs) continue;
      // Missed periods (a stalled loop, a suspended machine) are skipped, not replayed in a burst.
      r.nextDueMs = alignedAfter(nowMs, every);
      if (!r.values.some(usable)) {
        this.#stats.periodSkipped++;
        continue;
      }
      drafts.push(this.#draft(r, r.rule.kind as EventKind, nowMs, this.#contextOf(r), this.#valuesOf(r)));
    }
    if (drafts.length > 0) this.#onDrafts(drafts);
    return drafts.length;
  }

  /** When the next period rule is due (ms since the epoch), or null if there are none or none started. */
  nextTickMs(): number | null {
    let next: number | null = null;
    for (const r of this.#periodic) {
      if (r.nextDueMs !== undefined && (next === null || r.nextDueMs < next)) next = r.nextDueMs;
    }
    return next;
  }

  stats(): NormaliserStats {
    return { ...this.#stats, events: { ...this.#stats.events } };
  }

  /** Rule memory (baselines, current lots and steps, period schedule) as plain JSON. */
  saveState(): NormaliserState {
    const rules: NormaliserState['rules'] = {};
    for (const r of this.#rules) {
      const entry: NormaliserState['rules'][string] = {};
      if (r.last !== undefined) entry.last = r.last;
      if (r.started) entry.started = { ...r.started };
      if (r.nextDueMs !== undefined) entry.nextDueMs = r.nextDueMs;
      if (r.basis) entry.basis = copyBasis(r.basis);
      rules[r.key] = entry;
    }
    return { version: 1, rules };
  }

  /**
   * Restores rule memory saved by saveState, before the first push: a counter then reports the parts
   * made while the gateway was down (up to maxIncrement) and a lot changed meanwhile is finished and
   * started. Entries of rules that no longer exist are ignored.
   */
  loadState(state: NormaliserState): void {
    if (state.version !== 1) throw new Error(`normaliser: unknown state version ${String(state.version)}`);
    for (const r of this.#rules) {
      const entry = state.rules[r.key];
      if (!entry) continue;
      r.last = entry.last;
      r.started = entry.started ? { ...entry.started } : undefined;
      r.nextDueMs = entry.nextDueMs;
      r.basis = entry.basis ? copyBasis(entry.basis) : undefined;
    }
  }

  /**
   * One delivery sets the context before any of its rules run: a context tag that had no usable
   * value when the batch arrived (the gateway just started, or the connection was lost) takes its
   * first usable value in the batch at once, so a status event with an older source time than the
   * lot read with it still carries that lot. A context tag that was readable keeps its value until its
   * own reading's turn: a publish can hold queued changes, and a part made before a lot change in the
   * same publish belongs to the old lot.
   */
  #presetContext(readings: readonly Reading[]): void {
    const batch = ++this.#batch;
    for (const r of readings) {
      const slot = this.#devices.get(r.device)?.tags.get(r.tag);
      if (!slot?.context || slot.batch === batch) continue;
      if (usable(slot)) {
        slot.batch = batch;
        continue;
      }
      if (r.quality === 'bad') continue;
      slot.batch = batch;
      this.#setValue(slot, r.value, r.quality, null);
    }
  }

  /**
   * A usable reading into its slot. When the known value of a context tag changes, the counters using
   * it whose value is current are re-based on the new context (collected in `rebase`, if given).
   */
  #setValue(slot: TagSlot, value: ReadingValue, quality: Quality, rebase: RuleState[] | null): void {
    const before = slot.known ? contextText(slot.value) : undefined;
    slot.quality = quality;
    slot.value = value;
    slot.known = true;
    if (rebase === null || slot.counters.length === 0 || contextText(value) === before) return;
    for (const c of slot.counters) {
      if (c.rebased === this.#group) continue;
      c.rebased = this.#group;
      rebase.push(c);
    }
  }

  #applyGroup(readings: readonly Reading[], start: number, end: number, drafts: EventDraft[]): void {
    const group = ++this.#group;
    const touched = this.#touched;
    touched.length = 0;
    const rebase = this.#rebase;
    rebase.length = 0;
    for (let i = start; i < end; i++) {
      const r = readings[i]!;
      this.#stats.readings++;
      const device = this.#devices.get(r.device);
      const slot = device?.tags.get(r.tag);
      if (!device || !slot) {
        this.#stats.unknownReadings++;
        continue;
      }
      const ok = r.quality !== 'bad';
      if (ok) this.#setValue(slot, r.value, r.quality, rebase);
      else slot.quality = r.quality;
      const rules = device.triggers.get(r.tag);
      if (!rules) continue;
      if (!ok) {
        this.#stats.badTriggers++;
        continue;
      }
      for (const rule of rules) {
        if (rule.mark !== group) {
          rule.mark = group;
          rule.pending = 0;
          touched.push(rule);
        }
        rule.pending++;
      }
    }
    const timeMs = readings[start]!.sourceTimeMs;
    // The context changed while a counter stood still at a value known to be current: the parts it
    // counts next were made after the change.
    for (const c of rebase) {
      if (c.mark === group || c.last === undefined || !usable(c.trigger!)) continue;
      const context = this.#knownContext(c);
      const basis = c.basis;
      if (basis && sameContext(basis.context, context)) continue;
      c.basis = { context, atMs: timeMs };
      const before = basis?.before ?? basis?.context;
      if (before) c.basis.before = before;
    }
    if (touched.length === 0) return;
    if (touched.length > 1) touched.sort((a, b) => a.priority - b.priority || a.index - b.index);
    for (const rule of touched) this.#evaluate(rule, timeMs, drafts);
  }

  #evaluate(r: RuleState, timeMs: number, drafts: EventDraft[]): void {
    const rule = r.rule;
    const v = r.trigger!.value;
    switch (rule.trigger) {
      case 'update': {
        for (let i = 0; i < r.pending; i++) drafts.push(this.#plain(r, timeMs));
        return;
      }
      case 'change': {
        const first = r.last === undefined;
        if (!first && sameValue(v, r.last!)) return;
        const previous = r.last;
        r.last = v;
        if (first && rule.initial === 'ignore') {
          this.#baselineStarted(r, v);
          return;
        }
        const pair = finishedKind[rule.kind as EventKind];
        if (!pair) {
          drafts.push(this.#plain(r, timeMs));
          return;
        }
        if (!first && rule.finishPrevious === 'emit' && present(previous)) {
          const ctx = r.started ?? { ...this.#contextOf(r), [pair.key]: String(previous) };
          drafts.push(this.#draft(r, pair.kind, timeMs, ctx, this.#valuesOf(r)));
        }
        r.started = undefined;
        if (present(v)) {
          const ctx = { ...this.#contextOf(r), [pair.key]: String(v) };
          r.started = ctx;
          drafts.push(this.#draft(r, rule.kind as EventKind, timeMs, ctx, this.#valuesOf(r)));
        }
        return;
      }
      case 'rising':
      case 'falling': {
        const on = truthy(v);
        const first = r.last === undefined;
        const previous = r.last;
        r.last = on;
        const wanted = rule.trigger === 'rising' ? on : !on;
        if (first ? rule.initial === 'emit' && wanted : wanted && previous !== on) {
          drafts.push(this.#plain(r, timeMs));
        }
        return;
      }
      case 'counter':
        this.#counter(r, rule, v, timeMs, drafts);
        return;
      case 'period':
        return;
    }
  }

  #counter(
    r: RuleState,
    rule: Extract<Rule, { trigger: 'counter' }>,
    v: ReadingValue,
    timeMs: number,
    drafts: EventDraft[],
  ): void {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      this.#stats.counterResyncs++;
      this.#warn(r, `counter ${rule.tag} is not a non-negative integer: ${String(v)}`);
      return;
    }
    const last = r.last;
    r.last = v;
    const basis = r.basis;
    const known = this.#knownContext(r);
    // From this reading on, the counter's value is known under this context.
    r.basis = { context: known, atMs: timeMs };
    if (typeof last !== 'number' || v === last) return;
    let from: number; // first count of the new parts
    let steps: number;
    if (v > last) {
      from = last + 1;
      steps = v - last;
    } else if (
      rule.rollover !== undefined &&
      last <= rule.rollover &&
      rule.rollover - last + v + 1 <= rule.maxIncrement
    ) {
      this.#stats.counterWraps++;
      from = last + 1;
      steps = rule.rollover - last + v + 1;
    } else {
      this.#stats.counterResets++;
      from = 1;
      steps = v;
    }
    if (steps > rule.maxIncrement) {
      this.#stats.counterResyncs++;
      this.#warn(
        r,
        `counter ${rule.tag} jumped from ${last} to ${v}: more than maxIncrement ${rule.maxIncrement}; no events`,
      );
      return;
    }
    // The parts were made between the previous reading and this one. A context key that changed in
    // that interval cannot be told for any of them (made before or after the change?): it is left out
    // and the event says why, rather than book another lot's parts to the new one. The reference is
    // the context at the previous reading, or at a later context change if this reading is not older.
    const reference = !basis
      ? undefined
      : timeMs >= basis.atMs
        ? basis.context
        : (basis.before ?? basis.context);
    const unknown = spanKeys.filter((k) => (reference ? reference[k] !== known[k] : known[k] !== undefined));
    let context = this.#contextOf(r);
    let note: EventValue | undefined;
    if (unknown.length > 0) {
      context = without(context, unknown);
      note = {
        v: `${unknown.join(', ')} unknown: ${unknown.length > 1 ? 'they' : 'it'} changed between two readings of the counter (${last} and ${v})`,
        q: 'uncertain',
      };
      this.#stats.contextUnknown += steps;
      this.#warn(r, `counter ${rule.tag} ${last} → ${v}: ${note.v}; ${steps} part(s) booked without it`);
    }
    const wrapAt = rule.rollover;
    for (let i = 0; i < steps; i++) {
      let count = from + i;
      if (wrapAt !== undefined && count > wrapAt) count -= wrapAt + 1;
      const lastPart = i === steps - 1;
      const values = lastPart ? this.#valuesOf(r) : this.#unobserved(r);
      const ctx = lastPart ? context : withoutProduct(context);
      values[rule.tag] = withUnit(
        { v: count, q: r.trigger!.quality === 'uncertain' ? 'uncertain' : 'good' },
        r.trigger!,
      );
      if (note) values[contextNoteKey] = { ...note };
      drafts.push(this.#draft(r, rule.kind as EventKind, timeMs, ctx, values));
    }
  }

  /** The last known value of each context key of a rule, readable now or not (for comparisons). */
  #knownContext(r: RuleState): ContextValues {
    const out: ContextValues = {};
    for (const k of contextKeys) {
      const slot = r.context[k];
      if (!slot?.known) continue;
      const text = contextText(slot.value);
      if (text !== undefined) out[k] = text;
    }
    return out;
  }

  /** A lot or step seen at start-up without a change: remember its context for its finish. */
  #baselineStarted(r: RuleState, v: ReadingValue): void {
    const pair = finishedKind[r.rule.kind as EventKind];
    if (pair && present(v)) r.started = { ...this.#contextOf(r), [pair.key]: String(v) };
  }

  #plain(r: RuleState, timeMs: number): EventDraft {
    return this.#draft(r, r.rule.kind as EventKind, timeMs, this.#contextOf(r), this.#valuesOf(r));
  }

  #draft(
    r: RuleState,
    kind: EventKind,
    timeMs: number,
    context: ContextValues,
    values: Record<string, EventValue>,
  ): EventDraft {
    this.#stats.events[kind] = (this.#stats.events[kind] ?? 0) + 1;
    const draft: EventDraft = {
      kind,
      dataClass: r.dataClass,
      station: r.device.station,
      device: r.device.id,
      sourceTimeMs: timeMs,
      rule: r.rule.name,
      values,
    };
    if (context.lot !== undefined) draft.lot = context.lot;
    if (context.product !== undefined) draft.product = context.product;
    if (context.order !== undefined) draft.order = context.order;
    if (context.step !== undefined) draft.step = context.step;
    return draft;
  }

  #contextOf(r: RuleState): ContextValues {
    const out: ContextValues = {};
    for (const k of contextKeys) {
      const slot = r.context[k];
      if (!slot || !usable(slot) || !present(slot.value)) continue;
      const text = String(slot.value);
      if (!text.isWellFormed()) {
        // A lone surrogate (say, from a JSON payload's "\ud800") names nothing and has no canonical
        // encoding: the context is left out, as unknown.
        this.#stats.contextMalformed++;
        continue;
      }
      if (text.length > contextCharsMax && codePoints(text) > contextCharsMax) {
        this.#stats.contextTooLong++;
        continue;
      }
      out[k] = text;
    }
    return out;
  }

  #valuesOf(r: RuleState): Record<string, EventValue> {
    const out: Record<string, EventValue> = {};
    for (const slot of r.values) {
      if (!usable(slot)) {
        out[slot.name] = withUnit({ v: null, q: 'bad' }, slot);
        continue;
      }
      let v = slot.value;
      let q = slot.quality as Quality;
      if (typeof v === 'string' && !v.isWellFormed()) {
        // Lone surrogates become U+FFFD: the text is kept, marked uncertain, and can be signed.
        v = v.toWellFormed();
        q = 'uncertain';
      }
      if (typeof v === 'string' && v.length > textValueCharsMax && codePoints(v) > textValueCharsMax) {
        // Cut between code points: half a surrogate pair has no canonical encoding.
        v = Array.from(v).slice(0, textValueCharsMax).join('');
        q = 'uncertain';
      } else if (typeof v === 'number' && !Number.isFinite(v)) {
        // NaN and infinities have no JSON form: a sensor fault, not a measurement.
        v = null;
        q = 'bad';
      }
      out[slot.name] = withUnit({ v, q }, slot);
    }
    return out;
  }

  /** The rule's values as not observed (for parts counted between two reads). */
  #unobserved(r: RuleState): Record<string, EventValue> {
    const out: Record<string, EventValue> = {};
    for (const slot of r.values) out[slot.name] = withUnit({ v: null, q: 'bad' }, slot);
    return out;
  }

  #warn(r: RuleState, msg: string): void {
    this.#log?.warn(msg, { device: r.device.id, rule: r.rule.name });
  }
}

export function createNormaliser(
  devices: readonly NormaliserDevice[],
  options: NormaliserOptions,
): Normaliser {
  return new Normaliser(devices, options);
}

function usable(slot: TagSlot): boolean {
  return slot.quality === 'good' || slot.quality === 'uncertain';
}

function present(v: ReadingValue | undefined): boolean {
  return v !== null && v !== undefined && v !== '';
}

function truthy(v: ReadingValue): boolean {
  return v !== null && v !== false && v !== 0 && v !== '' && v !== '0' && v !== 'false';
}

function sameValue(a: ReadingValue, b: ReadingValue): boolean {
  return a === b || (typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b));
}

function withUnit(value: EventValue, slot: TagSlot): EventValue {
  if (slot.unit !== undefined) value.unit = slot.unit;
  return value;
}

function without(ctx: ContextValues, keys: readonly ContextKey[]): ContextValues {
  const out: ContextValues = {};
  for (const k of contextKeys) if (ctx[k] !== undefined && !keys.includes(k)) out[k] = ctx[k];
  return out;
}

/** A context value as the text events carry, or undefined for "none" (null, empty). */
function contextText(v: ReadingValue): string | undefined {
  return present(v) ? String(v) : undefined;
}

function sameContext(a: ContextValues, b: ContextValues): boolean {
  return contextKeys.every((k) => a[k] === b[k]);
}

function copyBasis(b: CounterBasis): CounterBasis {
  const out: CounterBasis = { context: { ...b.context }, atMs: b.atMs };
  if (b.before) out.before = { ...b.before };
  return out;
}

function withoutProduct(ctx: ContextValues): ContextValues {
  if (ctx.product === undefined) return ctx;
  const { product: _product, ...rest } = ctx;
  return rest;
}

function isTimeOrdered(readings: readonly Reading[]): boolean {
  for (let i = 1; i < readings.length; i++) {
    if (readings[i]!.sourceTimeMs < readings[i - 1]!.sourceTimeMs) return false;
  }
  return true;
}

/** The first multiple of `every` strictly after `nowMs`. */
function alignedAfter(nowMs: number, every: number): number {
  return (Math.floor(nowMs / every) + 1) * every;
}
