/**
 * `createPeer(options)`: the one front door of the peer package. It composes an identity, a libp2p
 * node (Node or browser transports), the gossip bus, a Helia artifact store on that node (unless
 * given a store), an agent with the roles asked for, plan sync (each thread's signed envelopes in
 * an Automerge document, synced over libp2p) and envelope sync, and hands back one object to post
 * NEEDs, read threads and stop.
 *
 * @example
 * ```ts
 * import { createPeer } from '@can-swarm/peer'
 *
 * const { params } = await fetchNetwork('http://127.0.0.1:7700')   // the anchor's genesis, verified
 * const peer = await createPeer({
 *   params,
 *   bootstrap: ['/ip4/127.0.0.1/tcp/7702/ws/p2p/12D3Koo…'],  // the anchor's WebSocket address
 *   roles: { verifier: true, worker: true },
 * })
 * await requestCredits('http://127.0.0.1:7700', peer.did)     // a NEED's budget must be funded
 * const need = await peer.post({ requires: ['word-frequency'], inputs: [bytes], budget: 10 })
 * peer.agent.replica(need)?.state                            // follow it to FINAL
 * await peer.stop()
 * ```
 */

import type { StorageAdapterInterface } from '@automerge/automerge-repo/slim'
import {
  Agent,
  type AgentOptions,
  type AgentRoles,
  type AgentTuning,
  type NeedRequest,
} from './agent/agent.ts'
import type { CapabilityRegistry } from './agent/capabilities.ts'
import { type AgentClock, type AgentRandom, SeededRandom } from './agent/ports.ts'
import type { HeliaArtifacts } from './artifacts/helia.ts'
import type { ArtifactStore } from './core/artifacts.ts'
import type { ConsensusStore } from './core/consensus.ts'
import { InvalidArgumentError } from './core/errors.ts'
import { isAnchor, type NetworkParams, networkParams } from './core/thread/params.ts'
import type { ThreadState } from './core/thread/state.ts'
import type { AnyEnvelope } from './core/types.ts'
import { createIdentity, type LocalIdentity } from './crypto/ed25519.ts'
import { type AttachedAgent, attachAgent, systemClock } from './net/agent-bus.ts'
import { type BusOptions, createBus, type GossipBus } from './net/bus.ts'
import { createNetwork, type Network, type NetworkOptions } from './net/network.ts'
import type { PlanSync, PlanSyncOptions } from './plan-sync/plan-sync.ts'
import { explainDecision, type PolicyGates } from './policy/gates.ts'
import { type AgentSync, syncAgent } from './sync/agent-sync.ts'

