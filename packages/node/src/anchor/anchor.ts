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
import type { Logger } from 'pino'
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import { envelopeToJson } from '../../../peer/src/core/codec.ts'
import type { ConsensusStore } from '../../../peer/src/core/consensus.ts'
import { isOpenPool, type NetworkParams, networkParams } from '../../../peer/src/core/thread/params.ts'
import { EmbeddedConsensusStore } from '../consensus/embedded.ts'
import { EtcdConsensusStore } from '../consensus/etcd.ts'
import type { AnchorConfig } from './config.ts'
import { LiveLedger } from './economy.ts'
import { startHttp } from './http.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { EnvelopeLog } from './log.ts'
import { ManifestStore } from './manifests.ts'
import { BootstrapMonitor } from './monitor.ts'
import { type AnchorSwarm, startSwarm } from './swarm.ts'

export interface Anchor {
  readonly did: string
  readonly url: string
  readonly consensus: ConsensusStore
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

  const store = await openStore(config)
  const epoch = await store.currentEpoch()
  logger.info({ consensus: config.consensus, epoch }, 'consensus store open')

  const params = networkParams({ verifiers: config.verifiers, bootstrap: config.bootstrapMode })
  if (isOpenPool(params)) {
    logger.warn(
      'open verifier pool: bootstrap mode with no --verifiers, so any peer may verify (K = 1); list verifiers for a network with stakes',
    )
  } else if (!params.bootstrap && params.verifiers.length < 10) {
    logger.warn({ verifiers: params.verifiers.length }, 'bootstrap mode is off with fewer than 10 verifiers')
  }
  const { log, envelopes } = EnvelopeLog.open(config.data)
  logger.info({ envelopes: envelopes.length }, 'envelope log open')
  const swarm = await startSwarm({
    identity,
    data: config.data,
    params,
    consensus: store,
    log,
    restored: envelopes,
    host: config.host,
    tcpPort: config.p2pPort,
    wsPort: config.wsPort,
    webrtcPort: config.webrtcPort,
    bootstrap: config.peers,
    onError: (error) => logger.warn({ err: error }, 'agent error'),
  })
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

  const monitor = new BootstrapMonitor(params)
  let monitorReport = monitor.observe(Date.now())
  const monitorTimer = setInterval(() => {
    monitor.scan(swarm.agent, Date.now())
    monitorReport = monitor.observe(Date.now())
  }, 5_000)
  monitorTimer.unref()

  const manifests = await ManifestStore.open(config.data)
  const ledger = new LiveLedger({
    params,
    manifests,
    replicas: () => swarm.agent.threads().map((thread) => swarm.agent.replica(thread)!),
    version: () => log.size,
  })

  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'can_swarm_anchor_' })
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
    name: 'can_swarm_consensus_epoch',
    help: 'Current epoch of the consensus store',
    registers: [registry],
    async collect() {
      this.set(await store.currentEpoch())
    },
  })

  let stopping = false
  const webRoot = existsSync(join(WEB_DIST, 'index.html')) ? WEB_DIST : undefined
  const { server, url } = await startHttp({
    host: config.host,
    port: config.port,
    registry,
    webRoot,
    notReady: () => (stopping ? ['shutting down'] : []),
    status: async () => ({
      did: identity.did,
      epoch: await store.currentEpoch(),
      bootstrapMonitor: monitorReport,
      peerId: swarm.network.peerId.toString(),
      multiaddrs: swarm.multiaddrs(),
      connections: swarm.network.libp2p.getConnections().length,
      threads: swarm.agent.threads().length,
      planSync: swarm.planSync.stats(),
      envelopes: log.size,
      consensus: config.consensus,
      params,
      uptimeMs: Date.now() - started,
      webApp: webRoot !== undefined,
      artifacts: { pinned: swarm.artifacts.pinned, bytes: swarm.artifacts.totalBytes },
    }),
    onRequest: (_method, route, status) => httpRequests.inc({ route, status: String(status) }),
    threadEnvelopes: (thread) => swarm.agent.replica(thread)?.envelopes().map(envelopeToJson),
    ledger,
    pool: {
      snapshot: () => ledger.pool(),
      put: (did, manifest) => manifests.put(did, manifest),
    },
    artifacts: swarm.artifacts,
  })
  logger.info({ url, webApp: webRoot !== undefined }, 'http listening')

  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping = true
      clearInterval(monitorTimer)
      logger.info('stopping')
      await closeServer(server)
      await swarm.stop()
      log.close()
      await store.close()
      logger.info('stopped')
    })()
    return stopped
  }
  return {
    did: identity.did,
    url,
    consensus: store,
    params,
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
