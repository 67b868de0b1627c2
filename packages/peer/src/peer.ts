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
import { Agent, type AgentRoles, type AgentTuning, type NeedRequest } from './agent/agent.ts'
import type { CapabilityRegistry } from './agent/capabilities.ts'
import { SeededRandom } from './agent/ports.ts'
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
import type { PolicyGates } from './policy/gates.ts'
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
  artifacts?: ArtifactStore | PeerArtifactOptions
  /** Needed for the decider role. @default none */
  consensus?: ConsensusStore
  /** Policy gates (see `policy/`). @default the built-in rules */
  policy?: PolicyGates
  /** Timings and bounds of the agent's roles. @default DEFAULT_AGENT_TUNING */
  tuning?: Partial<AgentTuning>
  /**
   * Drop a thread from memory once it has settled (FINAL and quiet for 2 × T_challenge): its
   * replica goes, its id is remembered (bounded) and later envelopes of it are answered `retired`.
   * Turn it on for long-running peers that do not read old threads (their memory then stays flat
   * in the number of finished threads). @default false
   */
  retireSettled?: boolean
  /** libp2p options beyond identity and bootstrap (listen addresses, WebRTC, limits…). @default the runtime's loopback listeners, no STUN */
  network?: Omit<NetworkOptions, 'identity' | 'bootstrap'>
  /** Limits and batching of the gossip bus. @default the bus's own (see BusOptions) */
  bus?: BusOptions
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
  /** Posts a NEED (see {@link Agent.post}); resolves with its id. */
  post(request: NeedRequest): Promise<string>
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
  /** Stops sync, plan sync (flushing its storage), the agent, the default artifact store and the libp2p node. Idempotent. */
  stop(): Promise<void>
}

export async function createPeer(options: PeerOptions): Promise<Peer> {
  const identity = options.identity ?? (await createIdentity())
  const params =
    'quorum' in options.params ? (options.params as NetworkParams) : networkParams(options.params)
  const onError = options.onError ?? (() => undefined)
  const network = await createNetwork({ ...options.network, identity, bootstrap: options.bootstrap ?? [] })
  // Gossip of another network is never delivered nor forwarded (its signatures are worthless here).
  const ingress = options.bus?.ingress
  const quotas = options.bus?.quotas
  const bus = createBus(network, {
    ...options.bus,
    // The network's anchors speak for everyone (DECIDEs, grants, finalizations): never throttled.
    ...(quotas === false ? {} : { quotas: { exempt: (did: string) => isAnchor(params, did), ...quotas } }),
    ingress: (env, context) =>
      env.net !== params.network
        ? { allowed: false, reason: `envelope of network ${env.net}, not ${params.network}` }
        : (ingress?.(env, context) ?? { allowed: true }),
  })
  const ownArtifacts = isArtifactStore(options.artifacts)
    ? undefined
    : await defaultArtifacts(network, options.artifacts ?? {})
  const artifacts = ownArtifacts ?? (options.artifacts as ArtifactStore)
  const seed = identity.seed
  const agent = new Agent({
    identity,
    params,
    bus,
    clock: systemClock(),
    random: new SeededRandom(((seed[0]! << 24) | (seed[1]! << 16) | (seed[2]! << 8) | seed[3]!) ^ Date.now()),
    artifacts,
    roles: options.roles ?? {},
    onError,
    ...(options.capabilities ? { capabilities: options.capabilities } : {}),
    ...(options.consensus ? { consensus: options.consensus } : {}),
    ...(options.policy ? { policy: options.policy } : {}),
    ...(options.tuning ? { tuning: options.tuning } : {}),
    ...(options.retireSettled ? { retireSettled: true } : {}),
  })
  const attached: AttachedAgent = attachAgent(bus, agent, { onError })
  const planSync =
    options.planSync === false
      ? undefined
      : await startPlanSync(network, agent, options.planSync ?? {}, onError)
  const sync =
    options.envelopeSync === false
      ? undefined
      : await syncAgent({
          libp2p: network.libp2p,
          agent,
          intervalMs: options.syncIntervalMs ?? 5_000,
          onError,
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
    post: (request) => agent.post(request),
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
      stopped ??= (async () => {
        await sync?.stop()
        await planSync?.stop()
        attached.detach()
        agent.stop()
        await bus.flush().catch(() => undefined)
        await ownArtifacts?.stop()
        await network.stop()
      })()
      return stopped
    },
  }
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

function isArtifactStore(value: ArtifactStore | PeerArtifactOptions | undefined): value is ArtifactStore {
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