export interface PeerOptions {
  /** The peer's key: it signs envelopes and names the libp2p node. @default a new random identity */
  identity?: LocalIdentity
  /**
   * The network's parameters: from its genesis (`fetchNetwork(anchorUrl)` gets and verifies it from
   * an anchor, or `paramsFromGenesis(genesis)`), with the verifier pool as far as this peer knows it.
   */
  params: NetworkParams | Partial<NetworkParams>
  /** Multiaddrs (with /p2p/<id>) of anchors or relays to stay connected to. @default [] */
  bootstrap?: string[]
  /** @default none: the peer follows threads but does no work */
  roles?: AgentRoles
  /** @default the built-in capabilities */
  capabilities?: CapabilityRegistry
  /**
   * Where artifacts live: a store of your own, or the options of the default store, Helia over this
   * peer's libp2p node (bitswap with connected peers; blocks in memory, or under `directory`: a
   * directory on Node, an IndexedDB database name in browsers).
   * @default Helia with blocks in memory
   */
  artifacts?: ArtifactStore | PeerArtifactOptions | PeerArtifactsFactory
  /** Needed for the decider role. @default none */
  consensus?: ConsensusStore
  /**
   * Policy gates (see `policy/`): ingress runs in the bus validator (a denied frame is neither
   * delivered nor forwarded) and again on what sync brings; preflight runs on what this peer says.
   * @default the built-in rules
   */
  policy?: PolicyGates
  /**
   * What an anchor's agent also needs: the funding check of DECIDEs, a worker's standing for
   * grants, which undecided NEEDs stay when room must be made, and the agent's bounds.
   * @default none of them
   */
  agent?: Pick<
    AgentOptions,
    | 'funding'
    | 'workerRank'
    | 'undecidedRank'
    | 'maxOrphanEnvelopes'
    | 'maxPendingEnvelopes'
    | 'maxUndecidedThreads'
    | 'maxRetiredThreads'
    | 'settleAfterMs'
  >
  /**
   * Services composed into this peer, in the js-libp2p manner: each factory gets the peer's
   * components once they exist (before the agent hears the network) and returns a service; they
   * start in the order given, before the agent is attached to the bus (a service may restore
   * history into the agent), and stop in reverse order after the agent has stopped. A factory or
   * start that throws stops what was built and fails `createPeer`.
   * @default {}
   */
  services?: Record<string, PeerServiceFactory>
  /** Where the peer and its services write what they have to say. @default silent */
  logger?: PeerLogger
  /** Where the peer and its services push counters and gauges. @default none */
  metrics?: PeerMetrics
  /** The clock of the agent and the services, in ms. @default the system clock */
  clock?: AgentClock
  /** The agent's random source (a seeded one makes a test repeatable). @default seeded from the identity and the time */
  random?: AgentRandom
  /**
   * Gives up starting: `createPeer` stops what it built so far and rejects with the signal's
   * reason. It has no effect once the peer is returned (stop it with `peer.stop()`).
   * @default none
   */
  signal?: AbortSignal
  /** Timings and bounds of the agent's roles. @default DEFAULT_AGENT_TUNING */
  tuning?: Partial<AgentTuning>
  /**
   * Drop a thread from memory once it has settled (FINAL and quiet for 2 × T_challenge): its
   * replica goes, its id is remembered (bounded) and later envelopes of it are answered `retired`.
   * Turn it on for long-running peers that do not read old threads (their memory then stays flat
   * in the number of finished threads). @default false
   */
  retireSettled?: boolean
  /**
   * libp2p options beyond identity and bootstrap (listen addresses, WebRTC, limits…), or a node
   * the caller started (from `createNetwork`) and keeps: the peer then uses it, never stops it, and
   * `bootstrap` is the node's business.
   * @default the runtime's loopback listeners, no STUN
   */
  network?: Omit<NetworkOptions, 'identity' | 'bootstrap'> | Network
  /**
   * Limits and batching of the gossip bus, or a bus on that node the caller made and keeps (its
   * own ingress hook then is the only gate on gossip; the agent runs the policy gate itself).
   * @default the bus's own (see BusOptions)
   */
  bus?: BusOptions | GossipBus
  /**
   * Called with every envelope this peer's agent publishes (before it goes out) and every
   * envelope the bus delivers to it (after every gate). Keep them short: they run in line.
   * @default none
   */
  hooks?: PeerHooks
  /** Pull missed envelopes from peers serving sync, every `syncIntervalMs` (0: only when peers meet). @default 5 000 */
  syncIntervalMs?: number
  /**
   * Envelope sync (`/can-swarm/sync/1.0.0`): serve and pull missed envelopes. With plan sync on,
   * it is the fallback for peers that do not speak plan sync. @default true
   */
  envelopeSync?: boolean
  /**
   * Plan sync (`/can-swarm/automerge/1.0.0`): every thread the agent sees (and every thread
   * passed to `peer.planSync.follow`) is kept in an Automerge document synced with the peers that
   * follow it; `false` turns it off. `storage` is a directory on Node or an IndexedDB database
   * name in browsers (or any Automerge-repo storage adapter). @default on, memory only
   */
  planSync?: false | PeerPlanSyncOptions
  /** Errors the peer handled by dropping an action. @default ignored */
  onError?: (error: unknown) => void
}

/**
 * An artifact store built on the peer's libp2p node (an anchor's pinned Helia store, say); the
 * peer stops it after its libp2p node's users and before the node.
 */
export type PeerArtifactsFactory = (components: {
  network: Network
}) => Promise<{ store: ArtifactStore; stop(): Promise<void> }>

/** See {@link PeerOptions.hooks}. */
export interface PeerHooks {
  onPublish?(env: AnyEnvelope): void
  onReceive?(env: AnyEnvelope): void
}

/** A service composed into a peer (see {@link PeerOptions.services}). */
export interface PeerService {
  start?(): void | Promise<void>
  stop?(): void | Promise<void>
}

/** Builds a service from the peer's components. */
export type PeerServiceFactory<S extends PeerService = PeerService> = (
  components: PeerComponents,
) => S | Promise<S>

/** What a service is built from. */
export interface PeerComponents {
  readonly identity: LocalIdentity
  readonly params: NetworkParams
  readonly network: Network
  readonly bus: GossipBus
  readonly agent: Agent
  readonly artifacts: ArtifactStore
  readonly clock: AgentClock
  readonly logger: PeerLogger
  readonly metrics: PeerMetrics
  readonly onError: (error: unknown) => void
}

