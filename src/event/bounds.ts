/**
 * Every bound of the event model in one place: the zod schemas (event.ts, batch.ts) and the
 * hand-written structural checks every validator runs (shape.ts) both read them, so the two cannot
 * drift apart. Lengths of text are in Unicode code points; byte bounds are of canonical JSON.
 */

/** Enterprise and gateway ids, as the genesis registers them: ASCII, never escaped in JSON. */
export const identifierPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** One envelope's canonical JSON; every field is bounded, so a valid one is far below this. */
export const envelopeBytesMax = 512;
/** One body's canonical JSON (it never goes on the chain; it bounds the member's stores). */
export const bodyBytesMax = 16 * 1024;
/** Events in one signed batch (one transaction of the chain). */
export const batchEventsMax = 512;
/** A batch header's canonical JSON. */
export const batchHeaderBytesMax = 512;
/** Signature bytes (Ed25519, and P-256 as r ‖ s). */
export const batchSignatureBytes = 64;
/**
 * The largest batch transaction: version, header length and header, signature, and per envelope its
 * length and bytes (batch.ts, "Transaction bytes"). The chain's `txBytesMax` must be at least this
 * (the ledger checks the genesis at start-up).
 */
export const batchTxBytesMax =
  1 + 2 + batchHeaderBytesMax + batchSignatureBytes + batchEventsMax * (2 + envelopeBytesMax);
/** Longest path from an event id to its batch root: ⌈log2(batchEventsMax)⌉ hashes. */
export const batchPathMax = Math.ceil(Math.log2(batchEventsMax));
/** Latest time an event may carry (ms since the epoch): the largest valid JavaScript Date. */
export const timeMsMax = 8_640_000_000_000_000;
/** Site, line, station, device, rule and value names. */
export const nameCharsMax = 64;
/** Lot, product, order and step. */
export const contextCharsMax = 128;
/** A text value. */
export const textValueCharsMax = 1024;
/** A value's engineering unit. */
export const unitCharsMax = 32;
/** Why a gap happened. */
export const gapReasonCharsMax = 200;

if (2 ** batchPathMax < batchEventsMax) throw new Error('batchPathMax too short for batchEventsMax');
if (envelopeBytesMax > 0xffff || batchHeaderBytesMax > 0xffff)
  throw new Error('envelope and header lengths must fit the u16 length prefixes of a batch transaction');
