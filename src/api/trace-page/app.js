// masbc-edge customer trace page (src/api/trace-page.ts serves it). The customer opens
// /trace#token=<credential>&order=<order> (the fragment never reaches a server log) or pastes its
// credential. The page asks the member's API for the order's trace with its proof bundle
// (GET /v1/trace?order=…, Authorization: Bearer), checks every event in this browser against the
// alliance's genesis with the same verifier as `masbc-edge verify`, shows products, a timeline and
// each event's verdict, and follows the order live: each next request long-polls (`after` the height
// it has, `waitMs`), so the server answers as soon as a new event of the order is final, or at the
// deadline with the trace as it is. Everything is written with textContent: nothing from the server
// is ever parsed as HTML.
import { VerifyCache, verifyProofBundle } from '/trace/verifier.js';

/** Retry after an error; and the least time between two requests (a server that does not wait). */
const retryMs = 2000;
const gapMs = 500;
/** How long the server may hold a request for a new event (it checks the trace again at the end). */
const waitMs = 10_000;
const tokenKey = 'masbc-trace-credential';
const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  orders: [],
  order: null,
  genesis: null,
  cache: new VerifyCache(),
  timer: null,
  after: 0,
  shown: null,
  generation: 0,
};

/** The claims of a compact JWS, read without checking it (the member's API checks it). */
function claimsOf(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(b64), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''),
    );
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

function showMessage(text) {
  const m = $('message');
  m.textContent = text;
  m.hidden = !text;
}

function showLogin(order) {
  $('login').hidden = false;
  $('trace').hidden = true;
  fillOrders($('order-choice'), order ? [order] : []);
}

function fillOrders(select, orders) {
  select.replaceChildren(
    ...orders.map((o) => {
      const opt = document.createElement('option');
      opt.value = o;
      opt.textContent = o;
      return opt;
    }),
  );
}

async function begin(token, wanted) {
  const claims = claimsOf(token.trim());
  if (!claims) {
    showMessage('This is not a credential (expected a JWT of three dot-separated parts).');
    showLogin();
    return;
  }
  state.token = token.trim();
  state.orders = Array.isArray(claims.orders) ? claims.orders.filter((o) => typeof o === 'string') : [];
  state.order = wanted || state.orders[0] || null;
  sessionStorage.setItem(tokenKey, state.token);
  $('login').hidden = true;
  if (!state.order) {
    showMessage('This credential names no order.');
    return;
  }
  $('order').textContent = state.order;
  const switcher = $('order-switch');
  fillOrders(switcher, [...new Set([...state.orders, state.order])]);
  switcher.value = state.order;
  switcher.hidden = state.orders.length < 2;
  if (!state.genesis) {
    const res = await fetch('/trace/genesis.json', { cache: 'no-store' });
    state.genesis = await res.json();
  }
  state.generation++;
  state.shown = null;
  state.after = 0;
  clearTimeout(state.timer);
  await poll(state.generation);
}

async function poll(generation) {
  if (generation !== state.generation) return;
  let again = true;
  let delayMs = retryMs;
  try {
    const follow = state.after > 0 ? `&after=${state.after}&waitMs=${waitMs}` : '';
    const res = await fetch(`/v1/trace?order=${encodeURIComponent(state.order)}${follow}`, {
      headers: { authorization: `Bearer ${state.token}` },
      cache: 'no-store',
    });
    const text = await res.text();
    let body = {};
    try {
      body = JSON.parse(text);
    } catch {
      body = {};
    }
    if (generation !== state.generation) return;
    if (!res.ok) {
      const why = typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
      showMessage(`The supplier's server refused to show order ${state.order}: ${why}`);
      $('trace').hidden = true;
      $('timeline').tBodies[0].replaceChildren();
      $('products').tBodies[0].replaceChildren();
      again = res.status >= 500;
      return;
    }
    const bundle = body.bundle ?? body;
    const key = text;
    $('live').textContent = `live · checked ${new Date().toLocaleTimeString()}`;
    delayMs = gapMs;
    state.after = Number.isSafeInteger(bundle?.asOf?.height) ? bundle.asOf.height : 0;
    if (key === state.shown) return;
    const verdict = verifyProofBundle(bundle, state.genesis, { cache: state.cache });
    render(bundle, verdict);
    state.shown = key;
    showMessage('');
  } catch (err) {
    $('live').textContent = `offline (${err.message}); retrying`;
  } finally {
    if (again && generation === state.generation) {
      state.timer = setTimeout(() => poll(generation), delayMs);
    }
  }
}

function formatValues(values) {
  if (!values || typeof values !== 'object') return '';
  return Object.entries(values)
    .map(([name, x]) => {
      const v = x && typeof x === 'object' ? x : {};
      const unit = v.unit ? ` ${v.unit}` : '';
      const q = v.q && v.q !== 'good' ? ` (${v.q})` : '';
      return `${name}=${String(v.v)}${unit}${q}`;
    })
    .join(', ');
}

const timeOf = (ms) =>
  new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  if (className) td.className = className;
  return td;
}

