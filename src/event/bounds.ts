/**
 * Every bound of the event model in one place: the zod schema (event.ts) and the hand-written
 * structural check every validator runs (shape.ts) both read them, so the two cannot drift apart.
 * Lengths of text are in Unicode code points.
 */

/** Upper bound of one event's canonical JSON (envelope + body + signature). */
export const eventBytesMax = 16 * 1024;
/** Largest batch a signature may cover. */
export const signatureBatchMax = 65_536;
/** Longest audit path: ⌈log2(signatureBatchMax)⌉ hashes. */
export const auditPathMax = 16;
/** Latest time an event may carry (ms since the epoch): the largest valid JavaScript Date. */
export const timeMsMax = 8_640_000_000_000_000;
/** Enterprise, gateway, site, line, station, device, rule and value names. */
export const nameCharsMax = 64;
/** Lot, product, order and step. */
export const contextCharsMax = 128;
/** A text value. */
export const textValueCharsMax = 1024;
/** A value's engineering unit. */
export const unitCharsMax = 32;
/** Why a gap happened. */
export const gapReasonCharsMax = 200;

if (2 ** auditPathMax < signatureBatchMax) throw new Error('auditPathMax too short for signatureBatchMax');
