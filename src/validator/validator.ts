/**
 * The one place a validator is assembled: genesis and key, libp2p transport, block store, the
 * ledger application with its state rebuilt from stored blocks, the consensus node, the member's
 * private body store (the bodies of its own gateways' events, which never go on the chain), and
 * optionally the validator HTTP API. `masbc-edge peer` runs one on its own; a gateway with `chain.role:
 * validator` hosts its member's on a worker thread (src/gateway/chain-thread.ts) or on its own
 * event loop, through this same function.
 *
 * The validator accepts the gateway keys the genesis registers (`gateways:`), the same at every
 * validator (docs/ledger.md); there is no local list.
 *
 * @example
 *   const v = await startValidator({ genesisFile, keyFile, dataDir, api: { host: '127.0.0.1', port: 0 }, log });
 *   await v.client.submit([eventJson]);
 *   await v.stop();
 */

import { type ApiTlsFiles, checkApiBinding, loadTls } from '../api/auth/binding.ts';
import { AccessCounters } from '../api/auth/policy.ts';
import { RevocationList } from '../api/auth/revocations.ts';
import { Office } from '../api/routes/office.ts';
import { buildValidatorApi } from '../api/validator-api.ts';
import { txIdOf } from '../consensus/app/tx.ts';
import type { Timing } from '../consensus/core/config.ts';
import { type Genesis, loadGenesis } from '../consensus/genesis/genesis.ts';
import { loadValidatorIdentity } from '../consensus/genesis/identity.ts';
import type { AdmissionMode } from '../consensus/net/admission.ts';
import { Libp2pTransport } from '../consensus/net/libp2p.ts';
import { ChainStore, chainStorePath } from '../consensus/runtime/block-store.ts';
import { type ChainClient, localChainClient } from '../consensus/runtime/client.ts';
import { openLedger } from '../consensus/runtime/ledger.ts';
import { ConsensusNode, chainContext } from '../consensus/runtime/node.ts';
import { fromHex, toHex } from '../crypto/hash.ts';
import { loadKeyFile } from '../crypto/keys.ts';
import type { Logger } from '../log/logger.ts';
import { type BodyRetention, BodyStore, bodyStorePath, defaultBodyStoreBytes } from '../store/bodies.ts';

/** Default disk budget of the member's body store. */
/** How often bodies past their retention are deleted. */
const bodyPruneIntervalMs = 3_600_000;

export interface ValidatorOptions {
  /** The alliance genesis (JSON or YAML). */
  genesisFile: string;
  /** This member's private key file (also its libp2p identity). */
  keyFile: string;
  /** Folder of the block store (chain.db: blocks, votes, ledger state) and the body store (bodies.db). */
  dataDir: string;
  /** The member's body store: disk budget and retention per data class (docs/store.md). */
  bodies?: { maxBytes?: number | undefined; retention?: Partial<BodyRetention> | undefined } | undefined;
  /** Member id in the genesis; default: the validator whose key `keyFile` holds. */
  member?: string | undefined;
  /**
   * Where to serve the validator HTTP API; absent: no API. Port 0 takes any free port. With `tls` it
   * serves HTTPS; a non-loopback host without it is refused (src/api/auth/binding.ts).
   */
  api?: { host: string; port: number; tls?: ApiTlsFiles | undefined } | undefined;
  /**
   * The member's office signer key (a gateway key registered as gateway `office`): lets the API
   * record orders and lot bindings (src/api/routes/office.ts). Absent: the order routes answer 503.
   */
  officeKeyFile?: string | undefined;
  /** Local timing of the node (T comes from the genesis). */
  timing?: Partial<Timing> | undefined;
  /**
   * Who may start a libp2p handshake (docs/security.md): 'open' (default) bounds strangers per
   * address; 'genesis-only' refuses every address the genesis `addrs` do not list, before the
   * handshake (for deployments where validators connect from the addresses the others dial).
   */
  admission?: AdmissionMode | undefined;
  /** The gateway hosting this validator, if any: a warning says so when the genesis has no key for it. */
  hostedBy?: { enterprise: string; gateway: string } | undefined;
  /** Receives the node's and transport's lines, bound to the member id. */
  log: Logger;
}

/** The options without the logger: what can cross to a worker thread. */
export type ValidatorSettings = Omit<ValidatorOptions, 'log'>;

export interface RunningValidator {
  member: string;
  genesis: Genesis;
  node: ConsensusNode;
  /** Submissions and final blocks, in process (what a hosting gateway's submitter uses). */
  client: ChainClient;
  /** The member's private body store. */
  bodies: BodyStore;
  peerId: string;
  /** The libp2p addresses it listens on. */
  listen: string[];
  /** The API's authorisation counters (allowed, refused by code). */
  access: AccessCounters;
  /** URL of its HTTP API, or null without one. */
  apiUrl: string | null;
  /** Blocks whose ledger state was rebuilt at start-up (0 after a clean stop). */
  replayedBlocks: number;
  /** Problems worth telling the operator that do not stop it (also logged as warnings). */
  warnings: string[];
  /** Resolves if the node stops on its own (a failed store, say). */
  stopped: Promise<void>;
  stop(): Promise<void>;
}

