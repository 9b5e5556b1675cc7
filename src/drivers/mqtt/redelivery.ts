/**
 * Recognises a QoS 1/2 message that the broker delivers a second time because its acknowledgement
 * never arrived: the gateway crashed, or the connection dropped, after the message's events were
 * stored and before the broker received the PUBACK (or PUBCOMP). Acknowledging only after the events
 * are durable (see DriverContext.durable) makes a crash lose nothing; this window keeps the resulting
 * redelivery from producing the events a second time.
 *
 * What the protocol gives us (MQTT 3.1.1 §4.4, MQTT 5 §4.4): a broker re-sends unacknowledged
 * PUBLISH packets only when a session is resumed (CONNACK session present), with their ORIGINAL
 * packet identifiers, and may reuse an identifier only after it received the acknowledgement. The
 * DUP flag should be set on a re-send, but aedes 1 does not set it, so it is not relied on.
 *
 * So a delivery is taken for a redelivery when, in a resumed session, it has the same packet id, topic
 * and payload (SHA-256) as a recorded delivery. That includes one recorded earlier in the SAME
 * connection: aedes 1 subscribes a resuming client live before it flushes the session's queue, so a
 * message published in between is delivered twice, same packet id, in the new connection (a stress
 * run against aedes showed it in 1–2 of 150 reconnects, and it is the likely cause of a SIGKILL
 * end-to-end run that once counted one scan more on chain than produced). A new session (session present false) forgets everything and has no such repeats;
 * a newer delivery with the same id replaces the older one (the broker reused the id: it had the
 * acknowledgement). The one false positive left: in a resumed session, a genuinely new message whose
 * packet id, topic and payload bytes all equal one of the last recorded. Brokers hand out ids in
 * sequence (aedes, mosquitto), so an id recurs only after 65,535 others; and payloads carrying a
 * timestamp or a sequence number (as the bundled scanner's do) rule it out anyway.
 *
 * Bounded: the newest `entriesMax` deliveries (mqttRedeliveryWindowMax). Only deliveries whose
 * acknowledgement may not have reached the broker matter, and the driver acknowledges each message
 * before it handles the next, so a handful suffices; the bound leaves ample margin.
 *
 * @example
 *   const w = new RedeliveryWindow(128);
 *   w.connected(connack.sessionPresent);
 *   if (!w.isRedelivery(packet.messageId, topic, payload)) { handle(); w.record(packet.messageId, topic, payload); }
 *   saveWithEvents(w.save());  // and after a restart: w.load(saved)
 */
import { createHash } from 'node:crypto';

/** The saved form: packet ids and payload digests, oldest first. */
export interface RedeliveryState {
  version: 1;
  ids: number[];
  digests: string[];
}

interface Entry {
  digest: string;
  /** Connection number in which the delivery was recorded (0: loaded from a saved state). */
  connection: number;
}

/** 96 bits of SHA-256 over topic and payload: collisions are out of the question at this size. */
function digestOf(topic: string, payload: Uint8Array): string {
  return createHash('sha256').update(topic).update('\u0000').update(payload).digest('base64url').slice(0, 16);
}

export class RedeliveryWindow {
  readonly #entriesMax: number;
  /** Packet id → latest delivery with that id; insertion order is age (oldest first). */
  readonly #entries = new Map<number, Entry>();
  #connection = 0;
  /** The current connection resumed a session (CONNACK session present). */
  #resumed = false;
  #matched = 0;

  constructor(entriesMax: number) {
    if (!Number.isInteger(entriesMax) || entriesMax < 1) throw new RangeError('entriesMax must be >= 1');
    this.#entriesMax = entriesMax;
  }

  /** A connection was established; `sessionPresent` from its CONNACK. */
  connected(sessionPresent: boolean): void {
    this.#connection++;
    this.#resumed = sessionPresent;
    // A new session has no unacknowledged messages to re-send: nothing recorded can come back.
    if (!sessionPresent) this.#entries.clear();
  }

  /**
   * True when this delivery repeats a recorded one: of an earlier connection, or, in a resumed
   * session, of this one (see the module comment).
   */
  isRedelivery(packetId: number | undefined, topic: string, payload: Uint8Array): boolean {
    if (packetId === undefined) return false;
    const e = this.#entries.get(packetId);
    if (!e || (e.connection >= this.#connection && !this.#resumed)) return false;
    if (e.digest !== digestOf(topic, payload)) return false;
    // Still a candidate for the next connection: this acknowledgement may be lost too.
    this.#matched++;
    return true;
  }

  /** Records a delivery that was handled (its readings handed on). */
  record(packetId: number | undefined, topic: string, payload: Uint8Array): void {
    if (packetId === undefined) return;
    this.#entries.delete(packetId);
    this.#entries.set(packetId, { digest: digestOf(topic, payload), connection: this.#connection });
    if (this.#entries.size > this.#entriesMax) {
      const oldest = this.#entries.keys().next().value as number;
      this.#entries.delete(oldest);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Redeliveries recognised so far. */
  get matched(): number {
    return this.#matched;
  }

  save(): RedeliveryState {
    const ids: number[] = [];
    const digests: string[] = [];
    for (const [id, e] of this.#entries) {
      ids.push(id);
      digests.push(e.digest);
    }
    return { version: 1, ids, digests };
  }

  /** Restores a saved window (entries count as recorded in an earlier connection). False if unusable. */
  load(state: unknown): boolean {
    const s = state as Partial<RedeliveryState> | null;
    if (
      s?.version !== 1 ||
      !Array.isArray(s.ids) ||
      !Array.isArray(s.digests) ||
      s.ids.length !== s.digests.length
    ) {
      return false;
    }
    this.#entries.clear();
    const from = Math.max(0, s.ids.length - this.#entriesMax);
    for (let i = from; i < s.ids.length; i++) {
      const id = s.ids[i];
      const digest = s.digests[i];
      if (!Number.isInteger(id) || typeof digest !== 'string') continue;
      this.#entries.delete(id as number);
      this.#entries.set(id as number, { digest, connection: 0 });
    }
    return true;
  }
}
