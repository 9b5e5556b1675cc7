// masbc-edge status page: renders the snapshots the gateway or validator pushes once a second
// (server-sent events from api/events), or polls api/status when live updates are not available.
// Every value is written as text (never as HTML): payloads of dead letters come from the field.

const pollMs = 2000;
const retryLiveMs = 30000;
let tagFilter = '';
let lastSnapshot = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === 'class') e.className = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
  return e;
}

function replaceChildren(node, children) {
  node.replaceChildren(...children);
}

const dash = '—';
const num = (n) => (n === null || n === undefined ? dash : Number(n).toLocaleString('en'));
const bytes = (n) => {
  if (n === null || n === undefined) return dash;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
};
const duration = (ms) => {
  if (ms === null || ms === undefined) return dash;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7200000) return `${Math.round(ms / 60000)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
};
const ago = (atMs, nowMs) => (atMs ? `${duration(Math.max(0, nowMs - atMs))} ago` : dash);
const clock = (ms) => (ms ? new Date(ms).toLocaleTimeString('en-GB') : dash);
const sum = (record) => Object.values(record || {}).reduce((a, b) => a + b, 0);
const show = (v) => (v === null ? 'null' : typeof v === 'string' ? v : String(v));

function tile(label, value, id) {
  return el(
    'div',
    { class: 'tile' },
    el('div', { class: 'label' }, label),
    el('div', { class: 'value', id }, value),
  );
}

function definitions(node, pairs) {
  replaceChildren(
    node,
    pairs.flatMap(([k, v, id]) => [el('dt', {}, k), el('dd', id ? { id } : {}, v)]),
  );
}

function render(s) {
  lastSnapshot = s;
  document.title = `${s.health.status === 'ok' ? '' : '⚠ '}${s.name} · masbc-edge`;
  $('name').textContent = s.name;
  $('kind').textContent = s.kind === 'gateway' ? 'gateway' : 'validator';
  const badge = $('health');
  badge.dataset.status = s.health.status;
  badge.textContent = s.health.status === 'ok' ? 'healthy' : s.health.status;
  $('updated').textContent = `updated ${clock(s.nowMs)} · up ${duration(s.nowMs - s.startedMs)}`;
  const reasons = $('reasons');
  reasons.hidden = s.health.reasons.length === 0;
  replaceChildren(
    reasons,
    s.health.reasons.map((r) =>
      el('li', { 'data-code': r.code, 'data-fatal': r.fatal }, `${r.code}: ${r.message}`),
    ),
  );

  const c = s.chain;
  const devicesUp = s.devices ? s.devices.filter((d) => d.state === 'connected').length : null;
  const tiles = [];
  if (s.devices) tiles.push(tile('devices up', `${devicesUp} / ${s.devices.length}`, 'devices-up'));
  if (s.devices) tiles.push(tile('readings/s', num(s.rates.readingsPerS), 'readings-rate'));
  if (s.devices) tiles.push(tile('events/s signed', num(s.rates.eventsPerS), 'events-rate'));
  if (s.outbox) tiles.push(tile('outbox pending', num(s.outbox.pending), 'outbox-pending'));
  if (s.outbox) tiles.push(tile('oldest pending', duration(s.outbox.oldestPendingAgeMs), 'oldest-pending'));
  if (s.deadLetters) tiles.push(tile('dead letters', num(s.deadLetters.total), 'dead-total'));
  if (c) {
    tiles.push(tile('chain height', num(c.height), 'chain-height'));
    tiles.push(
      tile('view', c.view === null ? dash : `${c.view}${c.viewChanging ? ' (changing)' : ''}`, 'chain-view'),
    );
    tiles.push(
      tile(
        'peers',
        c.peersConnected === null ? dash : `${c.peersConnected} / ${c.peers.length}`,
        'chain-peers',
      ),
    );
    tiles.push(
      tile(
        s.kind === 'gateway' ? 'events/s final' : 'tx/s committed',
        num(s.rates.committedPerS),
        'committed-rate',
      ),
    );
    tiles.push(
      tile(
        'finality p50 / p99',
        c.finality && c.finality.samples > 0
          ? `${duration(c.finality.p50Ms)} / ${duration(c.finality.p99Ms)}`
          : dash,
        'finality',
      ),
    );
  }
  tiles.push(
    tile(
      'memory (RSS) / CPU',
      `${bytes(s.process.rssBytes)} / ${s.process.cpuPercent.toFixed(0)} %`,
      'process-tile',
    ),
  );
  replaceChildren($('tiles'), tiles);

  renderDevices(s);
  renderTags(s);
  renderChain(s);
  renderOutbox(s);
  renderDeadLetters(s);
  definitions($('process'), [
    ['pid', s.process.pid],
    ['Node.js', s.process.node],
    ['uptime', duration(s.process.uptimeS * 1000)],
    [
      'memory: RSS / heap used / heap / outside heap',
      `${bytes(s.process.rssBytes)} / ${bytes(s.process.heapUsedBytes)} / ${bytes(s.process.heapTotalBytes)} / ${bytes(s.process.externalBytes)}`,
    ],
    ['CPU (100 % = one core)', `${s.process.cpuPercent.toFixed(1)} %`],
    [
      'data disk free',
      s.disk ? `${bytes(s.disk.freeBytes)} of ${bytes(s.disk.totalBytes)} (${s.disk.path})` : dash,
    ],
  ]);
}

function renderDevices(s) {
  $('devices-section').hidden = !s.devices;
  if (!s.devices) return;
  replaceChildren(
    $('devices').tBodies[0],
    s.devices.map((d) =>
      el(
        'tr',
        { 'data-device': d.device },
        el('td', { class: 'device' }, d.device),
        el('td', {}, d.protocol),
        el('td', { class: 'state', 'data-state': d.state }, d.state),
        el('td', { class: 'num readings' }, num(d.readings)),
        el(
          'td',
          {
            class: 'num errors',
            title: Object.entries(d.errors)
              .map(([k, v]) => `${k}: ${v}`)
              .join('\n'),
          },
          num(sum(d.errors)),
        ),
        el('td', { class: 'num' }, num(d.reconnects)),
        el('td', {}, ago(d.lastGoodReadMs, s.nowMs)),
        el(
          'td',
          {},
          d.readMs
            ? `mean ${duration(d.readMs.mean)}, p99 ≤ ${d.readMs.p99Max === null ? '∞' : `${d.readMs.p99Max} ms`}`
            : dash,
        ),
        el(
          'td',
          { class: 'figures' },
          Object.entries(d.figures)
            .map(([k, v]) => `${k}: ${v}`)
            .join('; ') + (d.deadLetters ? `; dead letters: ${d.deadLetters}` : ''),
        ),
        el('td', { class: 'error' }, d.lastError || ''),
      ),
    ),
  );
}

function renderTags(s) {
  $('tags-section').hidden = !s.tags;
  if (!s.tags) return;
  const shown = s.tags.shown.filter(
    (t) => !tagFilter || `${t.device}/${t.tag}`.toLowerCase().includes(tagFilter),
  );
  $('tags-count').textContent =
    `${s.tags.shown.length < s.tags.total ? `first ${s.tags.shown.length} of ` : ''}${s.tags.total}` +
    (s.tags.dropped ? `, ${s.tags.dropped} readings of tags beyond the limit not shown` : '');
  replaceChildren(
    $('tags').tBodies[0],
    shown.map((t) =>
      el(
        'tr',
        { 'data-tag': `${t.device}/${t.tag}` },
        el('td', {}, t.device),
        el('td', { class: 'tag' }, t.tag),
        el('td', { class: 'value' }, show(t.value)),
        el(
          'td',
          { class: 'quality', 'data-quality': t.quality, title: t.reason || '' },
          t.reason ? `${t.quality} (${t.reason})` : t.quality,
        ),
        el('td', { title: new Date(t.sourceTimeMs).toISOString() }, clock(t.sourceTimeMs)),
        el('td', { class: 'num' }, num(t.readings)),
      ),
    ),
  );
}

function renderChain(s) {
  const c = s.chain;
  $('chain-section').hidden = !c;
  if (!c) return;
  const pairs = [
    [
      'role',
      c.role === 'peer'
        ? 'validator (peer)'
        : c.role === 'validator'
          ? 'gateway hosting its validator'
          : 'client of its member’s validator',
    ],
    ['member', c.memberId ?? dash],
    ['state', c.state ?? dash],
    ['height', num(c.height), 'chain-height-detail'],
    ['view / primary', c.view === null ? dash : `${c.view} / ${c.primary}`],
    ['last block final', ago(c.lastCommitAtMs, s.nowMs)],
    ['mempool', num(c.mempoolTxs)],
    ['quorum', c.quorum === null ? dash : `${c.quorum} validators`],
  ];
  if (c.finality)
    pairs.push([
      'finality p50 / p99 (chain part)',
      `${duration(c.finality.p50Ms)} / ${duration(c.finality.p99Ms)} (${duration(c.finality.chainP50Ms)} / ${duration(c.finality.chainP99Ms)}), ${num(c.finality.samples)} events`,
    ]);
  if (c.submitter)
    pairs.push([
      'submitter',
      `${num(c.submitter.inFlight)} in flight, ${num(c.submitter.committed)} final, ${num(c.submitter.resubmitted)} resubmitted, ${num(c.submitter.errors)} errors`,
    ]);
  const causes = Object.entries(c.viewChangeCauses);
  if (causes.length) pairs.push(['view changes by cause', causes.map(([k, v]) => `${k} ${v}`).join(', ')]);
  if (c.problem) pairs.push(['problem', c.problem]);
  definitions($('chain'), pairs);
  replaceChildren(
    $('peers'),
    c.peers.length
      ? c.peers.map((p) => el('li', { 'data-state': p.state }, `${p.memberId}: ${p.state}`))
      : [el('li', {}, dash)],
  );
  const refusals = [
    ...Object.entries(c.refusals).filter(([, v]) => v > 0),
    ...Object.entries(c.invalidTxs).map(([k, v]) => [`invalid: ${k}`, v]),
    ...Object.entries(c.submitter?.refused ?? {}).map(([k, v]) => [`submitter: ${k}`, v]),
  ];
  definitions($('refusals'), refusals.length ? refusals.map(([k, v]) => [k, num(v)]) : [['none', '']]);
}

function renderOutbox(s) {
  const o = s.outbox;
  $('outbox-section').hidden = !o;
  if (!o) return;
  definitions($('outbox'), [
    ['pending / final / stored', `${num(o.pending)} / ${num(o.final)} / ${num(o.rows)}`],
    [
      'oldest pending',
      o.oldestPendingAgeMs === null ? 'none' : `signed ${duration(o.oldestPendingAgeMs)} ago`,
    ],
    ['disk', `${bytes(o.usedBytes)} of ${bytes(o.maxBytes)}`],
    ['head seq', num(o.headSeq)],
    ['drafts lost (full outbox) / gap events', `${num(o.lostDrafts)} / ${num(o.gapsAppended)}`],
    ['corrupt events', o.corrupt.length ? o.corrupt.join(', ') : 'none'],
    [
      'readings / drafts / stored',
      `${num(s.pipeline.readings)} / ${num(s.pipeline.draftsProduced)} / ${num(s.pipeline.eventsStored)}`,
    ],
  ]);
  const kinds = Object.entries(s.pipeline.eventsByKind);
  definitions($('kinds'), kinds.length ? kinds.map(([k, v]) => [k, num(v)]) : [['none yet', '']]);
}

function renderDeadLetters(s) {
  const d = s.deadLetters;
  $('dead-section').hidden = !d;
  if (!d) return;
  $('dead-count').textContent =
    `${num(d.total)} since start${d.unsaved ? `, ${num(d.unsaved)} not saved` : ''}`;
  replaceChildren(
    $('dead').tBodies[0],
    d.newest.length
      ? d.newest.map((x) =>
          el(
            'tr',
            {},
            el('td', { title: new Date(x.receivedMs).toISOString() }, clock(x.receivedMs)),
            el('td', {}, x.device),
            el('td', {}, x.source),
            el('td', { class: 'reason' }, x.reason),
            el('td', { class: 'payload' }, x.payload),
          ),
        )
      : [el('tr', {}, el('td', { colspan: 5 }, 'no dead letters'))],
  );
}

function setLive(state, text) {
  const live = $('live');
  live.dataset.live = state;
  live.textContent = text;
}

let pollTimer = null;
function poll() {
  fetch('api/status', { cache: 'no-store' })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((s) => {
      render(s);
      setLive('polling', 'polling');
    })
    .catch(() => setLive('offline', 'no answer'))
    .finally(() => {
      pollTimer = setTimeout(poll, pollMs);
    });
}

function connect() {
  if (typeof EventSource === 'undefined') {
    poll();
    return;
  }
  const es = new EventSource('api/events');
  es.addEventListener('snapshot', (e) => {
    if (pollTimer) {
      clearTimeout(pollTimer);
      pollTimer = null;
    }
    setLive('live', 'live');
    render(JSON.parse(e.data));
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // Refused (too many live clients) or gone: poll, and try live updates again later.
      if (!pollTimer) poll();
      setTimeout(connect, retryLiveMs);
    } else {
      setLive('connecting', 'reconnecting…');
    }
  };
}

document.addEventListener('DOMContentLoaded', () => {
  $('tags-filter').addEventListener('input', (e) => {
    tagFilter = e.target.value.trim().toLowerCase();
    if (lastSnapshot) renderTags(lastSnapshot);
  });
  connect();
});