/** Structured log lines: a message and fields (pino, console or anything else can sit behind it). */
export interface PeerLogger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

/**
 * Pushed metrics: a counter grows by `value`, a gauge is set to it. Names are snake_case. The peer
 * itself pushes `can_swarm_envelopes_published_total{kind}` (what its agent says),
 * `can_swarm_envelopes_placed_total{kind}` (what its agent placed in a thread, from anyone),
 * `can_swarm_tasks_final_total` and `can_swarm_peer_errors_total`; services push their own.
 */
export interface PeerMetrics {
  count(name: string, value?: number, labels?: Record<string, string>): void
  gauge(name: string, value: number, labels?: Record<string, string>): void
}

const SILENT: PeerLogger = { debug() {}, info() {}, warn() {}, error() {} }
const NO_METRICS: PeerMetrics = { count() {}, gauge() {} }

/** Options of the peer's default Helia artifact store (see `createHeliaArtifacts`). */
export interface PeerArtifactOptions {
  /** Keep blocks and pins here (Node: a directory; browsers: an IndexedDB name). @default in memory */
  directory?: string
  /** Pin every artifact this peer puts. @default false */
  pinOnPut?: boolean
  /** How long a `get` looks for a block among connected peers, in ms. @default 30 000 */
  fetchTimeoutMs?: number
}

/** Plan sync options of {@link PeerOptions.planSync}. */
export interface PeerPlanSyncOptions
  extends Omit<PlanSyncOptions, 'libp2p' | 'agent' | 'storage' | 'onError'> {
  /** A directory (Node), an IndexedDB database name (browsers) or a storage adapter. @default none */
  storage?: string | StorageAdapterInterface
}

/** The events of {@link Peer.on}. */
export interface PeerEvents {
  /** An envelope newly placed in one of this peer's threads (received, published or restored). */
  envelope: (env: AnyEnvelope) => void
  /** A thread's state after an envelope changed it. */
  'thread:state': (thread: string, state: Readonly<ThreadState>) => void
  /** A task became FINAL: its thread, its id and its outputs (artifact CIDs). */
  'thread:final': (thread: string, task: string, outputs: readonly string[]) => void
}

export interface Peer {
  readonly identity: LocalIdentity
  readonly did: string
  readonly params: NetworkParams
  readonly agent: Agent
  readonly network: Network
  readonly bus: GossipBus
  /** Envelope sync; `undefined` when `envelopeSync` is false. */
  readonly sync: AgentSync | undefined
  /** Plan sync; `undefined` when `planSync` is false. */
  readonly planSync: PlanSync | undefined
  /** The artifact store the agent uses (a {@link HeliaArtifacts} unless one was given). */
  readonly artifacts: ArtifactStore | HeliaArtifacts
  /** The services of {@link PeerOptions.services}, by name. */
  readonly services: Readonly<Record<string, PeerService>>
  /** Posts a NEED (see {@link Agent.post}: `signal` aborts it until it is published); resolves with its id. */
  post(request: NeedRequest, options?: { signal?: AbortSignal }): Promise<string>
  /**
   * Changes the roles this peer plays without refolding what it holds (see {@link Agent.setRoles}).
   * @throws {InvalidArgumentError} for a decider role this peer cannot hold.
   */
  setRoles(roles: AgentRoles): Promise<void>
  /**
   * Listens to what happens in the threads this peer holds (typed: see {@link PeerEvents}); returns
   * a function that removes the listener. Listeners run synchronously after the fold: keep them short.
   */
  on<E extends keyof PeerEvents>(event: E, listener: PeerEvents[E]): () => void
  /**
   * Stops envelope sync, plan sync (flushing its storage), the agent, the services (in reverse
   * order), the artifact store it built and the libp2p node. Idempotent.
   */
  stop(): Promise<void>
}

/**
 * Composes a peer (see the module comment and {@link PeerOptions}).
 *
 * @throws {InvalidArgumentError} for options out of range (a decider role without `consensus`, a
 * node given with another identity…).
 */
