/**
 * Mapping MQTT messages to readings, as pure functions: topic filters with + and #, JSON paths,
 * `where` conditions, types and source timestamps. The driver adds the connection around it.
 *
 * A message is mapped whole or not at all (as Telegraf's parsers and Node-RED's JSON node do): every tag
 * whose topic and `where` match must find a value of its type, else the message yields no readings
 * and its problems make it a dead letter. Applying half a message would be worse than none: a scan
 * whose quantity is garbage must not report a consumption with the previous scan's quantity. A bad
 * source timestamp is only a warning: the readings keep the arrival time and quality `uncertain`.
 * A payload that is not well-formed UTF-8 is refused whole (never decoded with replacement characters).
 */
import { mqttTopicCacheMax } from '../bounds.ts';
import type { Quality, Reading, ReadingValue } from '../types.ts';

export interface MappingTag {
  name: string;
  topic: string;
  value: string;
  where?: Record<string, string | number | boolean> | undefined;
  timestamp?: string | undefined;
  type?: 'number' | 'string' | 'boolean' | undefined;
}

/** A JSON path compiled to its steps: property names and array indices. */
export type PathSteps = readonly (string | number)[];

export function compilePath(path: string): PathSteps {
  const steps: (string | number)[] = [];
  const re = /\.([A-Za-z0-9_-]+)|\[(\d+)\]/g;
  let m: RegExpExecArray | null = re.exec(path);
  while (m !== null) {
    steps.push(m[1] !== undefined ? m[1] : Number(m[2]));
    m = re.exec(path);
  }
  return steps;
}

const missing = Symbol('missing');

export function pathGet(doc: unknown, steps: PathSteps): unknown {
  let v = doc;
  for (const s of steps) {
    if (v === null || typeof v !== 'object') return missing;
    if (typeof s === 'number') {
      if (!Array.isArray(v) || s >= v.length) return missing;
      v = v[s];
    } else {
      if (Array.isArray(v) || !Object.hasOwn(v, s)) return missing;
      v = (v as Record<string, unknown>)[s];
    }
  }
  return v;
}

/** MQTT topic filter matching (MQTT 3.1.1 §4.7): `+` one level, `#` the rest (including none). */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  // Topics starting with $ (e.g. $SYS) never match a filter starting with a wildcard.
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Checks a topic filter: `#` only last and alone in its level, `+` alone in its level. */
export function topicFilterProblem(filter: string): string | null {
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return '"#" must be a whole last level';
    if (l.includes('+') && l !== '+') return '"+" must be a whole level';
  }
  return null;
}

interface CompiledTag {
  name: string;
  filter: string;
  value: PathSteps;
  valuePath: string;
  where: { steps: PathSteps; path: string; text: string }[];
  timestamp: PathSteps | null;
  timestampPath: string | undefined;
  type: MappingTag['type'];
}

export interface MapResult {
  /** The readings of the message; none when there are problems. */
  readings: Reading[];
  /** Why the message could not be mapped (it is then a dead letter); empty when all went well. */
  problems: string[];
  /** Mapped anyway, with a remark (a bad source timestamp). */
  warnings: string[];
  /** Tags whose topic matched (0: the message was for nobody, e.g. a filtered-out zone). */
  matched: number;
}

/** Maps messages of one device; caches topic → tags (bounded). */
export class MessageMapper {
  readonly #device: string;
  readonly #tags: CompiledTag[];
  readonly #byTopic = new Map<string, CompiledTag[]>();

