/**
 * The customer's trace page in headless Chromium, against a real validator's API: its stores, the
 * real producer behind GET /v1/trace, the credentials and policy of the member's API, and the page
 * plugin (src/api/trace-page.ts) registered on it. The customer logs in by link and by pasting a
 * credential issued with acme's identity root, sees its order's parts and events each verified in the
 * browser, sees a new event arrive, sees an event whose body was edited in the member's database
 * flagged, and cannot see another order. Nothing is loaded from another origin. A screenshot of the
 * page with the tampered event is saved to test-artifacts/trace-page.png (git-ignored).
 *
 * Chromium is Debian's, driven by playwright-core; where it cannot be launched the test is skipped
 * with the reason printed, and with MASBC_REQUIRE_CHROMIUM=1 (CI) that is a failure instead.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { orderSummary, selectScope } from '../../src/api/proof/order-events.ts';
import { tempDir } from '../helpers/tmp.ts';
import { tokenFor } from './credentials-fixture.ts';
import {
  closedValues,
  officeDraft,
  partDraft,
  startTraceFixture,
  statusDraft,
  type TraceFixture,
} from './proof/fixture.ts';

const artifacts = resolve(import.meta.dirname, '../../test-artifacts');
const chromiumPath = process.env.MASBC_CHROMIUM ?? '/usr/bin/chromium';
const chromiumArgs = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
];
/** The page polls every 2 s; generous slack for a loaded machine. */
const seenMs = 30_000;

declare const document: {
  querySelectorAll(
    selector: string,
  ): ArrayLike<{ textContent: string | null; getAttribute(n: string): string | null }>;
  getElementById(id: string): { textContent: string | null; hidden?: boolean } | null;
};

let browser: Browser | null = null;
let skipReason: string | null = null;
let fx: TraceFixture;
let url: string;
let dir: string;

const credential = (orders: string[]) =>
  tokenFor(fx.alliance, 'acme', { role: 'customer', subject: 'customer-1', orders });

beforeAll(async () => {
  try {
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, timeout: 60_000 });
  } catch (err) {
    skipReason = `Chromium cannot be launched (${chromiumPath}): ${(err as Error).message.split('\n')[0]}`;
    if (process.env.MASBC_REQUIRE_CHROMIUM !== '1') console.warn(`trace page test skipped: ${skipReason}`);
    return;
  }
  dir = tempDir('trace-page');
  fx = await startTraceFixture(dir, { api: true });
  url = fx.validator.apiUrl!.replace(/\/$/, '');
  await fx.commit(1, [
    { ...partDraft({ order: 'ORD-P', lot: 'LOT-1', product: 'SN-1' }), step: 'turning' },
    { ...partDraft({ order: 'ORD-P', lot: 'LOT-1', product: 'SN-2' }), step: 'turning' },
    statusDraft('ORD-P', 'LOT-1'),
    partDraft({ order: 'ORD-Q', lot: 'LOT-9', product: 'SN-90' }),
  ]);
  await fx.commit(2, [
    { ...partDraft({ order: 'ORD-P', lot: 'LOT-1', product: 'SN-1', diameter: 25.004 }), step: 'grinding' },
  ]);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await fx?.stop();
}, 60_000);

function watch(page: Page, origin: string) {
  const foreign: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(origin)) foreign.push(r.url());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return { foreign, errors };
}

const rowsVerified = () =>
  Array.from(document.querySelectorAll('#timeline tbody tr')).map((r) => r.getAttribute('data-verified'));

