/**
 * Prometheus metrics (`/metrics`) through prom-client, named by Prometheus conventions: the
 * `masbc_` prefix, base units in names (`_seconds`, `_bytes`), `_total` on counters, histograms for
 * latencies. The process's default metrics (`process_*`, `nodejs_*`) keep their standard names so
 * that standard dashboards work.
 *
 * The figures already live in the runtime's own counters (`Gateway.stats()`, `ConsensusNode.metrics()`);
 * each metric here is a view that reads them at scrape time from one fresh {@link Observation}, so
 * nothing is counted twice and a scrape never sees two different moments. Counters mirror counters
 * that only grow for the life of the process (a restart resets them, which Prometheus handles).
 * Histograms mirror fixed-bucket counts (a driver's read round trips, the finality latencies the
 * observer records). Each metric keeps at most `seriesPerMetricMax` label combinations.
 *
 * `Metrics.names` lists every name registered here; docs/deploy.md repeats the list with what each means.
 *
 * @example
 *   const { registry, scrape } = createMetrics(observer);
 *   const text = await scrape(); // Prometheus text format 0.0.4
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { NodeMetrics, NodeStatus } from '../consensus/runtime/node.ts';
import { seriesPerMetricMax } from './bounds.ts';
import type { Buckets, Observation, Observer } from './observer.ts';

type Labels = Record<string, string>;
interface Value {
  labels?: Labels;
  value: number;
}
interface HistogramValue {
  labels?: Labels;
  /** Upper bounds, in the metric's unit. */
  bounds: readonly number[];
  /** Per bucket plus one above the last bound (not cumulative). */
  counts: readonly number[];
  sum: number;
  count: number;
}

type Read<T> = (o: Observation) => T[];

/** A metric read from the current observation at scrape time (prom-client's registry calls `get`). */
class View {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator = 'sum';
  readonly #values: () => { metricName?: string; labels: Labels; value: number }[];

  constructor(
    name: string,
    help: string,
    type: 'counter' | 'gauge' | 'histogram',
    values: () => { metricName?: string; labels: Labels; value: number }[],
  ) {
    this.name = name;
    this.help = help;
    this.type = type;
    this.#values = values;
  }

  get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.#values(),
    };
  }

  reset(): void {}
}

export interface Metrics {
  registry: Registry;
  /** A fresh observation, then every metric as Prometheus text. */
  scrape(): Promise<string>;
  contentType: string;
  /** Every metric name registered here (besides prom-client's default process metrics). */
  names: readonly string[];
}

