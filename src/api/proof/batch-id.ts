/**
 * A batch's signing bytes and transaction id from its header and signature, without node:crypto or
 * Buffer, for the verifier that runs in a browser. The definitions are src/event/batch.ts's
 * (`batchSigningBytes`, `batchTxId`), which imports node:crypto for speed; a test checks that both
 * give the same bytes for the same batches (test/api/proof/batch-id.test.ts).
 */
import { encodeCanonical } from '../../crypto/canonical.ts';
import { sha256 } from '../../crypto/hash.ts';

const utf8 = new TextEncoder();
const signaturePrefix = utf8.encode('masbc-edge/batch/v2\n');
const txIdDomain = utf8.encode('masbc-edge/tx/v2\0');

/** The header's canonical bytes: exactly what the transaction carries and the gateway signed. */
export function batchHeaderBytes(header: object): Uint8Array {
  return encodeCanonical(header);
}

/** `"masbc-edge/batch/v2\n" ‖ header bytes`: what the batch signature covers. */
export function batchSigningBytesOf(headerBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(signaturePrefix.byteLength + headerBytes.byteLength);
  out.set(signaturePrefix, 0);
  out.set(headerBytes, signaturePrefix.byteLength);
  return out;
}

/** SHA-256(`"masbc-edge/tx/v2\0"` ‖ header bytes ‖ signature): the batch's transaction id. */
export function batchTxIdOf(headerBytes: Uint8Array, signature: Uint8Array): Uint8Array {
  return sha256(txIdDomain, headerBytes, signature);
}
