/**
 * Proof bundles (docs/trace.md): the format (bundle.ts), the producer over a validator's stores
 * (produce.ts), the pure verifier that runs in node and in a browser (verify.ts), and the selection
 * of an order's events that a closed order's summary commits to (order-events.ts).
 *
 * @example
 *   const bundle = buildProofBundle(
 *     { chain: node.store, bodies, chainId: genesis.chainId, genesisHash: genesis.hash },
 *     { scope: { order: 'ORD-7' } },
 *   );
 *   const r = verifyProofBundle(bundle, genesis.document);   // r.ok, or r.first = { code, detail }
 */
export * from './bundle.ts';
export * from './order-events.ts';
export * from './produce.ts';
export * from './verify.ts';
