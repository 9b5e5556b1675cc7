/**
 * docs/deploy.md describes what the code does today: its list of metric names is exactly what the
 * status server registers, its table of health reasons exactly the codes the rules can give, and
 * every route it lists is served.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { healthSchema } from '../../src/gateway/config/gateway-schema.ts';
import { healthCodes } from '../../src/observe/health.ts';
import { Observer } from '../../src/observe/observer.ts';
import { buildOpsApp } from '../../src/observe/server.ts';

const doc = readFileSync('docs/deploy.md', 'utf8');
const observer = new Observer({
  kind: 'gateway',
  name: 'doc',
  policy: healthSchema.parse({}),
  dataDir: null,
});

/** First-column cells of the markdown table whose header starts with `| <first> |`. */
function column(first: string): string[] {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.split('|')[1]?.trim() === first);
  expect(start, `a table headed "${first}"`).toBeGreaterThanOrEqual(0);
  const rows: string[] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    rows.push(/^\| `([^`]+)`/.exec(l)?.[1] ?? '');
  }
  return rows;
}

describe('docs/deploy.md', () => {
  it('lists exactly the metrics /metrics serves', () => {
    const { metrics } = buildOpsApp(observer);
    expect(column('metric')).toEqual([...metrics.names]);
  });

  it('lists exactly the health reasons the rules give', () => {
    expect(column('code')).toEqual([...healthCodes]);
  });

  it('lists routes the status server has', async () => {
    const { app } = buildOpsApp(observer);
    await app.ready();
    const routes = column('route');
    expect(routes.length).toBeGreaterThan(5);
    for (const r of routes) {
      const [method, path] = r.split(' ');
      expect(app.hasRoute({ method: method as 'GET', url: path!.split('?')[0]! }), r).toBe(true);
    }
    await app.close();
  });
});