export async function startValidator(opts: ValidatorOptions): Promise<RunningValidator> {
  if (opts.api) checkApiBinding(opts.api.host, opts.api.tls);
  const tls = opts.api?.tls ? loadTls(opts.api.tls) : undefined;
  const officeKey = opts.officeKeyFile ? loadKeyFile(opts.officeKeyFile) : undefined;
  const genesis = loadGenesis(opts.genesisFile);
  const signer = loadKeyFile(opts.keyFile);
  const member = opts.member ?? genesis.byKeyId(signer.keyId)?.memberId;
  if (!member)
    throw new Error(
      `${opts.keyFile} holds key ${signer.keyId}, which no validator of ${opts.genesisFile} has`,
    );
  const log = opts.log.child({ member });
  const warnings: string[] = [];
  if (genesis.gateways.length === 0)
    warnings.push(
      `${opts.genesisFile} registers no gateway keys (gateways:): every event will be refused as unknown_key until its member registers its gateway's key (masbc-edge gateway register)`,
    );
  const host = opts.hostedBy;
  if (host && !genesis.gateways.some((g) => g.memberId === host.enterprise && g.gateway === host.gateway))
    warnings.push(
      `the genesis registers no key for this gateway (${host.enterprise}/${host.gateway}): the alliance will refuse its events (unknown_key) unless its member registers its key (masbc-edge gateway register)`,
    );
  for (const w of warnings) log.warn(w);

  const identity = await loadValidatorIdentity(opts.keyFile);
  const transport = new Libp2pTransport({
    genesis,
    self: member,
    identity,
    logger: log,
    ...(opts.admission ? { admission: opts.admission } : {}),
  });
  const store = ChainStore.open({
    path: chainStorePath(opts.dataDir),
    chain: chainContext(genesis),
    txId: txIdOf,
  });
  let bodies: BodyStore;
  try {
    bodies = BodyStore.open({
      path: bodyStorePath(opts.dataDir),
      member,
      maxBytes: opts.bodies?.maxBytes ?? defaultBodyStoreBytes,
      retention: opts.bodies?.retention,
    });
  } catch (err) {
    store.close();
    throw err;
  }
  let node: ConsensusNode;
  let replayedBlocks: number;
  let registry: ReturnType<typeof openLedger>['ledger']['registry'];
  try {
    const opened = openLedger(genesis, store);
    replayedBlocks = opened.replayedBlocks;
    registry = opened.ledger.registry;
    node = new ConsensusNode({
      genesis,
      self: member,
      signer,
      transport,
      store,
      app: opened.app,
      timing: opts.timing ?? {},
      logger: log,
    });
  } catch (err) {
    store.close();
    bodies.close();
    throw err;
  }
  // Bodies of batches that became final while this validator was down, or before it recorded it.
  const reconciled = bodies.reconcile((txId) => store.txLocation(fromHex(txId))?.height ?? null);
  if (reconciled > 0) log.info('bodies of final batches recorded at start', { bodies: reconciled });
  const unCommitted = node.onCommitted((e) => {
    bodies.markCommitted(e.txIds.map(toHex), e.height);
  });
  const pruneTimer = setInterval(() => {
    try {
      const n = bodies.prune();
      if (n > 0) log.info('bodies past their retention deleted', { bodies: n });
    } catch (err) {
      log.error('body store prune failed', { err: (err as Error).message });
    }
  }, bodyPruneIntervalMs);
  pruneTimer.unref();
  node.closed.then(() => {
    clearInterval(pruneTimer);
    unCommitted();
    bodies.close();
  });
  await node.start();
  if (replayedBlocks > 0) log.info('ledger state rebuilt from stored blocks', { blocks: replayedBlocks });
  const client = localChainClient(node, bodies);
  const access = new AccessCounters();
  const office = officeKey ? new Office({ node, chain: client, member, signer: officeKey }) : undefined;
  const api = opts.api
    ? buildValidatorApi({
        node,
        chain: client,
        bodies,
        tls,
        access: { revocations: new RevocationList(opts.dataDir), office, counters: access },
        registry,
      })
    : null;
  let apiUrl: string | null = null;
  if (api && opts.api) {
    try {
      apiUrl = await api.listen({ host: opts.api.host, port: opts.api.port });
    } catch (err) {
      await api.close();
      await node.stop();
      throw err;
    }
  }
  const listen = transport.multiaddrs.map(String);
  const peerId = identity.peerId.toString();
  log.info('validator started', { peerId, listen, api: apiUrl, height: store.height });
  return {
    member,
    genesis,
    node,
    client,
    bodies,
    peerId,
    listen,
    apiUrl,
    access,
    replayedBlocks,
    warnings,
    stopped: node.closed,
    async stop() {
      await api?.close();
      office?.close();
      await node.stop();
    },
  };
}
