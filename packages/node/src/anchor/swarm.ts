/**
 * The anchor's place in the swarm: a libp2p node with a circuit relay server and TCP, WebSocket
 * and WebRTC-direct listeners (browsers reach it over WebSockets and find each other through it;
 * the WebSocket listener takes upgrades only from the pages `allowWebSocketOrigin` allows), the
 * gossip bus, and an agent with the anchor's role whose DECIDEs go through the anchor's durable
 * consensus store. Every envelope passes the same gates as at any peer — its network, the policy
 * ingress gate (A8) — before the anchor stores it, relays it or settles it: gossip frames are gated
 * in the bus validator (so they are never forwarded), and everything else in the agent. What the
 * agent takes in (placed into a thread) or says is kept in the envelope log. The artifacts the
 * envelopes the fold accepted reference are pinned in Helia on the same node (artifacts.ts). It
 * follows every thread's plan document (plan sync, kept under `<data>/automerge`), so that any peer
 * can catch up with a thread from it.
 */
import { createSocket } from 'node:dgram'
import { join } from 'node:path'
import {
  type Agent,
  type AnyEnvelope,
  type ConsensusStore,
  createPeer,
  type FundingCheck,
  type LocalIdentity,
  type NetworkParams,
  type Peer,
  type PeerMetrics,
  type PeerService,
  type PolicyGates,
} from '@can-swarm/peer'
import type { GossipBus, Network } from '@can-swarm/peer/net'
import { type NatsBridgeService, type NatsBridgeStats, natsBridgeService } from '@can-swarm/peer/node'
import type { PlanSync } from '@can-swarm/peer/plan-sync'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { FsDatastore } from 'datastore-fs'
import { AnchorArtifacts, type AnchorArtifactsOptions } from './artifacts.ts'
import { serveDecide } from './decide-service.ts'
import type { EnvelopeLog } from './log.ts'
import { startSync } from './sync.ts'

export interface SwarmOptions {
  identity: LocalIdentity
  /** The anchor's data directory (artifacts in `blocks/` and `pins.log`, plan documents in `automerge/`). */
  data: string
  artifacts?: AnchorArtifactsOptions
  params: NetworkParams
  consensus: ConsensusStore
  /** The policy gates (A8): ingress on everything received, preflight on everything published. */
  policy?: PolicyGates
  /** The funding check of DECIDEs (A7). */
  funding?: FundingCheck
  /** A worker's standing for grants (its reputation). */
  workerRank?: (worker: string) => number
  /** Which undecided NEEDs stay when room must be made (those their requester can fund). */
  undecidedRank?: (need: { requester: string; budget: number }) => number
  log: EnvelopeLog
  /** Envelopes restored from the log, in log order (read as they are restored). */
  restored: Iterable<AnyEnvelope>
  /**
   * Called after each batch of restored envelopes with the latest `ts` among them (never after
   * now): the anchor lets threads settled by then go before it reads on.
   */
  onRestored?: (untilMs: number) => void
  host: string
  tcpPort: number
  wsPort: number
  /** UDP port of the WebRTC-direct listener (0: any; -1: none). */
  webrtcPort: number
  /** Other anchors or relays to stay connected to. */
  bootstrap: readonly string[]
  /** Which `Origin` headers the WebSocket listener takes upgrades from (others get 403). @default every origin */
  allowWebSocketOrigin?: (origin: string | undefined) => boolean
  /** Called with the agent before the log is restored into it (to observe every envelope it places). */
  onAgent?: (agent: Agent) => void
  onError: (error: unknown) => void
  /** Where the anchor's peer pushes its metrics. @default none */
  metrics?: PeerMetrics
  /** Bridge gossip with these nats-server URLs (hybrid NATS mode). @default no bridge */
  nats?: { servers: readonly string[]; subjectPrefix?: string }
}

export interface AnchorSwarm {
  readonly network: Network
  readonly bus: GossipBus
  readonly agent: Agent
  /** The pinned artifact store (Helia on this node). */
  readonly artifacts: AnchorArtifacts
  /** Artifacts moved in from an earlier version's stand-in store when it opened. */
  readonly importedArtifacts: number
  /** Plan sync: the anchor follows every thread's plan document. */
  readonly planSync: PlanSync
  /** The NATS bridge's counters, when the anchor bridges NATS (`--nats`). */
  natsStats(): NatsBridgeStats | undefined
  multiaddrs(): string[]
  stop(): Promise<void>
}