export async function createPeer(options: PeerOptions): Promise<Peer> {
  const given = isNetwork(options.network) ? options.network : undefined
  const identity = options.identity ?? given?.identity ?? (await createIdentity())
  if (given && given.identity.did !== identity.did)
    throw new InvalidArgumentError(
      `the node given is ${given.identity.did}'s, not ${identity.did}'s: a peer signs with its node's key`,
      'network',
    )
  const params =
    'quorum' in options.params ? (options.params as NetworkParams) : networkParams(options.params)
  const logger = options.logger ?? SILENT
  const metrics = options.metrics ?? NO_METRICS
  const reportError = options.onError ?? (() => undefined)
  const onError = (error: unknown) => {
    metrics.count('can_swarm_peer_errors_total')
    reportError(error)
  }
  const clock = options.clock ?? systemClock()
  const policy = options.policy
  // What was built so far, stopped in reverse if a later step fails (and by peer.stop()).
  const undo: Array<() => Promise<void> | void> = []
  const unwind = async () => {
    for (const step of undo.splice(0).reverse()) await Promise.resolve(step()).catch(onError)
  }
  const signal = options.signal
  try {
    signal?.throwIfAborted()
    const network =
      given ??
      (await createNetwork({
        ...(options.network as Omit<NetworkOptions, 'identity' | 'bootstrap'> | undefined),
        identity,
        bootstrap: options.bootstrap ?? [],
      }))
    if (!given) undo.push(() => network.stop())
    const givenBus = isBus(options.bus) ? options.bus : undefined
    const bus = givenBus ?? createPeerBus(network, params, policy, options.bus as BusOptions | undefined)
    if (!givenBus) undo.push(() => bus.flush().catch(() => undefined))
    signal?.throwIfAborted()
    const artifacts = await openArtifacts(network, options.artifacts, undo)
    signal?.throwIfAborted()
    const seed = identity.seed
    const hooks = options.hooks ?? {}
    const onPublish = hooks.onPublish
    const agent = new Agent({
      identity,
      params,
      bus: {
        publish: (env) => {
          metrics.count('can_swarm_envelopes_published_total', 1, { kind: env.kind })
          onPublish?.(env)
          bus.publish(env)
        },
      },
      clock,
      random:
        options.random ??
        new SeededRandom(((seed[0]! << 24) | (seed[1]! << 16) | (seed[2]! << 8) | seed[3]!) ^ Date.now()),
      artifacts,
      roles: options.roles ?? {},
      onError,
      ...options.agent,
      ...(options.capabilities ? { capabilities: options.capabilities } : {}),
      ...(options.consensus ? { consensus: options.consensus } : {}),
      ...(policy ? { policy } : {}),
      ...(options.tuning ? { tuning: options.tuning } : {}),
      ...(options.retireSettled ? { retireSettled: true } : {}),
    })
    const components: PeerComponents = {
      identity,
      params,
      network,
      bus,
      agent,
      artifacts,
      clock,
      logger,
      metrics,
      onError,
    }
    const services: Record<string, PeerService> = {}
    for (const [name, factory] of Object.entries(options.services ?? {})) {
      const service = await factory(components)
      services[name] = service
      undo.push(() => service.stop?.())
      await service.start?.()
      signal?.throwIfAborted()
    }
    undo.push(() => agent.stop())
    // The bus this peer made already ran the policy's ingress gate; a caller's bus did not.
    const attached: AttachedAgent = attachAgent(bus, agent, { onError, gated: !givenBus })
    undo.push(() => attached.detach())
    const onReceive = hooks.onReceive
    if (onReceive) undo.push(bus.onEnvelope((env) => onReceive(env)))
    // Pushed metrics: what the agent placed in its threads, and tasks it saw become FINAL.
    undo.push(
      agent.observe((env) => metrics.count('can_swarm_envelopes_placed_total', 1, { kind: env.kind })),
    )
    undo.push(agent.onFinal(() => metrics.count('can_swarm_tasks_final_total')))
    const planSync =
      options.planSync === false
        ? undefined
        : await startPlanSync(network, agent, options.planSync ?? {}, onError)
    if (planSync) undo.push(() => planSync.stop())
    const sync =
      options.envelopeSync === false
        ? undefined
        : await syncAgent({
            libp2p: network.libp2p,
            agent,
            intervalMs: options.syncIntervalMs ?? 5_000,
            onError,
          })
    if (sync) undo.push(() => sync.stop())
    signal?.throwIfAborted()
    logger.info('peer started', {
      did: identity.did,
      peerId: network.peerId.toString(),
      network: params.network,
      services: Object.keys(services),
    })
    let stopped: Promise<void> | undefined
    return {
      identity,
      did: identity.did,
      params,
      agent,
      network,
      bus,
      sync,
      artifacts,
      planSync,
      services,
      post: (request, postOptions) => agent.post(request, postOptions),
      setRoles: (roles) => agent.setRoles(roles),
      on(event, listener) {
        if (event === 'envelope') return agent.observe(listener as PeerEvents['envelope'])
        if (event === 'thread:state') {
          const onState = listener as PeerEvents['thread:state']
          return agent.observe((env) => {
            const state = agent.replica(env.thread)?.state
            if (state) onState(env.thread, state)
          })
        }
        if (event === 'thread:final') {
          const onFinal = listener as PeerEvents['thread:final']
          return agent.onFinal((thread, task) => {
            const outputs = agent.replica(thread)?.state.tasks.get(task)?.commit?.outputs ?? []
            onFinal(thread, task, outputs)
          })
        }
        throw new InvalidArgumentError(
          `unknown event "${String(event)}": envelope, thread:state or thread:final`,
          'event',
        )
      },
      stop() {
        stopped ??= unwind().then(() => logger.info('peer stopped', { did: identity.did }))
        return stopped
      },
    }
  } catch (error) {
    await unwind()
    throw error
  }
}

