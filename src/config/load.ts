/**
 * Loads one YAML file against a zod schema and reports every problem with file:line:col and the
 * field path, all at once. Secret references are resolved before validation (see secrets.ts); a
 * field that is exactly one reference takes its field's type (`port: ${env:PORT:-502}` is a number),
 * and a value that does not fit is reported with the reference it came from.
 *
 * @example
 *   const { value, issues } = loadYaml('config/devices/cnc1.yaml', deviceSchema);
 *   if (issues.length) throw new ConfigError(issues);
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { type ConfigIssue, fieldPath } from './errors.ts';
import { isSecretKey, resolveReferences } from './secrets.ts';

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Checks across fields, run on the raw document whether or not the schema passes. */
  crossCheck?: (raw: unknown) => { path: PropertyKey[]; message: string }[];
  /** Read the file from this text instead of the disk (tests, stdin). */
  text?: string;
}

export interface Loaded<T> {
  value: T | undefined;
  issues: ConfigIssue[];
}

const aliasCountMax = 100;
const fileBytesMax = 1024 * 1024;

export function loadYaml<S extends z.ZodType>(
  file: string,
  schema: S,
  options: LoadOptions = {},
): Loaded<z.output<S>> {
  let text = options.text;
  if (text === undefined) {
    try {
      const buf = readFileSync(file);
      if (buf.byteLength > fileBytesMax) {
        return fail(file, `file is larger than ${fileBytesMax} bytes; is this really a configuration file?`);
      }
      text = buf.toString('utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return fail(
        file,
        code === 'ENOENT' ? 'file does not exist' : `cannot read file: ${(err as Error).message}`,
      );
    }
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true });
  const position = (offset: number) => lineCounter.linePos(offset);
  const issues: ConfigIssue[] = [];
  for (const err of doc.errors) {
    const { line, col } = err.linePos?.[0] ?? position(err.pos[0]);
    issues.push({ file, line, col, field: '', message: yamlMessage(err.code, err.message) });
  }
  if (issues.length > 0) return { value: undefined, issues };
  if (doc.contents === null) return fail(file, 'file is empty');

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: aliasCountMax });
  } catch (err) {
    return fail(file, (err as Error).message);
  }

  const at = (path: readonly PropertyKey[], onKey = false): { line: number; col: number } => {
    const range = locate(doc.contents as Node, path, onKey);
    return range ? position(range) : { line: 1, col: 1 };
  };

  // Resolve ${env:…}/${file:…} and refuse literal secrets, keeping each problem's position.
  const ctx = { env: options.env ?? process.env, baseDir: dirname(file) };
  const substituted = new Map<string, Substitution>();
  /** Fields whose reference could not be resolved: already reported, the schema need not repeat it. */
  const unresolved = new Set<string>();
  const resolved = walkStrings(raw, [], (text, path) => {
    const key = path[path.length - 1];
    const result = resolveReferences(text, ctx);
    if (!result.ok) {
      issues.push({ file, ...at(path), field: fieldPath(path), message: result.message });
      unresolved.add(pathKey(path));
      return text;
    }
    if (result.usedReference) {
      substituted.set(pathKey(path), { path, text, value: result.value, whole: wholeReference(text) });
    }
    if (typeof key === 'string' && isSecretKey(key) && !result.usedReference) {
      issues.push({
        file,
        ...at(path),
        field: fieldPath(path),
        message: `secrets never live in YAML: write \${env:NAME} or \${file:PATH} instead of a literal ${key}`,
      });
    }
    return result.value;
  });

  for (const c of options.crossCheck?.(resolved) ?? []) {
    issues.push({ file, ...at(c.path), field: fieldPath(c.path), message: c.message });
  }
  let parsed = schema.safeParse(resolved);
  // A substitution takes the type of its field: `port: ${env:PORT:-15020}` is the number 15020.
  const unfit = new Map<string, string>();
  if (!parsed.success && substituted.size > 0) {
    let converted = false;
    for (const issue of parsed.error.issues) {
      const sub = substituted.get(pathKey(issue.path));
      if (!sub?.whole || unfit.has(pathKey(issue.path))) continue;
      const typed = typedValue(sub.value);
      if (typed === undefined) {
        const expected = issue.code === 'invalid_type' ? issue.expected : 'another value';
        unfit.set(pathKey(issue.path), `${sub.whole} is ${describe(sub.value)}: expected a ${expected}`);
        continue;
      }
      setAt(resolved, issue.path, typed);
      converted = true;
    }
    if (converted) parsed = schema.safeParse(resolved);
  }
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = pathKey(issue.path);
      if (unresolved.has(key)) continue;
      const message = unfit.get(key);
      if (message) {
        issues.push({ file, ...at(issue.path), field: fieldPath(issue.path), message });
        continue;
      }
      const found = toConfigIssues(file, issue, resolved, at, schema);
      const sub = substituted.get(key);
      // Say where a value that does not fit came from: the variable, not just the text it gave.
      if (sub) {
        const from = sub.whole ? `${sub.whole} = ${describe(sub.value)}` : `"${sub.text}"`;
        for (const f of found) f.message += ` (from ${from})`;
      }
      issues.push(...found);
    }
  }
  issues.sort((a, b) => a.line - b.line || a.col - b.col);
  return { value: issues.length === 0 && parsed.success ? parsed.data : undefined, issues };
}

