/**
 * An anchor node: the parts of CAN Swarm a browser cannot host. Today it holds a persistent
 * identity, the durable DECIDE store (embedded SQLite, or etcd for a group of anchors) and the
 * HTTP endpoint; the libp2p peer (relay, gossip, DECIDE service) joins it with the libp2p issue.
 *
 * @example
 * ```ts
 * const anchor = await startAnchor(resolveConfig({}, process.env), { logger })
 * // …
 * await anchor.stop()
 * ```
 */

import { existsSync, mkdirSync } from 'node:fs'
import type { Server } from 'node:http'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Agent, ConsensusStore, PeerMetrics } from '@can-swarm/peer'
import {
  basePolicyGates,
  type Genesis,
  genesisToJson,
  isOpenPool,
  type NetworkParams,
  paramsFromGenesis,
  refusalRule,
  withPool,
} from '@can-swarm/peer'
import { readPolicyBundle } from '@can-swarm/peer/node'
import type { Logger } from 'pino'
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import { EmbeddedConsensusStore } from '../consensus/embedded.ts'
import { EtcdConsensusStore } from '../consensus/etcd.ts'
import type { AnchorConfig } from './config.ts'
import { type DecidedNeed, LiveLedger } from './economy.ts'
import { loadOrCreateGenesis } from './genesis.ts'
import { GrantStore } from './grants.ts'
import { type OwnOrigins, originAllowed, startHttp } from './http.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { EnvelopeLog } from './log.ts'
import { ManifestStore } from './manifests.ts'
import { BootstrapMonitor } from './monitor.ts'
import { desiredSnapshot, PoolAdopter } from './pool.ts'
import { type AnchorSwarm, startSwarm } from './swarm.ts'
import { ThreadViews } from './thread-views.ts'

export interface Anchor {
  readonly did: string
  readonly url: string
  readonly consensus: ConsensusStore
  /** The network's genesis (its id is the network id). */
  readonly genesis: Genesis
  /** The network's parameters with the pool the anchor decides under now. */
  readonly params: NetworkParams
  readonly swarm: AnchorSwarm
  /** Credits, stake and pending payouts derived from the threads the anchor follows. */
  readonly ledger: LiveLedger
  /** Dialable libp2p multiaddrs (TCP and WebSocket), each ending in /p2p/<peer id>. */
  multiaddrs(): string[]
  /** Stops accepting work, lets in-flight work finish, closes the store. Idempotent. */
  stop(): Promise<void>
}

const WEB_DIST = resolve(dirname(fileURLToPath(import.meta.url)), '../../../web/dist')

interface ClosableStore extends ConsensusStore {
  close(): Promise<void>
}

async function openStore(config: AnchorConfig): Promise<ClosableStore> {
  if (config.consensus === 'etcd') {
    return (await EtcdConsensusStore.open({ hosts: config.etcd, prefix: config.etcdPrefix })) as ClosableStore
  }
  return (await EmbeddedConsensusStore.open({ path: join(config.data, 'consensus.sqlite') })) as ClosableStore
}