/**
 * The bus a peer makes on its node: gossip of another network is never delivered nor forwarded
 * (its signatures are worthless here), nor is what this peer's policy refuses to take in.
 */
/**
 * The bus a peer makes for itself (and the standalone NATS bridge): only envelopes of `params`'
 * network, the policy's ingress gate when given, and the network's anchors never throttled.
 */
export function createPeerBus(
  network: Network,
  params: NetworkParams,
  policy?: PolicyGates,
  options?: BusOptions,
): GossipBus {
  const ingress = options?.ingress
  const quotas = options?.quotas
  return createBus(network, {
    ...options,
    // The network's anchors speak for everyone (DECIDEs, grants, finalizations): never throttled.
    ...(quotas === false ? {} : { quotas: { exempt: (did: string) => isAnchor(params, did), ...quotas } }),
    ingress: (env, context) => {
      if (env.net !== params.network)
        return { allowed: false, reason: `envelope of network ${env.net}, not ${params.network}` }
      const decision = policy?.ingress(env)
      if (decision && !decision.allowed) return { allowed: false, reason: explainDecision(decision) }
      return ingress?.(env, context) ?? { allowed: true }
    },
  })
}

function isNetwork(value: PeerOptions['network']): value is Network {
  return typeof (value as Network | undefined)?.libp2p === 'object'
}

function isBus(value: PeerOptions['bus']): value is GossipBus {
  return typeof (value as GossipBus | undefined)?.publish === 'function'
}

/** The peer's artifact store: the one given, one a factory builds on the node, or Helia's. */
async function openArtifacts(
  network: Network,
  option: PeerOptions['artifacts'],
  undo: Array<() => Promise<void> | void>,
): Promise<ArtifactStore> {
  if (typeof option === 'function') {
    const built = await option({ network })
    undo.push(() => built.stop())
    return built.store
  }
  if (isArtifactStore(option)) return option
  const helia = await defaultArtifacts(network, option ?? {})
  undo.push(() => helia.stop())
  return helia
}

/** Plan sync on the peer's node, loaded on demand so that peers without it never bundle Automerge. */
async function startPlanSync(
  network: Network,
  agent: Agent,
  options: PeerPlanSyncOptions,
  onError: (error: unknown) => void,
): Promise<PlanSync> {
  const { createPlanSync } = await import('./plan-sync/plan-sync.ts')
  const { storage, ...rest } = options
  const adapter =
    typeof storage === 'string' ? (await import('#plan-sync/storage')).planStorage(storage) : storage
  return createPlanSync({
    ...rest,
    libp2p: network.libp2p,
    agent,
    onError,
    ...(adapter === undefined ? {} : { storage: adapter }),
  })
}

function isArtifactStore(value: PeerOptions['artifacts']): value is ArtifactStore {
  return typeof (value as ArtifactStore | undefined)?.put === 'function'
}

/** Helia over the peer's node, loaded on demand so that peers given a store never bundle Helia. */
async function defaultArtifacts(network: Network, options: PeerArtifactOptions): Promise<HeliaArtifacts> {
  const { createHeliaArtifacts } = await import('./artifacts/helia.ts')
  const storage =
    options.directory === undefined
      ? undefined
      : await (await import('#artifacts/storage')).openArtifactStorage(options.directory)
  return createHeliaArtifacts({
    libp2p: network.libp2p,
    ...(storage ? { storage } : {}),
    ...(options.pinOnPut === undefined ? {} : { pinOnPut: options.pinOnPut }),
    ...(options.fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs: options.fetchTimeoutMs }),
  })
}