/** A string of the document that used ${env:…} or ${file:…}. */
interface Substitution {
  path: PropertyKey[];
  /** As written in the YAML. */
  text: string;
  /** After substitution. */
  value: string;
  /** The reference when it is the whole string (`${env:PORT}`), else null: only then is it typed. */
  whole: string | null;
}

const wholeReferencePattern = /^\$\{(env|file):([^}]*)\}$/;

/** `${env:NAME}` (default dropped) or `${file:PATH}` when `text` is exactly one reference. */
function wholeReference(text: string): string | null {
  const m = wholeReferencePattern.exec(text.trim());
  if (!m) return null;
  const arg = m[1] === 'env' ? m[2]!.split(':-')[0]!.trim() : m[2]!.trim();
  return `\${${m[1]}:${arg}}`;
}

/** A substituted text as the number or boolean a field of that type needs, or undefined. */
function typedValue(text: string): number | boolean | undefined {
  const t = text.trim();
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) return Number(t);
  if (t === 'true') return true;
  if (t === 'false') return false;
  return undefined;
}

function pathKey(path: readonly PropertyKey[]): string {
  return JSON.stringify(path.map(String));
}

function setAt(root: unknown, path: readonly PropertyKey[], value: unknown): void {
  let node = root as Record<PropertyKey, unknown>;
  for (let i = 0; i < path.length - 1; i++) node = node[path[i]!] as Record<PropertyKey, unknown>;
  node[path[path.length - 1]!] = value;
}

function fail(file: string, message: string): Loaded<never> {
  return { value: undefined, issues: [{ file, line: 0, col: 0, field: '', message }] };
}

function yamlMessage(code: string, message: string): string {
  const first = message.split('\n')[0] ?? message;
  return code === 'DUPLICATE_KEY'
    ? `duplicate key: ${first.replace(/ at line.*$/, '')}`
    : `YAML syntax: ${first}`;
}

function walkStrings(
  value: unknown,
  path: PropertyKey[],
  fn: (s: string, path: PropertyKey[]) => string,
): unknown {
  if (typeof value === 'string') return fn(value, path);
  if (Array.isArray(value)) return value.map((v, i) => walkStrings(v, [...path, i], fn));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = walkStrings(v, [...path, k], fn);
    return out;
  }
  return value;
}

/**
 * Offset of the node at `path` (or of its key when `onKey`); when the path runs out of the
 * document (a missing field), the deepest node that exists.
 */
function locate(root: Node, path: readonly PropertyKey[], onKey: boolean): number | undefined {
  let node: unknown = root;
  let keyOffset: number | undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
      );
      if (!pair) break;
      keyOffset = (pair.key as Node).range?.[0];
      node = pair.value ?? pair.key;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg]) {
      keyOffset = undefined;
      node = node.items[seg];
    } else {
      break;
    }
  }
  if (onKey && keyOffset !== undefined) return keyOffset;
  return (node as Node | undefined)?.range?.[0];
}

type AtFn = (path: readonly PropertyKey[], onKey?: boolean) => { line: number; col: number };

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `"${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  return `${typeof value} ${String(value)}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