describe('the trace page in headless Chromium', () => {
  it("shows the customer its order's parts, each event verified in the browser, live; flags a tampered event; refuses another order", async (ctx) => {
    if (!browser) {
      if (process.env.MASBC_REQUIRE_CHROMIUM === '1')
        throw new Error(`${skipReason} (MASBC_REQUIRE_CHROMIUM=1)`);
      ctx.skip(skipReason ?? 'no browser');
      return;
    }
    const origin = new URL(url).origin;
    const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    const seen = watch(page, origin);
    await page.goto(`${url}/trace#token=${await credential(['ORD-P'])}`);

    // Its order: three process events, every one verified; the equipment event and ORD-Q's are not there.
    await page.waitForFunction(
      () => {
        const v = Array.from(document.querySelectorAll('#timeline tbody tr')).map((r) =>
          r.getAttribute('data-verified'),
        );
        return v.length === 3 && v.every((x) => x === 'yes');
      },
      undefined,
      { timeout: seenMs },
    );
    expect(await page.textContent('#order')).toBe('ORD-P');
    expect(await page.isVisible('#login')).toBe(false);
    expect(await page.getAttribute('#proof', 'data-proof')).toBe('ok');
    expect(await page.textContent('#proof')).toBe('all 3 events verified');
    const products = await page.$$eval('#products tbody tr', (rows) =>
      rows.map((r) =>
        Array.from(r.querySelectorAll('td'), (td) => (td as { textContent: string }).textContent),
      ),
    );
    expect(products).toEqual([
      ['SN-1', 'LOT-1', '2', 'turning → grinding', expect.any(String), '✓ verified'],
      ['SN-2', 'LOT-1', '1', 'turning', expect.any(String), '✓ verified'],
    ]);
    const timeline = await page.textContent('#timeline tbody');
    expect(timeline).toContain('diameter=25.004 mm');
    expect(timeline).not.toContain('equipment status');
    expect(timeline).not.toContain('SN-90');
    // The credential left the address bar.
    expect(page.url()).not.toContain('token=');

    // Live: a new event of the order appears without a reload.
    await fx.commit(1, [
      { ...partDraft({ order: 'ORD-P', lot: 'LOT-1', product: 'SN-3' }), step: 'turning' },
    ]);
    await page.waitForFunction(
      () => document.querySelectorAll('#timeline tbody tr').length === 4,
      undefined,
      {
        timeout: seenMs,
      },
    );

    // Closed (gw-2 stands for acme's office signer): the page shows the order complete.
    const kept = selectScope(fx.validator.bodies, { order: 'ORD-P' }, ['process'], 100).events;
    const summary = orderSummary(kept.filter((e) => e.height !== null).map((e) => e.id));
    expect(summary.eventCount).toBe(4);
    await fx.commit(2, [officeDraft('order_closed', 'ORD-P', { values: closedValues(summary) })]);
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'closed', undefined, {
      timeout: seenMs,
    });
    expect(await page.textContent('#completeness')).toBe(
      'Closed with 4 events: complete, nothing was withheld.',
    );
    expect(await page.textContent('#proof')).toBe('all 5 events verified');

    // Tampered: a body edited in the member's database is flagged, the others stay verified.
    const victim = fx.bundle({ scope: { order: 'ORD-P' } }).events.find((e) => e.body.product === 'SN-2')!;
    const db = new Database(join(dir, 'data', 'bodies.db'));
    db.prepare('UPDATE bodies SET body = replace(body, ?, ?) WHERE id = ?').run(
      '"v":25.001',
      '"v":25.101',
      victim.id,
    );
    db.close();
    await page.waitForSelector(`#timeline tbody tr[data-event-id="${victim.id}"][data-verified="no"]`, {
      timeout: seenMs,
    });
    expect(await page.textContent(`#timeline tbody tr[data-event-id="${victim.id}"] td:last-child`)).toBe(
      '✗ body_mismatch',
    );
    expect((await page.evaluate(rowsVerified)).filter((v) => v === 'no')).toHaveLength(1);
    expect(await page.getAttribute('#proof', 'data-proof')).toBe('bad');
    expect(await page.textContent('#completeness')).toMatch(
      /completeness is not proven while an event fails/,
    );
    expect(await page.textContent('#products tbody tr[data-product="SN-2"] td:last-child')).toBe(
      '✗ 1 tampered',
    );
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'trace-page.png'), fullPage: true });

    // Another order: the server refuses, the page says so and shows nothing of it.
    await page.goto(`${url}/trace#token=${await credential(['ORD-P'])}&order=ORD-Q`);
    await page.waitForFunction(() => !document.getElementById('message')?.hidden, undefined, {
      timeout: seenMs,
    });
    expect(await page.textContent('#message')).toMatch(
      /refused to show order ORD-Q: your credential does not cover order "ORD-Q"/,
    );
    expect(await page.$$('#timeline tbody tr')).toHaveLength(0);
    expect(await page.isVisible('#trace')).toBe(false);

    expect(seen.foreign).toEqual([]);
    expect(seen.errors.filter((e) => !/status of 403/.test(e))).toEqual([]);
    await page.close();
  }, 180_000);

  it('a customer can paste its credential instead of opening a link', async (ctx) => {
    if (!browser) {
      if (process.env.MASBC_REQUIRE_CHROMIUM === '1')
        throw new Error(`${skipReason} (MASBC_REQUIRE_CHROMIUM=1)`);
      ctx.skip(skipReason ?? 'no browser');
      return;
    }
    const page = await browser.newPage();
    await page.goto(`${url}/trace`);
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('#credential', await credential(['ORD-P']));
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#timeline tbody tr').length >= 3, undefined, {
      timeout: seenMs,
    });
    expect(await page.textContent('#order')).toBe('ORD-P');
    const headers = (await page.request.get(`${url}/trace`)).headers();
    expect(headers['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'/);
    await page.close();
  }, 120_000);
});