function render(bundle, verdict) {
  const ok = new Map();
  for (const v of [...(verdict.events ?? []), ...(verdict.lifecycle ?? [])]) ok.set(v.id, v);
  const bundleLevel = !verdict.ok && ok.size === 0;
  $('trace').hidden = bundleLevel;
  if (bundleLevel) {
    $('proof').dataset.proof = 'bad';
    $('proof').textContent = 'not verified';
    showMessage(`The proof does not hold: ${verdict.first.code}: ${verdict.first.detail}`);
    return;
  }
  const events = bundle.events ?? [];
  const lifecycle = bundle.lifecycle ?? [];
  $('member').textContent = `at ${bundle.member}`;
  const kinds = lifecycle.filter((e) => ok.get(e.id)?.ok).map((e) => e.envelope.kind);
  const status = kinds.includes('order_closed')
    ? 'closed'
    : kinds.includes('order_in_production')
      ? 'in production'
      : kinds.includes('order_accepted')
        ? 'accepted'
        : 'open';
  $('status').textContent = status;
  $('status').dataset.status = status;

  const all = [...events, ...lifecycle];
  const bad = all.filter((e) => !ok.get(e.id)?.ok);
  $('proof').dataset.proof = bad.length === 0 && verdict.ok ? 'ok' : 'bad';
  $('proof').textContent =
    bad.length === 0
      ? verdict.ok
        ? `all ${all.length} events verified`
        : `not verified: ${verdict.first.code}`
      : `${bad.length} of ${all.length} events fail verification`;
  $('asof').textContent = `as of block ${bundle.asOf.height}`;
  $('genesis').textContent =
    `checked in this browser against genesis ${String(bundle.genesisHash).slice(0, 16)}…`;
  const first = verdict.ok ? null : verdict.first;
  $('completeness').textContent =
    status !== 'closed'
      ? 'The order is not closed yet: completeness is proven when it closes.'
      : verdict.ok && verdict.summary.complete
        ? `Closed with ${events.length} events: complete, nothing was withheld.`
        : first?.code.startsWith('completeness')
          ? `INCOMPLETE: ${first.detail}`
          : 'Closed, but completeness is not proven while an event fails verification.';

  const rows = [...all].sort((a, b) => a.envelope.sourceTimeMs - b.envelope.sourceTimeMs);
  $('timeline').tBodies[0].replaceChildren(
    ...rows.map((e) => {
      const v = ok.get(e.id);
      const tr = document.createElement('tr');
      tr.dataset.eventId = e.id;
      tr.dataset.verified = v?.ok ? 'yes' : 'no';
      if (!v?.ok) tr.className = 'tampered';
      const proof = v?.ok ? '✓ verified' : `✗ ${v?.code ?? 'unchecked'}`;
      const proofCell = cell(proof, v?.ok ? 'proof-ok' : 'proof-bad');
      if (v?.detail) proofCell.title = v.detail;
      tr.append(
        cell(timeOf(e.envelope.sourceTimeMs)),
        cell(e.body.product),
        cell(e.body.station),
        cell(e.body.step),
        cell(e.envelope.kind.replace(/_/g, ' ')),
        cell(formatValues(e.body.values)),
        proofCell,
      );
      return tr;
    }),
  );

  const products = new Map();
  for (const e of events) {
    const name = typeof e.body.product === 'string' ? e.body.product : null;
    if (!name) continue;
    const p = products.get(name) ?? { lots: new Set(), events: 0, steps: new Set(), last: 0, bad: 0 };
    if (e.body.lot) p.lots.add(e.body.lot);
    if (e.body.step) p.steps.add(e.body.step);
    p.events++;
    p.last = Math.max(p.last, e.envelope.sourceTimeMs);
    if (!ok.get(e.id)?.ok) p.bad++;
    products.set(name, p);
  }
  $('products').tBodies[0].replaceChildren(
    ...[...products.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, p]) => {
        const tr = document.createElement('tr');
        tr.dataset.product = name;
        if (p.bad) tr.className = 'tampered';
        tr.append(
          cell(name),
          cell([...p.lots].join(', ')),
          cell(String(p.events), 'num'),
          cell([...p.steps].join(' → ')),
          cell(timeOf(p.last)),
          cell(p.bad ? `✗ ${p.bad} tampered` : '✓ verified', p.bad ? 'proof-bad' : 'proof-ok'),
        );
        return tr;
      }),
  );
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  showMessage('');
  begin($('credential').value, $('order-choice').value || null);
});
$('credential').addEventListener('input', () => {
  const claims = claimsOf($('credential').value.trim());
  fillOrders($('order-choice'), Array.isArray(claims?.orders) ? claims.orders : []);
});
$('order-switch').addEventListener('change', () => begin(state.token, $('order-switch').value));

/** Reads `#token=…&order=…` (a link from the supplier, or an edited address). */
function fromAddress() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const fromLink = hash.get('token');
  const wanted = hash.get('order');
  if (fromLink) {
    // Keep the credential out of the address bar (and of anything copied from it).
    history.replaceState(
      null,
      '',
      `${location.pathname}${wanted ? `#order=${encodeURIComponent(wanted)}` : ''}`,
    );
  }
  const token = fromLink ?? state.token ?? sessionStorage.getItem(tokenKey);
  showMessage('');
  if (token) begin(token, wanted);
  else showLogin(wanted);
}

window.addEventListener('hashchange', fromAddress);
fromAddress();
