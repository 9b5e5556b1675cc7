/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests that scrape
 * `/metrics`: every sample must belong to a family announced by `# HELP` and `# TYPE`, names and
 * label names must be valid, label values correctly escaped, values numbers; counters end in
 * `_total`; a histogram's buckets are cumulative and its `+Inf` bucket equals its `_count`. Any
 * breach throws with the offending line, so a scrape that parses is a scrape Prometheus takes.
 * The naming conventions (a counter ends in `_total` and nothing else does) are checked on the
 * families with `ownPrefix`: prom-client's default metrics keep their own names
 * (`nodejs_active_resources_total` is a gauge).
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  samples: Sample[];
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function parsePrometheus(text: string, ownPrefix = 'masbc_'): Map<string, Family> {
  const families = new Map<string, Family>();
  const lines = text.split('\n');
  if (lines[lines.length - 1] !== '') throw new Error('the exposition must end with a newline');
  for (const [i, line] of lines.entries()) {
    const where = `line ${i + 1}: ${line}`;
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      const [, name, help] = /^# HELP (\S+) ?(.*)$/.exec(line) ?? [];
      if (!name || !metricName.test(name)) throw new Error(`bad HELP name, ${where}`);
      if (families.has(name)) throw new Error(`family announced twice, ${where}`);
      families.set(name, { name, help: help ?? '', type: 'untyped', samples: [] });
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [, name, type] = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line) ?? [];
      const family = name ? families.get(name) : undefined;
      if (!family || !type) throw new Error(`TYPE without HELP or with a bad type, ${where}`);
      if (family.samples.length > 0) throw new Error(`TYPE after samples, ${where}`);
      family.type = type as Family['type'];
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = parseSample(line, where);
    const family = familyOf(families, sample.name);
    if (!family) throw new Error(`sample of no announced family, ${where}`);
    family.samples.push(sample);
  }
  for (const f of families.values()) check(f, f.name.startsWith(ownPrefix));
  return families;
}

function parseSample(line: string, where: string): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( \d+)?$/.exec(line);
  if (!m) throw new Error(`not a sample, ${where}`);
  const labels: Record<string, string> = {};
  const body = m[3] ?? '';
  let i = 0;
  while (i < body.length) {
    const eq = body.indexOf('=', i);
    const name = body.slice(i, eq);
    if (eq < 0 || !labelName.test(name)) throw new Error(`bad label name, ${where}`);
    if (body[eq + 1] !== '"') throw new Error(`label value not quoted, ${where}`);
    let j = eq + 2;
    let value = '';
    while (j < body.length && body[j] !== '"') {
      if (body[j] === '\\') {
        const next = body[j + 1];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`bad escape in a label value, ${where}`);
        j += 2;
      } else {
        value += body[j];
        j++;
      }
    }
    if (j >= body.length) throw new Error(`unterminated label value, ${where}`);
    if (name in labels) throw new Error(`label given twice, ${where}`);
    labels[name] = value;
    i = j + 1;
    if (body[i] === ',') i++;
    else if (i < body.length) throw new Error(`expected , between labels, ${where}`);
  }
  const raw = m[4]!;
  // Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case: prom-client
  // writes `Nan` (e.g. nodejs_eventloop_lag_mean_seconds before the first sample).
  const special = /^([+-]?)(inf|nan)$/i.exec(raw);
  const value = special
    ? special[2]!.toLowerCase() === 'nan'
      ? NaN
      : special[1] === '-'
        ? -Infinity
        : Infinity
    : Number(raw);
  if (Number.isNaN(value) && !special) throw new Error(`value is not a number, ${where}`);
  return { name: m[1]!, labels, value };
}

function familyOf(families: Map<string, Family>, sample: string): Family | undefined {
  const direct = families.get(sample);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suffix)) continue;
    const f = families.get(sample.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
  }
  return undefined;
}

function check(f: Family, conventions: boolean): void {
  if (f.type === 'untyped') throw new Error(`${f.name}: no TYPE`);
  if (f.help.trim() === '') throw new Error(`${f.name}: empty HELP`);
  if (conventions && f.type === 'counter' && !f.name.endsWith('_total'))
    throw new Error(`${f.name}: a counter not named _total`);
  if (conventions && f.type !== 'counter' && f.name.endsWith('_total'))
    throw new Error(`${f.name}: _total on a ${f.type}`);
  if (f.type === 'counter' && f.samples.some((s) => s.value < 0))
    throw new Error(`${f.name}: negative counter`);
  const seen = new Set<string>();
  for (const s of f.samples) {
    const key = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
    if (seen.has(key)) throw new Error(`${f.name}: series given twice: ${key}`);
    seen.add(key);
  }
  if (f.type !== 'histogram') return;
  const series = new Map<string, { buckets: { le: number; v: number }[]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${f.name}: bucket without le`);
      entry.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), v: s.value });
    } else if (s.name.endsWith('_count')) entry.count = s.value;
    else if (s.name.endsWith('_sum')) entry.sum = s.value;
  }
  for (const [key, e] of series) {
    if (e.count === undefined || e.sum === undefined) throw new Error(`${f.name}${key}: no _count or _sum`);
    for (let i = 1; i < e.buckets.length; i++) {
      if (!(e.buckets[i]!.le > e.buckets[i - 1]!.le))
        throw new Error(`${f.name}${key}: bucket bounds not increasing`);
      if (e.buckets[i]!.v < e.buckets[i - 1]!.v) throw new Error(`${f.name}${key}: buckets not cumulative`);
    }
    const inf = e.buckets[e.buckets.length - 1];
    if (!inf || inf.le !== Infinity || inf.v !== e.count)
      throw new Error(`${f.name}${key}: +Inf bucket ≠ _count`);
  }
}

/** The value of one series (labels matched as given), or undefined. */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const family = familyOf(families, name);
  return family?.samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}
