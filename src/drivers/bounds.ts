/**
 * Every limit the drivers enforce, in one place (TigerBeetle's "a limit on everything"), with the
 * relations between them asserted at load time. Per-device limits that plant engineers tune live in
 * the device-map schemas; these are the ones that protect the gateway itself.
 */

/** First reconnect delay; doubles per failed attempt up to the device's `reconnectMaxDelayMs`. */
export const reconnectInitialDelayMs = 200;
/** A connection that stayed up this long resets the backoff; a flapping one keeps backing off. */
export const connectionStableMs = 30_000;
/** Longest `stop()` waits for a driver's loop to wind down before it resolves anyway (and logs). */
export const stopTimeoutMs = 5_000;
/** Repeated errors with the same key are logged at most once per this interval (the rest counted). */
export const logIntervalMs = 60_000;
/** Distinct keys the log limiter remembers; beyond this it forgets all and starts again. */
export const logKeysMax = 1_000;

/**
 * Upper bounds (ms) of the buckets in which a driver counts the round trip of its request/response
 * reads (Modbus requests, OPC UA polled Reads); a fixed array, so the counts take constant memory.
 */
export const readLatencyBucketsMs: readonly number[] = Object.freeze([
  1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000,
]);

/**
 * OPC UA: an array value becomes one text (JSON); longer than this it is refused as a reading
 * (the event body's bound on a text value, src/event/bounds.ts textValueCharsMax, which drivers may
 * not import; a test keeps the two equal). A long scalar text is passed on whole and cut by the
 * normaliser.
 */
export const arrayTextCharsMax = 1024;

/** Modbus: readings of a unit's tags are batched; a request never spans more than the protocol allows. */
export const modbusRegistersPerRequestMax = 125;
export const modbusBitsPerRequestMax = 2_000;
/** Modbus TCP transaction ids wrap at 256 in modbus-serial: stay well below. */
export const modbusInFlightMax = 16;

/** OPC UA: nodes per Read request (servers advertise their own MaxNodesPerRead, often 1000+). */
export const opcuaNodesPerReadMax = 1_000;
/** OPC UA: items per CreateMonitoredItems request. */
export const opcuaItemsPerCreateMax = 1_000;
/** OPC UA: notifications the server may put in one publish response (one batch of readings). */
export const opcuaNotificationsPerPublishMax = 10_000;
/**
 * OPC UA: longest interval between two keep-alive Reads (ServerStatus.State) on a session. A third of
 * the session timeout when that is shorter. The socket's idle timeout is derived from it (twice this
 * plus the request timeout), never from the request timeout alone: a subscription with nothing to
 * report, or a slow poll, leaves the socket quiet for as long as its interval.
 */
export const opcuaKeepAliveMaxMs = 5_000;
/** OPC UA: most keep-alive periods a subscription may stay silent (its requested maxKeepAliveCount). */
export const opcuaKeepAliveCountMax = 10;

/** MQTT: dead letters kept in memory per driver; when full the oldest is dropped (and counted). */
export const deadLettersMax = 1_000;
/** MQTT: payloads larger than this are dead-lettered unparsed. */
export const mqttPayloadBytesMax = 256 * 1024;
/** MQTT: topic → matching tags cache entries; cleared when full (topics with ids in them). */
export const mqttTopicCacheMax = 10_000;
/**
 * MQTT: deliveries remembered per device to recognise the broker's redelivery of a message whose
 * events were stored but whose acknowledgement was lost in a crash (see mqtt/redelivery.ts). Saved
 * with every outbox write (~25 bytes each). The driver acknowledges each message before it handles the
 * next, so only the last few can be unacknowledged at a crash.
 */
export const mqttRedeliveryWindowMax = 128;

/**
 * Longest run of MQTT messages one connection handles before it yields to the event loop (ms). The
 * next message then waits one event-loop turn, in which timers, other sockets and the chain's replies
 * run; meanwhile TCP backpressure keeps further messages at the broker. (mqtt.js would otherwise
 * work off a whole socket backlog from process.nextTick, starving everything else.)
 */
export const mqttSliceMs = 10;

// Relations the code relies on.
if (readLatencyBucketsMs.some((b, i) => i > 0 && b <= readLatencyBucketsMs[i - 1]!))
  throw new Error('bounds: read latency buckets must increase');
if (modbusInFlightMax >= 256) throw new Error('bounds: modbus in-flight requests must stay below 256');
if (reconnectInitialDelayMs > 100_000) throw new Error('bounds: initial reconnect delay too large');
if (stopTimeoutMs < 1_000) throw new Error('bounds: stop timeout too small for a clean close');
if (mqttRedeliveryWindowMax < 16 || mqttRedeliveryWindowMax > 65_535)
  throw new Error('bounds: the MQTT redelivery window must cover the last deliveries and fit packet ids');
