/**
 * The consensus network adapter: opaque byte messages between the validators of a genesis, over
 * libp2p (production) or in memory (tests). Design, bounds and policies: docs/network.md.
 *
 * @example
 *   const genesis = loadGenesis('data/alliance/genesis.json');
 *   const identity = await loadValidatorIdentity('data/alliance/keys/member-1.key');
 *   const net: Transport = new Libp2pTransport({ genesis, self: 'member-1', identity });
 *   net.onMessage((from, bytes) => {
 *     const r = decodeMessage(bytes, genesis.chainLimits);
 *     if (!r.ok) net.reportMisbehaviour(from, r.error.code);
 *     else core.step({ type: 'message', from: genesis.indexOf(from), message: r.value });
 *   });
 *   net.onRequest((request, { from, maxResponseBytes }) => blocks.encodeRange(request, maxResponseBytes));
 *   await net.start();
 */
export * from './errors.ts';
export {
  derivedPeerId,
  libp2pKeyPathFor,
  loadValidatorIdentity,
  type ValidatorIdentity,
} from './identity.ts';
export { Libp2pTransport, type Libp2pTransportInit, protocolIds, type TransportLogger } from './libp2p.ts';
export { messageOverheadBytes, type TransportLimits, transportLimits } from './limits.ts';
export { MemoryNetwork, type MemoryNetworkOptions, MemoryTransport } from './memory.ts';
export * from './types.ts';