  constructor(device: string, tags: readonly MappingTag[]) {
    this.#device = device;
    this.#tags = tags.map((t) => {
      const problem = topicFilterProblem(t.topic);
      if (problem) throw new RangeError(`device ${device}, tag ${t.name}: topic "${t.topic}": ${problem}`);
      return {
        name: t.name,
        filter: t.topic,
        value: compilePath(t.value),
        valuePath: t.value,
        where: Object.entries(t.where ?? {}).map(([path, v]) => ({
          steps: compilePath(path),
          path,
          text: String(v),
        })),
        timestamp: t.timestamp ? compilePath(t.timestamp) : null,
        timestampPath: t.timestamp,
        type: t.type,
      };
    });
  }

  /** The distinct topic filters to subscribe to. */
  get filters(): string[] {
    return [...new Set(this.#tags.map((t) => t.filter))];
  }

  #tagsFor(topic: string): CompiledTag[] {
    let tags = this.#byTopic.get(topic);
    if (!tags) {
      tags = this.#tags.filter((t) => topicMatches(t.filter, topic));
      if (this.#byTopic.size >= mqttTopicCacheMax) this.#byTopic.clear();
      this.#byTopic.set(topic, tags);
    }
    return tags;
  }

  map(topic: string, payload: Buffer, arrivalMs: number): MapResult {
    const tags = this.#tagsFor(topic);
    const readings: Reading[] = [];
    const problems: string[] = [];
    const warnings: string[] = [];
    if (tags.length === 0) return { readings, problems, warnings, matched: 0 };
    // Never "repair" bad bytes into U+FFFD: "ORD-\xff\xfe" would become a signed "ORD-��".
    const text = decodeUtf8(payload);
    if (text === null) {
      problems.push(`payload is not valid UTF-8 (${firstBadUtf8Byte(payload)})`);
      return { readings, problems, warnings, matched: tags.length };
    }
    let doc: unknown = missing;
    let parseError = '';
    try {
      doc = JSON.parse(text);
    } catch (err) {
      parseError = (err as Error).message;
    }
    let matched = 0;
    let needJson = false;
    for (const tag of tags) {
      if (tag.where.length > 0) {
        if (doc === missing) continue; // cannot tell whether it is for this tag
        let ok = true;
        for (const w of tag.where) {
          const v = pathGet(doc, w.steps);
          if (v === missing || v === null || typeof v === 'object' || String(v) !== w.text) {
            ok = false;
            break;
          }
        }
        if (!ok) continue;
      }
      matched++;
      let raw: unknown;
      if (doc === missing) {
        // Not JSON: a bare value ("23.5", "ON") is fine for a tag that takes the whole payload.
        if (tag.value.length > 0) {
          needJson = true; // reported once below
          continue;
        }
        raw = bareValue(text, tag.type);
      } else {
        raw = pathGet(doc, tag.value);
      }
      const value = convert(raw, tag.type);
      if (typeof value === 'object' && value !== null) {
        problems.push(
          raw === missing
            ? `${tag.name}: ${tag.valuePath} not found`
            : `${tag.name}: ${value.problem} at ${tag.valuePath}`,
        );
        continue;
      }
      let sourceTimeMs = arrivalMs;
      let quality: Quality = 'good';
      let reason: string | undefined;
      if (tag.timestamp && doc !== missing) {
        const ts = timestampMs(pathGet(doc, tag.timestamp));
        if (ts === null) {
          quality = 'uncertain';
          reason = `${tag.name}: no valid timestamp at ${tag.timestampPath}; arrival time used`;
          warnings.push(reason);
        } else {
          sourceTimeMs = ts;
        }
      }
      const reading: Reading = { device: this.#device, tag: tag.name, value, quality, sourceTimeMs };
      if (reason) reading.reason = reason;
      readings.push(reading);
    }
    if (doc === missing && (needJson || matched === 0)) {
      problems.unshift(`invalid JSON: ${parseError}`);
    }
    if (problems.length > 0) readings.length = 0;
    return { readings, problems, warnings, matched };
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The payload as text, or null when it is not well-formed UTF-8. */
function decodeUtf8(payload: Uint8Array): string | null {
  try {
    return strictUtf8.decode(payload);
  } catch {
    return null;
  }
}

/** Where a payload stops being UTF-8: the first byte the lenient decoding replaced. */
function firstBadUtf8Byte(payload: Buffer): string {
  const replaced = Buffer.from(payload.toString('utf8'), 'utf8');
  let i = 0;
  while (i < payload.length && i < replaced.length && payload[i] === replaced[i]) i++;
  const byte = payload[Math.min(i, payload.length - 1)] ?? 0;
  return `first bad byte at offset ${i}: 0x${byte.toString(16).padStart(2, '0')}`;
}

function bareValue(text: string, type: MappingTag['type']): unknown {
  const t = text.trim();
  if (type === 'number') return t === '' ? missing : Number(t);
  if (type === 'boolean') {
    const l = t.toLowerCase();
    if (l === 'true' || l === 'on' || l === '1') return true;
    if (l === 'false' || l === 'off' || l === '0') return false;
    return t;
  }
  return text;
}

/** The reading value of a JSON value for a tag type, or a problem. */
function convert(raw: unknown, type: MappingTag['type']): ReadingValue | { problem: string } {
  if (raw === missing) return { problem: 'not found' };
  switch (type) {
    case 'number':
      if (typeof raw === 'number' && Number.isFinite(raw)) return raw;
      return { problem: `expected a number, got ${describe(raw)}` };
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      return { problem: `expected a boolean, got ${describe(raw)}` };
    case 'string':
      if (typeof raw === 'string') return raw;
      if (raw === null) return '';
      return { problem: `expected a string, got ${describe(raw)}` };
    default:
      if (raw === null || typeof raw === 'number' || typeof raw === 'string' || typeof raw === 'boolean')
        return raw;
      return { problem: `expected a number, string or boolean, got ${describe(raw)}` };
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

/** ms since the epoch from a number (ms, or s when below 1e11, i.e. before 1973 in ms) or ISO 8601. */
export function timestampMs(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v) && v > 0)
    return v < 1e11 ? Math.round(v * 1000) : Math.round(v);
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(v)) {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}
