/**
 * Why an event or a batch is refused: one error class per failure, each with a stable `code` that
 * peers count refusals by (docs/events.md, "Verification and its refusals").
 */
import { bodyBytesMax } from './bounds.ts';

export type EventRejectionCode =
  | 'malformed'
  | 'oversize'
  | 'id_mismatch'
  | 'body_mismatch'
  | 'unknown_key'
  | 'bad_signature'
  | 'non_monotonic_seq'
  | 'seq_gap'
  | 'broken_prev'
  | 'root_mismatch'
  | 'body_on_chain';

/** Base class of every refusal; `code` is stable and safe to count. */
export class EventRejected extends Error {
  override name = 'EventRejected';
  readonly code: EventRejectionCode;
  constructor(code: EventRejectionCode, message: string) {
    super(message);
    this.code = code;
  }
}
export class MalformedEvent extends EventRejected {
  override name = 'MalformedEvent';
  constructor(message: string) {
    super('malformed', message);
  }
}
export class OversizeEvent extends EventRejected {
  override name = 'OversizeEvent';
  constructor(what: string, bytes: number, max = bodyBytesMax) {
    super('oversize', `${what} is ${bytes} bytes; the limit is ${max}`);
  }
}
export class IdMismatch extends EventRejected {
  override name = 'IdMismatch';
  constructor() {
    super('id_mismatch', 'id is not the hash of the envelope');
  }
}
export class BodyMismatch extends EventRejected {
  override name = 'BodyMismatch';
  constructor() {
    super('body_mismatch', 'body does not match the commitment in the envelope');
  }
}
export class UnknownKey extends EventRejected {
  override name = 'UnknownKey';
  constructor(message: string) {
    super('unknown_key', message);
  }
}
export class BadSignature extends EventRejected {
  override name = 'BadSignature';
  constructor(message = 'signature does not verify') {
    super('bad_signature', message);
  }
}
export class NonMonotonicSeq extends EventRejected {
  override name = 'NonMonotonicSeq';
  constructor(seq: number, headSeq: number) {
    super(
      'non_monotonic_seq',
      `seq ${seq} is not after the gateway's last seq ${headSeq} (replay or reorder)`,
    );
  }
}
export class SeqGap extends EventRejected {
  override name = 'SeqGap';
  constructor(seq: number, headSeq: number) {
    super('seq_gap', `seq ${seq} skips ${seq - headSeq - 1} event(s) after ${headSeq}`);
  }
}
export class BrokenPrevLink extends EventRejected {
  override name = 'BrokenPrevLink';
  constructor(seq: number) {
    super('broken_prev', `prev of seq ${seq} is not the id of the gateway's previous event`);
  }
}
export class RootMismatch extends EventRejected {
  override name = 'RootMismatch';
  constructor() {
    super('root_mismatch', "the envelopes' ids do not give the batch header's root");
  }
}
export class BodyOnChain extends EventRejected {
  override name = 'BodyOnChain';
  constructor(message: string) {
    super('body_on_chain', message);
  }
}