/** Envelopes restored into the agent at once (one fold and one round of reactions per thread of a batch). */
export const RESTORE_BATCH = 16_384

async function restoreInBatches(
  agent: Agent,
  envelopes: Iterable<AnyEnvelope>,
  onRestored: ((untilMs: number) => void) | undefined,
): Promise<void> {
  let batch: AnyEnvelope[] = []
  let latest = 0
  const flush = async () => {
    await agent.restore(batch)
    batch = []
    onRestored?.(Math.min(latest, Date.now()))
    // Let what the hook scheduled (threads retired) run before reading on.
    await new Promise((resolve) => setImmediate(resolve))
  }
  for (const env of envelopes) {
    batch.push(env)
    latest = Math.max(latest, env.ts)
    if (batch.length >= RESTORE_BATCH) await flush()
  }
  if (batch.length > 0) await flush()
}

/**
 * The anchor's peer: one {@link createPeer} call. Its own parts are services composed into it —
 * the envelope log (which restores the agent before it hears the network), the DECIDE service
 * and the anchor's envelope sync (which heals its consensus store) — and its artifact store is the
 * pinned Helia store on the same libp2p node.
 */
export async function startSwarm(options: SwarmOptions): Promise<AnchorSwarm> {
  const family = options.host.includes(':') ? 'ip6' : 'ip4'
  // The peer store and the WebRTC-direct certificate outlive a restart (its /certhash stays the
  // same, so a browser's saved address keeps working); peers not seen for hours age out of it.
  const datastore = new FsDatastore(join(options.data, 'libp2p'))
  await datastore.open()
  let artifacts: AnchorArtifacts | undefined
  let imported = 0
  const start = (webrtcPort: number) =>
    createPeer({
      identity: options.identity,
      params: options.params,
      bootstrap: [...options.bootstrap],
      roles: { decider: true },
      consensus: options.consensus,
      ...(options.policy ? { policy: options.policy } : {}),
      agent: {
        ...(options.funding ? { funding: options.funding } : {}),
        ...(options.workerRank ? { workerRank: options.workerRank } : {}),
        ...(options.undecidedRank ? { undecidedRank: options.undecidedRank } : {}),
      },
      onError: options.onError,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      network: {
        datastore,
        listen: [
          `/${family}/${options.host}/tcp/${options.tcpPort}`,
          `/${family}/${options.host}/tcp/${options.wsPort}/ws`,
          ...(options.webrtcPort >= 0 ? [`/${family}/${options.host}/udp/${webrtcPort}/webrtc-direct`] : []),
        ],
        webRTC: options.webrtcPort >= 0,
        webRTCBindAddress: options.host,
        ...(options.allowWebSocketOrigin ? { allowWebSocketOrigin: options.allowWebSocketOrigin } : {}),
        services: {
          relay: circuitRelayServer({ reservations: { maxReservations: 256 } }) as (
            components: never,
          ) => unknown,
        },
      },
      artifacts: async ({ network }) => {
        const opened = await AnchorArtifacts.open(options.data, network.libp2p, {
          onPinError: (cid, error) =>
            options.onError(new Error(`could not pin artifact ${cid}: ${String(error)}`)),
          ...options.artifacts,
        })
        artifacts = opened.artifacts
        imported = opened.imported
        return { store: opened.artifacts.store, stop: () => opened.artifacts.stop() }
      },
      services: {
        log: ({ agent }) => logService(agent, artifacts!, options),
        decide: ({ network, agent, bus }) =>
          startedBy(() => serveDecide({ network, agent, consensus: options.consensus, relay: bus })),
        sync: ({ network, agent, onError }) =>
          startedBy(async () => {
            const running = await startSync({ network, agent, consensus: options.consensus, onError })
            return () => running.stop()
          }),
        ...(options.nats && options.nats.servers.length > 0
          ? {
              nats: natsBridgeService({
                servers: options.nats.servers,
                ...(options.nats.subjectPrefix ? { subjectPrefix: options.nats.subjectPrefix } : {}),
              }),
            }
          : {}),
      },
      envelopeSync: false,
      planSync: { storage: join(options.data, 'automerge') },
    })
  let peer: Peer
  try {
    peer = await startOnAFreeUdpPort(options.host, options.webrtcPort, start)
  } catch (error) {
    await datastore.close().catch(() => undefined)
    throw error
  }
  return {
    network: peer.network,
    bus: peer.bus,
    agent: peer.agent,
    artifacts: artifacts!,
    importedArtifacts: imported,
    planSync: peer.planSync!,
    natsStats: () => (peer.services.nats as NatsBridgeService | undefined)?.bridge()?.stats(),
    multiaddrs: () => peer.network.libp2p.getMultiaddrs().map(String),
    async stop() {
      await peer.stop()
      await datastore.close().catch(() => undefined)
      options.log.sync()
    },
  }
}