function toConfigIssues(
  file: string,
  issue: z.core.$ZodIssue,
  root: unknown,
  at: AtFn,
  schema: z.ZodType,
): ConfigIssue[] {
  const path = issue.path;
  const actual = valueAt(root, path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        file,
        ...at([...path, key], true),
        field: fieldPath([...path, key]),
        message: `unknown key "${key}"${suggest(key, knownKeysAt(schema, root, path))}`,
      }));
    case 'invalid_type':
      if (actual === undefined) {
        return [
          {
            file,
            ...at(path),
            field: fieldPath(path),
            message: `required field is missing (expected ${issue.expected})`,
          },
        ];
      }
      return [
        {
          file,
          ...at(path),
          field: fieldPath(path),
          message: `expected ${issue.expected}, got ${describe(actual)}`,
        },
      ];
    case 'invalid_value':
      return [
        {
          file,
          ...at(path),
          field: fieldPath(path),
          message: `expected ${issue.values.map((v) => JSON.stringify(v)).join(' | ')}, got ${describe(actual)}`,
        },
      ];
    case 'invalid_union':
      if ('discriminator' in issue && issue.discriminator) {
        const options = (issue as { options?: unknown[] }).options ?? [];
        return [
          {
            file,
            ...at(path),
            field: fieldPath(path),
            message:
              actual === undefined
                ? `required field is missing (expected ${options.map((o) => JSON.stringify(o)).join(' | ')})`
                : `expected ${options.map((o) => JSON.stringify(o)).join(' | ')}, got ${describe(actual)}`,
          },
        ];
      }
      return [{ file, ...at(path), field: fieldPath(path), message: unionMessage(issue, actual) }];
    default:
      return [{ file, ...at(path), field: fieldPath(path), message: `${issue.message}` }];
  }
}

/** For a plain union, report the branch that got furthest rather than zod's generic message. */
function unionMessage(issue: z.core.$ZodIssueInvalidUnion, actual: unknown): string {
  const branches = issue.errors.filter((e) => e.length > 0);
  if (branches.length === 0) return `${issue.message}, got ${describe(actual)}`;
  // A branch of the right type but a wrong value (a bad format, say) says more than a type mismatch.
  const rightType = branches.filter((b) => b[0]?.code !== 'invalid_type');
  const best = (rightType.length ? rightType : branches).reduce((a, b) => (a.length <= b.length ? a : b));
  const first = best[0]!;
  const where = first.path.length ? `${fieldPath(first.path)}: ` : '';
  return `does not match any accepted form; closest: ${where}${first.message}`;
}

function suggest(key: string, known: string[]): string {
  const close = known.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
  return close ? ` (did you mean "${close}"?)` : '';
}

interface ZodDefLike {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  valueType?: z.ZodType;
}

function defOf(schema: z.ZodType): ZodDefLike {
  return (schema as unknown as { _zod: { def: ZodDefLike } })._zod.def;
}

/** The keys the schema accepts for the object at `path`, for a did-you-mean hint. */
function knownKeysAt(schema: z.ZodType, root: unknown, path: readonly PropertyKey[]): string[] {
  let s: z.ZodType | undefined = schema;
  let value = root;
  for (let i = 0; i <= path.length && s; ) {
    const def = defOf(s);
    if (def.innerType) s = def.innerType;
    else if (def.type === 'pipe') s = def.in;
    else if (def.type === 'union' && def.options) {
      // Pick the branch whose discriminator matches, else the one knowing most of the keys present.
      s = def.options
        .map((o) => ({ o, score: branchScore(o, value) }))
        .sort((a, b) => b.score - a.score)[0]?.o;
    } else if (i === path.length) {
      return def.type === 'object' && def.shape ? Object.keys(def.shape) : [];
    } else {
      const seg = path[i++]!;
      value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[seg] : undefined;
      if (def.type === 'object' && def.shape) s = def.shape[String(seg)];
      else if (def.type === 'array') s = def.element;
      else if (def.type === 'record') s = def.valueType;
      else return [];
    }
  }
  return [];
}

function branchScore(option: z.ZodType, value: unknown): number {
  if (!value || typeof value !== 'object') return 0;
  let def = defOf(option);
  while (def.innerType) def = defOf(def.innerType);
  if (def.type !== 'object' || !def.shape) return 0;
  let score = 0;
  for (const [key, v] of Object.entries(value)) {
    const field = def.shape[key];
    if (!field) continue;
    const fieldDef = defOf(field) as ZodDefLike & { values?: unknown[] };
    score += fieldDef.type === 'literal' && fieldDef.values?.includes(v) ? 1000 : 1;
  }
  return score;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}