export function createMetrics(observer: Observer): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const names: string[] = [];
  let current: Observation | null = null;
  const now = (): Observation => {
    current ??= observer.observe();
    return current;
  };
  const register = (
    name: string,
    help: string,
    type: 'counter' | 'gauge' | 'histogram',
    values: () => { metricName?: string; labels: Labels; value: number }[],
  ) => {
    names.push(name);
    registry.registerMetric(new View(name, help, type, values) as never);
  };
  const scalar = (type: 'counter' | 'gauge') => (name: string, help: string, read: Read<Value>) =>
    register(name, help, type, () =>
      read(now())
        .slice(0, seriesPerMetricMax)
        .map((v) => ({ labels: v.labels ?? {}, value: v.value })),
    );
  const counter = scalar('counter');
  const gauge = scalar('gauge');
  const histogram = (name: string, help: string, read: Read<HistogramValue>) =>
    register(name, help, 'histogram', () =>
      read(now())
        .slice(0, seriesPerMetricMax)
        .flatMap((h) => histogramValues(name, h)),
    );

  const gw = (o: Observation) => o.gateway?.stats ?? null;
  const devices = (o: Observation) => gw(o)?.devices ?? [];
  const dev = (d: { device: string; protocol: string }) => ({ device: d.device, protocol: d.protocol });
  const one = (value: number | undefined | null, labels?: Labels): Value[] =>
    value === undefined || value === null ? [] : [{ value, ...(labels ? { labels } : {}) }];
  const byKey = (record: Record<string, number> | undefined, label: string, base: Labels = {}): Value[] =>
    Object.entries(record ?? {}).map(([k, value]) => ({ labels: { ...base, [label]: k }, value }));
  /** The validator this process runs: a `peer`'s, or the one a gateway hosts. */
  const node = (o: Observation): NodeMetrics | null =>
    o.validator?.metrics ?? o.gateway?.chainMetrics ?? null;
  const status = (o: Observation): NodeStatus | null =>
    o.validator?.metrics.status ?? o.gateway?.stats.chain ?? null;

  gauge(
    'masbc_build_info',
    'The process: kind (gateway or validator), name and Node.js version; always 1.',
    () => [{ labels: { kind: observer.kind, name: observer.name, node: process.version }, value: 1 }],
  );
  const processStartS = Math.round(Date.now() / 1000 - process.uptime());
  gauge('masbc_start_time_seconds', 'When the gateway or validator started, seconds since the epoch.', (o) =>
    one(o.gateway ? o.gateway.stats.startedMs / 1000 : processStartS),
  );

  // --- devices (drivers' health)
  gauge('masbc_device_up', 'Whether the device is connected (1) or not (0).', (o) =>
    devices(o).map((d) => ({ labels: dev(d), value: d.state === 'connected' ? 1 : 0 })),
  );
  gauge('masbc_device_state', 'The connection state of the device: 1 for its current state.', (o) =>
    devices(o).map((d) => ({ labels: { ...dev(d), state: d.state }, value: 1 })),
  );
  counter('masbc_device_readings_total', 'Readings the device delivered.', (o) =>
    devices(o).map((d) => ({ labels: dev(d), value: d.readings })),
  );
  counter(
    'masbc_device_errors_total',
    'Operating errors of the device, by reason (timeouts, exceptions, disconnects …).',
    (o) => devices(o).flatMap((d) => byKey(d.errors, 'reason', dev(d))),
  );
  counter(
    'masbc_device_timeouts_total',
    'Requests to the device that timed out (errors whose reason is a timeout).',
    (o) =>
      devices(o).map((d) => ({
        labels: dev(d),
        value: Object.entries(d.errors)
          .filter(([reason]) => reason.includes('timeout'))
          .reduce((a, [, n]) => a + n, 0),
      })),
  );
  counter(
    'masbc_device_reconnects_total',
    'Connections to the device established after the first one.',
    (o) => devices(o).map((d) => ({ labels: dev(d), value: d.reconnects })),
  );
  gauge(
    'masbc_device_last_good_read_timestamp_seconds',
    'When the device last delivered a good reading, seconds since the epoch.',
    (o) =>
      devices(o)
        .filter((d) => d.lastGoodReadMs !== null)
        .map((d) => ({ labels: dev(d), value: d.lastGoodReadMs! / 1000 })),
  );
  histogram(
    'masbc_device_read_duration_seconds',
    'Round trip of request/response reads (Modbus requests, OPC UA polled Reads); subscriptions and MQTT have none.',
    (o) =>
      devices(o)
        .filter((d) => d.readLatency)
        .map((d) => ({
          labels: dev(d),
          bounds: d.readLatency!.bucketsMs.map((b) => b / 1000),
          counts: d.readLatency!.counts,
          sum: d.readLatency!.sumMs / 1000,
          count: d.readLatency!.count,
        })),
  );
  counter(
    'masbc_device_dead_letters_total',
    'Payloads of the device that could not be mapped to readings (dead letters).',
    () => [...observer.deadLettersByDevice].map(([device, value]) => ({ labels: { device }, value })),
  );

  // --- the gateway's pipeline: readings → normaliser → events
  counter('masbc_gateway_readings_total', 'Readings from all devices.', (o) => one(gw(o)?.readings));
  counter('masbc_normaliser_events_total', 'Event drafts the normaliser made, by kind.', (o) =>
    byKey(gw(o)?.normaliser.events as Record<string, number> | undefined, 'kind'),
  );
  counter('masbc_normaliser_unknown_readings_total', 'Readings of devices or tags no rule knows.', (o) =>
    one(gw(o)?.normaliser.unknownReadings),
  );
  counter(
    'masbc_normaliser_bad_triggers_total',
    "Bad-quality readings of a rule's trigger tag (no event made).",
    (o) => one(gw(o)?.normaliser.badTriggers),
  );
  counter('masbc_gateway_events_stored_total', 'Signed events written to the outbox.', (o) =>
    one(gw(o)?.eventsStored),
  );
  gauge('masbc_gateway_queued_drafts', 'Drafts waiting in memory for the outbox.', (o) =>
    one(gw(o)?.queue.queued),
  );

  // --- the outbox
  gauge('masbc_outbox_pending_events', 'Events in the outbox not yet final.', (o) =>
    one(gw(o)?.outbox.pending),
  );
  gauge('masbc_outbox_events', 'Events in the outbox (pending and final, until pruned).', (o) =>
    one(gw(o)?.outbox.rows),
  );
  gauge('masbc_outbox_used_bytes', 'Disk used by the outbox.', (o) => one(gw(o)?.outbox.usedBytes));
  gauge('masbc_outbox_max_bytes', 'Disk budget of the outbox.', (o) => one(gw(o)?.outbox.maxBytes));
  gauge(
    'masbc_outbox_oldest_pending_age_seconds',
    'Age of the oldest event not yet final (since it was signed); 0 when none.',
    (o) =>
      o.gateway
        ? [
            {
              value: o.gateway.oldestPending
                ? Math.max(0, o.nowMs - o.gateway.oldestPending.gatewayTimeMs) / 1000
                : 0,
            },
          ]
        : [],
  );
  gauge('masbc_outbox_head_seq', "The gateway's newest event seq.", (o) => one(gw(o)?.outbox.head.seq));
  counter(
    'masbc_outbox_dead_letters_total',
    'Dead letters received (malformed or unmappable payloads).',
    (o) => one(gw(o)?.deadLetters),
  );
  counter(
    'masbc_outbox_dead_letters_unsaved_total',
    'Dead letters not saved because they came faster than they are saved.',
    (o) => one(gw(o)?.deadLettersUnsaved),
  );
  counter(
    'masbc_outbox_drafts_lost_total',
    'Drafts not stored because the outbox was full (recorded by gap events).',
    (o) => one(gw(o)?.outbox.droppedTotal),
  );
  counter(
    'masbc_outbox_gap_events_total',
    'Gap events written, each recording drafts lost to a full outbox.',
    (o) => one(gw(o)?.outbox.gapsAppended),
  );
  gauge(
    'masbc_outbox_corrupt_events',
    'Stored events found corrupt on read (submission halts before them).',
    (o) => one(gw(o)?.outbox.corrupt.length),
  );

  // --- the submitter (chain role validator or client)
  const sub = (o: Observation) => gw(o)?.submitter ?? null;
  gauge('masbc_submitter_in_flight_events', 'Events submitted and not yet final.', (o) =>
    one(sub(o)?.inFlight),
  );
  counter('masbc_submitter_submitted_total', 'Events submitted to the chain (first submissions).', (o) =>
    one(sub(o)?.submitted),
  );
  counter(
    'masbc_submitter_resubmitted_total',
    'Events submitted again (the validator may have lost them).',
    (o) => one(sub(o)?.resubmitted),
  );
  counter('masbc_submitter_final_total', 'Events seen final in a committed block.', (o) =>
    one(sub(o)?.committed),
  );
  counter(
    'masbc_submitter_refused_total',
    'Submissions refused, by reason (duplicates are normal after a restart).',
    (o) => byKey(sub(o)?.refused, 'reason'),
  );
  counter(
    'masbc_submitter_errors_total',
    'Submission calls that failed (the validator unreachable …).',
    (o) => one(sub(o)?.errors),
  );
  gauge('masbc_submitter_last_height', 'Height of the last final block the submitter saw.', (o) =>
    one(sub(o)?.lastHeight),
  );
  const finality = (b: Buckets): HistogramValue[] =>
    b.count > 0 ? [{ bounds: b.bounds, counts: b.counts, sum: b.sum, count: b.count }] : [];
  histogram(
    'masbc_submitter_finality_latency_seconds',
    "From an event's source time to the final block holding it.",
    () => finality(observer.finality.source),
  );
  histogram(
    'masbc_submitter_chain_latency_seconds',
    'From when the gateway signed an event to the final block holding it.',
    () => finality(observer.finality.signed),
  );

  // --- consensus (the validator this process runs)
  gauge('masbc_consensus_up', 'Whether the validator is running (1) or not (0).', (o) =>
    one(status(o) ? (status(o)!.state === 'running' ? 1 : 0) : null),
  );
  gauge('masbc_consensus_height', 'Height of the last final block.', (o) => one(status(o)?.committedHeight));
  gauge('masbc_consensus_view', 'The current view.', (o) => one(status(o)?.view));
  gauge('masbc_consensus_view_changing', 'Whether a view change is under way (1) or not (0).', (o) =>
    one(status(o) ? (status(o)!.viewChanging ? 1 : 0) : null),
  );
  gauge(
    'masbc_consensus_last_commit_timestamp_seconds',
    'When this validator last saw a block become final, seconds since the epoch.',
    (o) => one(status(o)?.lastCommitAtMs ? status(o)!.lastCommitAtMs! / 1000 : null),
  );
  counter('masbc_consensus_view_changes_total', 'View changes this validator started, by cause.', (o) =>
    byKey(node(o)?.core.viewChangeCauses as Record<string, number> | undefined, 'cause'),
  );
  gauge('masbc_consensus_peers', 'Other validators, by connection state.', (o) => {
    const counts: Record<string, number> = { connected: 0, connecting: 0, quarantined: 0, stopped: 0 };
    for (const p of status(o)?.peers ?? []) counts[p.state] = (counts[p.state] ?? 0) + 1;
    return status(o) ? byKey(counts, 'state') : [];
  });
  gauge('masbc_consensus_mempool_transactions', 'Transactions waiting in the mempool.', (o) =>
    one(status(o)?.mempoolTxs),
  );
  gauge('masbc_consensus_mempool_bytes', 'Bytes of the transactions waiting in the mempool.', (o) =>
    one(status(o)?.mempoolBytes),
  );
  gauge(
    'masbc_consensus_inbound_queued_messages',
    'Decoded peer messages waiting for the consensus core.',
    (o) => one(status(o)?.inboundQueued),
  );
  counter('masbc_consensus_refusals_total', 'Client transactions refused, by reason.', (o) =>
    byKey(status(o)?.refusals, 'reason'),
  );
  counter('masbc_api_requests_allowed_total', "Requests the API's authorisation policy let through.", (o) =>
    one(o.validator?.access?.allowed),
  );
  counter('masbc_api_refusals_total', 'Requests the API refused (401 and 403), by code.', (o) =>
    byKey(o.validator?.access?.refused, 'code'),
  );
  counter(
    'masbc_consensus_invalid_transactions_total',
    "Invalid transactions refused, by the ledger's code.",
    (o) => byKey(status(o)?.invalidTxs, 'code'),
  );
  counter('masbc_consensus_messages_sent_total', 'Consensus messages sent, by type.', (o) =>
    byKey(node(o)?.core.messagesSent, 'type'),
  );
  counter(
    'masbc_consensus_malformed_messages_total',
    'Peer messages that did not decode, by codec error.',
    (o) => byKey(node(o)?.malformed, 'code'),
  );
  counter('masbc_consensus_peer_faults_total', "Faults found in peers' messages, by code.", (o) =>
    byKey(node(o)?.peerFaults, 'code'),
  );
  counter('masbc_consensus_committed_blocks_total', 'Blocks saved as final by this process.', (o) =>
    one(node(o)?.saves.blocks),
  );
  counter(
    'masbc_consensus_committed_transactions_total',
    'Transactions in blocks saved as final by this process.',
    (o) => one(node(o)?.saves.txs),
  );
  counter('masbc_consensus_store_saves_total', 'Group commits to the block store.', (o) =>
    one(node(o)?.saves.count),
  );
  counter(
    'masbc_consensus_store_save_seconds_total',
    'Time spent in group commits to the block store.',
    (o) => one(node(o) ? node(o)!.saves.totalMs / 1000 : null),
  );
  counter('masbc_consensus_sync_requests_total', 'Block-sync requests sent.', (o) =>
    one(node(o)?.sync.requested),
  );
  counter('masbc_consensus_sync_served_blocks_total', 'Blocks sent to peers that were catching up.', (o) =>
    one(node(o)?.sync.servedBlocks),
  );
  const peers = (o: Observation) => Object.entries(node(o)?.transport.peers ?? {});
  counter('masbc_consensus_peer_messages_sent_total', 'Messages written to each peer.', (o) =>
    peers(o).map(([peer, m]) => ({ labels: { peer }, value: m.messagesOut })),
  );
  counter('masbc_consensus_peer_messages_received_total', 'Messages received from each peer.', (o) =>
    peers(o).map(([peer, m]) => ({ labels: { peer }, value: m.messagesIn })),
  );
  counter('masbc_consensus_peer_sent_bytes_total', 'Bytes written to each peer.', (o) =>
    peers(o).map(([peer, m]) => ({ labels: { peer }, value: m.bytesOut })),
  );
  counter('masbc_consensus_peer_received_bytes_total', 'Bytes received from each peer.', (o) =>
    peers(o).map(([peer, m]) => ({ labels: { peer }, value: m.bytesIn })),
  );
  counter(
    'masbc_consensus_peer_messages_dropped_total',
    'Messages to each peer dropped from its full or stale queue.',
    (o) => peers(o).map(([peer, m]) => ({ labels: { peer }, value: m.messagesDropped })),
  );
  counter(
    'masbc_consensus_peer_disconnects_total',
    'Times this validator dropped each peer, by reason.',
    (o) => peers(o).flatMap(([peer, m]) => byKey(m.drops, 'reason', { peer })),
  );
  counter('masbc_consensus_peer_dial_failures_total', 'Failed dials or stream opens to each peer.', (o) =>
    peers(o).map(([peer, m]) => ({ labels: { peer }, value: m.dialFailures })),
  );

  // --- host
  gauge('masbc_data_disk_free_bytes', "Free space of the data folder's file system (for this user).", (o) =>
    one(o.disk?.freeBytes),
  );
  gauge('masbc_data_disk_size_bytes', "Size of the data folder's file system.", (o) =>
    one(o.disk?.totalBytes),
  );
  gauge('masbc_health_ready', 'Whether the process is ready (1: no health reason) or degraded (0).', (o) =>
    one(observer.health(o).ready ? 1 : 0),
  );
  gauge('masbc_health_reason', 'Health reasons present now, by code (1 each).', (o) =>
    observer.health(o).reasons.map((r) => ({ labels: { code: r.code }, value: 1 })),
  );

  return {
    registry,
    contentType: registry.contentType,
    names,
    async scrape() {
      current = observer.observe();
      try {
        return await registry.metrics();
      } finally {
        current = null;
      }
    },
  };
}

function histogramValues(name: string, h: HistogramValue) {
  const labels = h.labels ?? {};
  const out: { metricName: string; labels: Labels; value: number }[] = [];
  let cumulative = 0;
  h.bounds.forEach((bound, i) => {
    cumulative += h.counts[i] ?? 0;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: String(bound) }, value: cumulative });
  });
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count });
  out.push({ metricName: `${name}_sum`, labels, value: h.sum });
  out.push({ metricName: `${name}_count`, labels, value: h.count });
  return out;
}