/** A service whose start gives back its stop (the DECIDE service, the anchor's sync). */
function startedBy(start: () => Promise<() => Promise<void>>): PeerService {
  let stop: (() => Promise<void>) | undefined
  return {
    async start() {
      stop = await start()
    },
    stop: () => stop?.(),
  }
}

/** Tries for a free UDP port of the WebRTC-direct listener, when asked for any. */
const UDP_PORT_TRIES = 5

/**
 * Starts the anchor's peer on `webrtcPort`; for 0 (any port) it picks a free one itself and tries
 * again on another if that one was taken meanwhile. libjuice (under WebRTC-direct) cannot bind port
 * 0, so @libp2p/webrtc probes a free port and binds it later; another process can take it in
 * between, and the start fails with "Failed to register ICE UDP mux listener".
 */
export async function startOnAFreeUdpPort<T>(
  host: string,
  webrtcPort: number,
  start: (port: number) => Promise<T>,
): Promise<T> {
  if (webrtcPort !== 0) return start(webrtcPort)
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await start(await freeUdpPort(host))
    } catch (error) {
      if (attempt >= UDP_PORT_TRIES || !/ICE UDP mux/.test(String((error as Error)?.message ?? error)))
        throw error
    }
  }
}

/** A UDP port free on `host` right now (the kernel's pick for port 0). */
function freeUdpPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4')
    socket.once('error', reject)
    socket.bind(0, host, () => {
      const { port } = socket.address()
      socket.close(() => resolve(port))
    })
  })
}

/**
 * The envelope log as a service: what the agent takes into a thread (past every gate) or says is
 * appended — what it publishes before it leaves, since the agent places its own envelope before
 * handing it to the bus — and the artifacts the accepted envelopes reference are pinned. Starting
 * it restores the log into the agent, before the agent hears the network.
 */
function logService(agent: Agent, artifacts: AnchorArtifacts, options: SwarmOptions): PeerService {
  const log = options.log
  let storageReported = false
  const unobserve = agent.observe((env) => {
    try {
      log.append(env)
    } catch (error) {
      // A full disk or an I/O error: the log refuses writes from now on (and /readyz says so); the
      // anchor goes on serving what it holds. Reported once, not per envelope.
      if (!storageReported) options.onError?.(error as Error)
      storageReported = true
    }
    // What the envelope references is pinned only if the fold accepted it: a COMMIT the fold refused
    // (not the lease holder's, say) pins nothing. A NEED's inputs are pinned once the NEED is
    // decided (its requester funded it), not when anyone with a free key posts it.
    const replica = agent.replica(env.thread)
    if (!replica || replica.state.rejected.has(env.id)) return
    if (env.kind === 'NEED') return
    if (env.kind === 'DECIDE') {
      const need = replica.state.winner ? replica.state.need : undefined
      const needEnv = need ? replica.get(need.env) : undefined
      if (needEnv) artifacts.pinReferenced(needEnv)
      return
    }
    artifacts.pinReferenced(env)
  })
  // A retired thread's envelopes stay on disk; the log's index of ids lets them go, and its
  // artifacts count as settled (a thread that never finished never settled for the agent).
  const unretire = agent.onRetire((thread, envelopes) => {
    log.forget(envelopes.map((env) => env.id))
    artifacts.threadSettled(thread)
  })
  // A settled thread's artifacts may give way to new ones when the store is full.
  const unsettled = agent.onSettled((thread) => artifacts.threadSettled(thread))
  options.onAgent?.(agent)
  return {
    // Restored envelopes the agent places reach the observer too: whatever earlier runs could not
    // pin yet is looked for again (and only for envelopes the agent still accepts).
    start: () => restoreInBatches(agent, options.restored, options.onRestored),
    stop() {
      unobserve()
      unsettled()
      unretire()
    },
  }
}
