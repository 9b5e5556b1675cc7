/**
 * The house's import rules (docs/architecture.md, CONTRIBUTING.md), checked on every `npm test`:
 * each domain folder of `src/` imports only from the domains listed for it below (all of them lower
 * floors), so data and dependencies flow one way; there is no cycle between folders (the table is
 * checked to be acyclic) and none between files (static, type-only and dynamic imports all count).
 *
 * Adding a folder means adding its row here, with the floors it may use.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Domain → the domains its files may import (its own folder is always allowed). */
const allowed: Record<string, readonly string[]> = {
  crypto: [],
  log: [],
  config: ['crypto'],
  event: ['crypto'],
  drivers: ['config'],
  normaliser: ['drivers', 'event', 'config', 'crypto'],
  store: ['event', 'crypto'],
  'consensus/core': ['crypto'],
  'consensus/wire': ['consensus/core', 'crypto'],
  'consensus/genesis': ['consensus/core', 'consensus/wire', 'config', 'crypto'],
  'consensus/net': ['consensus/genesis', 'consensus/wire', 'consensus/core', 'crypto'],
  'consensus/app': ['consensus/core', 'consensus/wire', 'event', 'crypto'],
  'consensus/runtime': [
    'consensus/app',
    'consensus/net',
    'consensus/genesis',
    'consensus/wire',
    'consensus/core',
    'store',
    'event',
    'crypto',
  ],
  api: ['consensus/runtime', 'consensus/app', 'consensus/wire', 'consensus/core', 'store', 'event', 'crypto'],
  validator: [
    'api',
    'consensus/runtime',
    'consensus/app',
    'consensus/net',
    'consensus/genesis',
    'consensus/core',
    'store',
    'crypto',
    'log',
  ],
  gateway: [
    'validator',
    'consensus/runtime',
    'consensus/genesis',
    'normaliser',
    'drivers',
    'store',
    'event',
    'config',
    'crypto',
    'log',
  ],
  devtools: ['gateway', 'consensus/genesis', 'config', 'crypto'],
  // The operator's side: status page, metrics and health of a gateway or a validator.
  observe: ['gateway', 'validator', 'consensus/runtime', 'consensus/core', 'drivers', 'store', 'log'],
  cli: [
    'observe',
    'devtools',
    'gateway',
    'validator',
    'api',
    'consensus/runtime',
    'consensus/app',
    'consensus/net',
    'consensus/genesis',
    'consensus/wire',
    'consensus/core',
    'normaliser',
    'drivers',
    'store',
    'event',
    'config',
    'crypto',
    'log',
    'simulators',
  ],
};

/** The domain a path belongs to: its first folder under src/, or two levels for consensus. */
function domainOf(path: string): string {
  if (!path.startsWith('src/')) return path.split('/')[0]!;
  const parts = path.split('/');
  if (parts[1] === 'consensus') return `consensus/${parts[2]}`;
  return parts[1]!;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** The source without comments and with string and template contents blanked (quotes kept). */
function code(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === '/' && next === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (c === "'" || c === '"' || c === '`') {
      const start = i++;
      while (i < text.length && text[i] !== c) i += text[i] === '\\' ? 2 : 1;
      const body = text.slice(start + 1, i);
      // Keep module specifiers (they are what we look for); blank other literals.
      out += c + (body.startsWith('.') && body.endsWith('.ts') ? body : '') + c;
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const specifier = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.[^'"]*\.ts)['"]/g;

/** Relative imports of each file under `roots`, as repository-relative paths. */
function importGraph(roots: readonly string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of roots.flatMap((r) => sourceFiles(r))) {
    const targets = [...code(readFileSync(file, 'utf8')).matchAll(specifier)].map((m) =>
      normalize(join(dirname(file), m[1]!)),
    );
    graph.set(file, targets);
  }
  return graph;
}

function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  // Tarjan's strongly connected components; any component of more than one node is a cycle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return found;
}

const graph = importGraph(['src']);

describe('the layout of src/', () => {
  it('reads the imports it checks (the parser sees static, type-only and dynamic imports)', () => {
    const gateway = graph.get('src/gateway/chain-link.ts') ?? [];
    expect(gateway).toContain('src/validator/validator.ts'); // static
    expect(gateway).toContain('src/consensus/runtime/client.ts'); // type-only
    expect(gateway).toContain('src/gateway/chain-thread.ts'); // dynamic
    expect(graph.get('src/drivers/registry.ts')).toContain('src/drivers/opcua/driver.ts'); // dynamic
    // An example in a comment is not an import.
    expect(graph.get('src/drivers/common/lazy.ts')).not.toContain('src/drivers/common/opcua/driver.ts');
  });

  it('puts every folder of src/ in the table of domains', () => {
    const domains = new Set([...graph.keys()].map(domainOf));
    expect([...domains].filter((d) => !(d in allowed))).toEqual([]);
  });

  it('has floors: the table of allowed imports between domains is acyclic', () => {
    const table = new Map(Object.entries(allowed).map(([d, deps]) => [d, [...deps]]));
    expect(cycles(table)).toEqual([]);
  });

  it('imports only from lower floors, as the table says', () => {
    const wrong: string[] = [];
    for (const [file, targets] of graph) {
      const from = domainOf(file);
      for (const target of targets) {
        const to = domainOf(target);
        if (to !== from && !allowed[from]?.includes(to))
          wrong.push(`${file} -> ${relative('.', target)} (${from} may not import ${to})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('has no source file above 800 lines (a bigger one holds more than one concern: split it)', () => {
    const long = sourceFiles('src')
      .map((f) => [f, readFileSync(f, 'utf8').split('\n').length - 1] as const)
      .filter(([, lines]) => lines > 800)
      .map(([f, lines]) => `${f}: ${lines} lines`);
    expect(long).toEqual([]);
  });

  it('has no import cycle between files', () => {
    expect(cycles(graph)).toEqual([]);
  });
});