/** Starts an anchor with a resolved configuration. */
export async function startAnchor(config: AnchorConfig, options: { logger: Logger }): Promise<Anchor> {
  const logger = options.logger
  const started = Date.now()
  mkdirSync(config.data, { recursive: true, mode: 0o700 })
  const { identity, created } = await loadOrCreateIdentity(config.data)
  logger.info(
    { did: identity.did, created, data: config.data },
    created ? 'created identity' : 'loaded identity',
  )

  const { genesis, created: newNetwork } = await loadOrCreateGenesis(config.data, identity, {
    genesisFile: config.genesis,
    verifiers: config.verifiers,
    bootstrapMode: config.bootstrapMode,
    challengeWindowMs: config.challengeWindowMs,
  })
  logger.info(
    { network: genesis.id, anchors: genesis.body.anchors.length, created: newNetwork },
    newNetwork ? 'created the network genesis' : 'network genesis kept',
  )
  const genesisParams = paramsFromGenesis(genesis)

  const store = await openStore(config)
  const epoch = await store.currentEpoch()
  logger.info({ consensus: config.consensus, epoch }, 'consensus store open')

  const adopter = PoolAdopter.open({ dataDir: config.data, genesis, params: genesisParams, store })
  const startParams = withPool(genesisParams, adopter.adopted)
  if (isOpenPool(startParams)) {
    logger.warn(
      'open verifier pool: bootstrap mode with no staked verifier, so any peer may verify (K = 1); verifiers join by staking (PUT /api/pool/<did>)',
    )
  }
  // A8: the network's base policy, checked here as every tab checks it, gates what the anchor takes in.
  const policy = await basePolicyGates(await readPolicyBundle('base'))
  logger.info(
    { policyHash: policy.manifest.policyHash, conformance: policy.conformancePassed },
    'policy gates loaded',
  )
  // Opened lazily: the swarm replays it in batches, letting settled threads go as it reads.
  const { log, report: logReport } = await EnvelopeLog.open(config.data, { lazy: true })
  const damaged = logReport.tornBytes > 0 || logReport.quarantined.length > 0 || logReport.undecodable > 0
  ;(damaged ? logger.warn.bind(logger) : logger.info.bind(logger))(
    {
      records: logReport.records,
      segments: logReport.segments,
      tornBytes: logReport.tornBytes,
      quarantined: logReport.quarantined,
      undecodable: logReport.undecodable,
      imported: logReport.imported,
    },
    damaged
      ? 'envelope log open: damaged records were cut off or moved aside (see quarantined)'
      : 'envelope log open',
  )
  const manifests = await ManifestStore.open(config.data, genesis.id)
  const grants = await GrantStore.open({
    dataDir: config.data,
    identity,
    network: { network: genesis.id, anchors: genesis.body.anchors },
    rule: genesis.body.economy.faucet,
    consensus: store,
  })
  // The agent, from before the log is replayed into it (the ledger settles during the replay).
  let agentRef: Agent | undefined
  let stopping = false
  // DECIDEs placed since the ledger was last derived (fed below once the agent exists): funding
  // checks take their budgets off, so the ledger need not be derived again for each one.
  let onDecide: ((decided: DecidedNeed) => void) | undefined
  const ledger = new LiveLedger({
    decides: (listener) => {
      onDecide = listener
      return () => {
        onDecide = undefined
      }
    },
    params: genesisParams,
    manifests,
    grants,
    genesis: genesis.body.economy,
    genesisVerifiers: genesis.body.pool.verifiers,
    replicas: () => (agentRef ? agentRef.threads().map((thread) => agentRef!.replica(thread)!) : []),
    version: () => log.appended,
    settleHorizonMs: config.settleHorizonMs,
    // Threads settled into the ledger's base leave memory (their envelopes stay in the log).
    onSettled: (replicas) => {
      if (!agentRef || stopping) return
      for (const replica of replicas) agentRef.retire(replica.thread)
    },
  })
  // The bootstrap monitor hears of every envelope the agent places (restored ones included).
  const monitor = new BootstrapMonitor(startParams)
  // Pages that may open a WebSocket to the libp2p listener: the anchor's own (its HTTP port is known
  // once HTTP listens, before any browser can have loaded a page from it) and the listed origins.
  const ownOrigins: OwnOrigins = {
    host: config.host,
    port: config.port,
    allowedHosts: config.allowedHosts,
    allowedOrigins: config.allowedOrigins,
  }
  // One registry for what the anchor polls and what its peer pushes (envelopes, FINAL tasks, errors).
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'can_swarm_anchor_' })
  const swarm = await startSwarm({
    metrics: pushedMetrics(registry),
    identity,
    data: config.data,
    artifacts: {
      maxTotalBytes: config.artifactStoreBytes,
      maxCacheBytes: config.artifactCacheBytes,
      maxCacheBytesPerClient: config.artifactCacheBytesPerClient,
    },
    allowWebSocketOrigin: (origin) => originAllowed(origin, ownOrigins),
    onAgent: (agent) => {
      agentRef = agent
      monitor.attach(agent)
      agent.observe((env) => {
        if (env.kind !== 'DECIDE') return
        const need = agent.replica(env.thread)?.state.need
        if (need) onDecide?.({ thread: env.thread, requester: need.requester, budget: need.budget })
      })
    },
    params: startParams,
    consensus: store,
    policy: policy.gates,
    funding: ledger.funding(),
    // Grants go to workers with a record first (reputation from settled outcomes; newcomers 500).
    workerRank: (worker) => ledger.current().derived.reputation.get(worker) ?? 500,
    // Under a NEED flood, NEEDs nobody can pay for leave first (the anchor would never decide them).
    undecidedRank: (need) => (ledger.canFund(need.requester, need.budget) ? 1 : 0),
    log,
    restored: log.replay(),
    onRestored: (untilMs) => ledger.settle(untilMs),
    host: config.host,
    tcpPort: config.p2pPort,
    wsPort: config.wsPort,
    webrtcPort: config.webrtcPort,
    bootstrap: config.peers,
    ...(config.nats.length > 0
      ? {
          nats: {
            servers: config.nats,
            ...(config.natsSubject ? { subjectPrefix: config.natsSubject } : {}),
          },
        }
      : {}),
    onError: (error) => logger.warn({ err: error }, 'agent error'),
  })
  ;(log.undecodable > 0 ? logger.warn.bind(logger) : logger.info.bind(logger))(
    {
      envelopes: log.replayed,
      undecodable: log.undecodable,
      threads: swarm.agent.threads().length,
      settled: ledger.settled.threads,
    },
    'envelope log replayed',
  )
  adopter.attach(swarm.agent)
  logger.info({ multiaddrs: swarm.multiaddrs(), peerId: swarm.network.peerId.toString() }, 'swarm listening')
  logger.info(
    {
      blocks: swarm.artifacts.blocksDir,
      pinned: swarm.artifacts.pinned,
      bytes: swarm.artifacts.totalBytes,
      imported: swarm.importedArtifacts,
    },
    'artifact store open',
  )

  let monitorReport = monitor.observe(Date.now())
  // The pool the anchor decides under follows its ledger's pool, adopted at epoch boundaries.
  const adoptPool = async (): Promise<void> => {
    const left = new Set(
      manifests
        .all()
        .filter((manifest) => manifest.stake === 0)
        .map((m) => m.did),
    )
    const desired = desiredSnapshot({
      genesis,
      ledgerPool: ledger.pool().entries,
      left,
      bootstrap: genesis.body.pool.bootstrap && monitorReport.recommended.bootstrap,
      nowMs: Date.now(),
    })
    if (await adopter.adopt(desired)) {
      monitor.setPool(adopter.adopted.verifiers)
      logger.info(
        {
          poolEpoch: adopter.adopted.epoch,
          verifiers: adopter.adopted.verifiers.length,
          bootstrap: adopter.adopted.bootstrap,
        },
        'adopted a new verifier pool',
      )
    }
  }
  await adoptPool()
  let adopting: Promise<void> | undefined
  const poolTimer = setInterval(() => {
    adopting ??= adoptPool()
      .catch((error: unknown) => logger.warn({ err: error }, 'pool adoption failed'))
      .finally(() => {
        adopting = undefined
      })
  }, 1_000)
  poolTimer.unref()
  // Threads settle into the ledger's base even when nobody reads the ledger.
  const settleTimer = setInterval(() => ledger.settle(), 10_000)
  settleTimer.unref()
  const monitorTimer = setInterval(() => {
    monitorReport = monitor.observe(Date.now())
  }, 5_000)
  monitorTimer.unref()

  const httpRequests = new Counter({
    name: 'can_swarm_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['route', 'status'],
    registers: [registry],
  })
  new Gauge({
    name: 'can_swarm_active_verifiers',
    help: 'Verifiers of the pool seen attesting within the last 10 minutes',
    registers: [registry],
    collect() {
      this.set(monitorReport.activeVerifiers)
    },
  })
  new Gauge({
    name: 'can_swarm_ledger_credits',
    help: 'Credits of the live ledger by kind (minted, burned, escrowed, pending payouts)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const summary = ledger.summary()
      for (const kind of ['minted', 'burned', 'escrowed', 'pending'] as const)
        this.set({ kind }, summary[kind])
    },
  })
  new Gauge({
    name: 'can_swarm_artifacts_pinned',
    help: 'Artifacts pinned by this anchor',
    registers: [registry],
    collect() {
      this.set(swarm.artifacts.pinned)
    },
  })
  new Gauge({
    name: 'can_swarm_artifact_bytes',
    help: 'Bytes of artifact blocks on disk (pinned and cached)',
    registers: [registry],
    collect() {
      this.set(swarm.artifacts.totalBytes)
    },
  })
  new Gauge({
    name: 'can_swarm_artifact_cache_bytes',
    help: 'Bytes of unpinned artifact blocks (uploads and reads no accepted envelope references yet)',
    registers: [registry],
    collect() {
      this.set(swarm.artifacts.stats().cachedBytes)
    },
  })
  new Gauge({
    name: 'can_swarm_refusals',
    help: 'Envelopes the anchor refused, by reason code and the rule it enforces (A1–A7, network, state)',
    labelNames: ['reason', 'rule'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [reason, count] of Object.entries(swarm.agent.refusals()))
        this.set({ reason, rule: refusalRule(reason) }, count)
    },
  })
  new Gauge({
    name: 'can_swarm_pool_epoch',
    help: 'Epoch of the verifier pool the anchor decides under (0: the genesis pool)',
    registers: [registry],
    collect() {
      this.set(adopter.adopted.epoch)
    },
  })
  new Gauge({
    name: 'can_swarm_consensus_epoch',
    help: 'Current epoch of the consensus store',
    registers: [registry],
    async collect() {
      this.set(await store.currentEpoch())
    },
  })

  const webRoot = existsSync(join(WEB_DIST, 'index.html')) ? WEB_DIST : undefined
  const threadViews = new ThreadViews((thread) => swarm.agent.replica(thread))
  const { server, url } = await startHttp({
    host: config.host,
    port: config.port,
    allowedHosts: config.allowedHosts,
    trustedProxies: config.trustedProxies,
    quotas: {
      requests: { perSecond: config.httpRequestsPerSecond, burst: config.httpRequestBurst },
      uploadBytes: { perSecond: config.uploadBytesPerSecond, burst: config.uploadBurstBytes },
    },
    onError: (error) => logger.error({ err: error }, 'HTTP handler failed'),
    registry,
    webRoot,
    notReady: () => [
      ...(stopping ? ['shutting down'] : []),
      ...(log.failed ? [`envelope log: ${log.failed.errno ?? 'write failed'} — writes refused`] : []),
    ],
    status: async () => ({
      did: identity.did,
      network: genesis.id,
      epoch: await store.currentEpoch(),
      pool: adopter.adopted,
      refusals: swarm.agent.refusals(),
      /** Gossip frames the bus refused before the agent saw them (malformed, stale, bad signature, denied). */
      gossipRejected: swarm.bus.stats().rejected,
      /** Envelopes held but not folded (A4): waiting for their place, or for their thread's NEED. */
      held: {
        pending: swarm.agent
          .threads()
          .reduce((sum, thread) => sum + swarm.agent.replica(thread)!.pendingSize, 0),
        orphans: swarm.agent.orphanCount,
      },
      policy: { policyHash: policy.manifest.policyHash, ingress: policy.gates.stats().ingress },
      bootstrapMonitor: monitorReport,
      peerId: swarm.network.peerId.toString(),
      multiaddrs: swarm.multiaddrs(),
      connections: swarm.network.libp2p.getConnections().length,
      threads: swarm.agent.threads().length,
      planSync: swarm.planSync.stats(),
      // Hybrid NATS mode: whether the bridge is connected, what crossed each way, what it refused.
      ...(config.nats.length > 0 ? { nats: swarm.natsStats() } : {}),
      // Envelopes of the threads held (those of retired threads stay on disk, out of the index).
      envelopes: log.size,
      envelopesAppended: log.appended,
      ledgerBase: ledger.settled,
      consensus: config.consensus,
      params: swarm.agent.params,
      uptimeMs: Date.now() - started,
      webApp: webRoot !== undefined,
      artifacts: {
        pinned: swarm.artifacts.pinned,
        bytes: swarm.artifacts.totalBytes,
        ...swarm.artifacts.stats(),
      },
    }),
    onRequest: (_method, route, status) => httpRequests.inc({ route, status: String(status) }),
    threadEnvelopes: (thread) => threadViews.lines(thread),
    ledger,
    pool: {
      snapshot: () => ledger.pool(),
      put: (did, manifest) => manifests.put(did, manifest),
    },
    genesis: () => genesisToJson(genesis),
    faucet: (did) => grants.request(did),
    artifacts: swarm.artifacts,
  })
  ownOrigins.port = Number(new URL(url).port)
  logger.info({ url, webApp: webRoot !== undefined }, 'http listening')

  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping = true
      clearInterval(monitorTimer)
      clearInterval(settleTimer)
      clearInterval(poolTimer)
      logger.info('stopping')
      await closeServer(server)
      await adopting
      await swarm.stop()
      log.close()
      manifests.close()
      grants.close()
      await store.close()
      logger.info('stopped')
    })()
    return stopped
  }
  return {
    did: identity.did,
    url,
    consensus: store,
    genesis,
    get params() {
      return swarm.agent.params
    },
    swarm,
    ledger,
    multiaddrs: () => swarm.multiaddrs(),
    stop,
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolvePromise) => {
    server.close(() => resolvePromise())
    server.closeIdleConnections()
  })
}

/**
 * The peer's pushed metrics as Prometheus counters and gauges in `registry`, each created on its
 * first push with the label names of that push (the peer always pushes a name with the same ones).
 */
export function pushedMetrics(registry: Registry): PeerMetrics {
  const made = new Map<string, Counter | Gauge>()
  const metric = <M extends Counter | Gauge>(
    Kind: new (config: { name: string; help: string; labelNames: string[]; registers: Registry[] }) => M,
    name: string,
    labels: Record<string, string>,
  ): M => {
    let found = made.get(name)
    if (!found) {
      found = new Kind({
        name,
        help: `${name} (pushed by the peer)`,
        labelNames: Object.keys(labels),
        registers: [registry],
      })
      made.set(name, found)
    }
    return found as M
  }
  return {
    count: (name, value = 1, labels = {}) => metric(Counter, name, labels).inc(labels, value),
    gauge: (name, value, labels = {}) => metric(Gauge, name, labels).set(labels, value),
  }
}
