/**
 * The entry of the verifier's browser bundle (browser-build.ts): what the customer's trace page
 * imports as `/trace/verifier.js`.
 */
export { genesisHashOf, VerifyCache, verifyErrorCodes, verifyProofBundle } from './verify.ts';
