/**
 * One peer of a multi-process mesh (`npm run mesh`, the network tests, the `bus` benchmark):
 * a libp2p node with the gossip bus and, when asked, an agent. It is forked with an IPC channel
 * (`serialization: 'advanced'`) and answers requests `{ id, method, params }` with
 * `{ id, result }` or `{ id, error }`. It exits when the parent goes away.
 *
 * Not a user-facing command: see `mesh.ts`.
 */
import type { GossipsubOpts } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'
import type { Agent } from '../agent/agent.ts'
import { SeededRandom } from '../agent/ports.ts'
import { MemoryArtifactStore } from '../core/artifacts.ts'
import { decodeEnvelope, encodeEnvelope } from '../core/codec.ts'
import { BUILTIN_POLICY_HASH } from '../core/digest.ts'
import { genesisFromJson, paramsFromGenesis } from '../core/genesis.ts'
import { type AnyEnvelope, type Envelope, PROTOCOL_VERSION } from '../core/types.ts'
import { createIdentity, type LocalIdentity } from '../crypto/ed25519.ts'
import { signEnvelope } from '../crypto/envelopes.ts'
import { verifyGenesis } from '../crypto/genesis.ts'
import { createBus, type GossipBus } from '../net/bus.ts'
import { encodeFrame } from '../net/frame.ts'
import { createNetwork, type Network } from '../net/network.ts'
import { threadTopic } from '../net/topics.ts'
import { type IngressHook, validateFrame } from '../net/validation.ts'
import { createPeer, type Peer } from '../peer.ts'

/** How the parent configures a mesh peer. */
export interface MeshPeerConfig {
  /** 32-byte seed, hex. */
  seedHex: string
  listen?: string[]
  bootstrap?: string[]
  pubsubDiscovery?: boolean
  dialDiscoveredBelow?: number
  webRTC?: boolean
  maxEnvelopeAgeMs?: number
  publishWindowMs?: number
  gossip?: Partial<GossipsubOpts>
  /** Application reputation tuning. */
  reputation?: { disconnectThreshold?: number; invalidPenalty?: number; denyMs?: number }
  /** Test ingress hook: deny envelopes from these senders (did:key). */
  denySenders?: string[]
  /** Keep `[id, receivedAtMs]` of every delivered envelope. */
  record?: boolean
  /** Keep the wire bytes of the last delivered envelopes (for replays in tests). */
  keepBytes?: boolean
  /** The network's signed genesis (dag-json): envelopes carry its id. */
  genesis?: string
  /** Run an agent (needs `genesis`). */
  agent?: {
    roles: { planner?: boolean; verifier?: boolean; worker?: boolean }
    /** Input texts every peer holds (a stand-in for the artifact network). */
    inputs: string[]
    randomSeed: number
    /** Also pull missed envelopes from peers serving sync, every this many ms (as `createPeer` does). */
    syncIntervalMs?: number
  }
}

type Request = { id: number; method: string; params?: unknown }

/** Wall-clock time in ms with sub-ms resolution, comparable across processes on one machine. */
export function preciseNowMs(): number {
  return performance.timeOrigin + performance.now()
}

let identity: LocalIdentity
let network: Network
let bus: GossipBus
let agent: Agent | undefined
/** The composed peer, when this process runs an agent. */
let peer: Peer | undefined
const deliveries: Array<[string, number]> = []
const kept = new Map<string, Uint8Array>()
const prepared: AnyEnvelope[] = []
let lamport = 0
/** The network id envelopes carry (the genesis id; a fixed test id without a genesis). */
let net = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
/** The NATS baseline's connection (benchmarks only). */
let nats:
  | { close(): Promise<void>; publish(subject: string, data: Uint8Array): void; flush(): Promise<void> }
  | undefined
const errors: string[] = []
/** When each followed thread was first seen final here (ms, wall clock). */
const finalAt = new Map<string, number>()

async function start(config: MeshPeerConfig): Promise<unknown> {
  identity = await createIdentity({ seed: Uint8Array.from(Buffer.from(config.seedHex, 'hex')) })
  const deny = new Set(config.denySenders ?? [])
  const ingress: IngressHook | undefined =
    deny.size > 0
      ? (env) =>
          deny.has(env.sender) ? { allowed: false, reason: 'sender denied by policy' } : { allowed: true }
      : undefined
  const genesis =
    config.genesis === undefined ? undefined : await verifyGenesis(genesisFromJson(config.genesis))
  if (genesis) net = genesis.id
  const networkOptions = {
    ...(config.listen ? { listen: config.listen } : {}),
    pubsubDiscovery: config.pubsubDiscovery ?? true,
    dialDiscoveredBelow: config.dialDiscoveredBelow ?? 8,
    webRTC: config.webRTC ?? false,
    // every peer of a loopback mesh dials from 127.0.0.1
    inboundConnectionsPerSecond: 1000,
    ...(config.maxEnvelopeAgeMs === undefined ? {} : { maxEnvelopeAgeMs: config.maxEnvelopeAgeMs }),
    ...(config.gossip ? { gossip: config.gossip } : {}),
    ...(config.reputation ? { reputation: config.reputation } : {}),
  }
  const busOptions = {
    ...(config.publishWindowMs === undefined ? {} : { publishWindowMs: config.publishWindowMs }),
    ...(ingress ? { ingress } : {}),
  }
  if (config.agent) {
    // A peer with an agent is what any application builds: one createPeer call.
    if (!genesis) throw new Error('an agent needs the network genesis (config.genesis)')
    const spec = config.agent
    const artifacts = new MemoryArtifactStore()
    for (const text of spec.inputs) artifacts.putSync(new TextEncoder().encode(text))
    peer = await createPeer({
      identity,
      params: paramsFromGenesis(genesis),
      bootstrap: config.bootstrap ?? [],
      roles: spec.roles,
      artifacts,
      random: new SeededRandom(spec.randomSeed),
      network: networkOptions,
      bus: busOptions,
      planSync: false,
      envelopeSync: spec.syncIntervalMs !== undefined,
      ...(spec.syncIntervalMs === undefined ? {} : { syncIntervalMs: spec.syncIntervalMs }),
      onError: (error) => {
        if (errors.length < 50) errors.push(error instanceof Error ? error.message : String(error))
      },
    })
    network = peer.network
    bus = peer.bus
    agent = peer.agent
    // The moment a thread becomes FINAL here, taken when the fold says so (not on a poll, which a
    // report read in between would miss).
    peer.on('thread:state', (thread) => {
      if (!finalAt.has(thread) && isFinal(thread)) finalAt.set(thread, preciseNowMs())
    })
  } else {
    // Gossip only (the bus tests and benchmarks): a node and its bus, no agent.
    network = await createNetwork({ identity, bootstrap: config.bootstrap ?? [], ...networkOptions })
    bus = createBus(network, busOptions)
  }
  if (config.record || config.keepBytes) {
    bus.onEnvelope((env) => {
      if (config.record) deliveries.push([env.id, preciseNowMs()])
      if (config.keepBytes) {
        kept.set(env.id, encodeEnvelope(env))
        if (kept.size > 1000) kept.delete(kept.keys().next().value!)
      }
    })
  }
  return info()
}

function isFinal(thread: string): boolean {
  const state = agent?.replica(thread)?.state
  if (!state?.winner) return false
  const tasks = [...state.tasks.values()].filter((task) => task.proposal === state.winner?.proposal)
  return tasks.length > 0 && tasks.every((task) => task.state === 'FINAL')
}

function info(): unknown {
  return {
    peerId: network.peerId.toString(),
    did: identity.did,
    multiaddrs: network.libp2p.getMultiaddrs().map(String),
  }
}

/** A signed HEARTBEAT-shaped envelope (a cheap, valid envelope for gossip tests and benchmarks). */
async function heartbeat(thread: string, index: number, ts = Date.now()): Promise<AnyEnvelope> {
  lamport += 1
  const claim = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
  return (await signEnvelope(
    {
      v: PROTOCOL_VERSION,
      net,
      kind: 'HEARTBEAT',
      thread,
      sender: identity.did,
      lamport,
      ts,
      payload: { task: `p/task-${index % 64}`, claim, progress: index % 1000 },
      refs: [],
      policy: BUILTIN_POLICY_HASH,
      epoch: 1,
      fence: claim,
    } as never,
    identity,
  )) as AnyEnvelope
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Sends the prepared envelopes at `ratePerS` through `send`; returns `[id, sentAtMs]` pairs. */
async function paced(ratePerS: number, send: (env: AnyEnvelope) => void): Promise<Array<[string, number]>> {
  const sent: Array<[string, number]> = []
  const started = preciseNowMs()
  for (let i = 0; i < prepared.length; i += 1) {
    const wait = started + (i * 1000) / ratePerS - preciseNowMs()
    if (wait > 1) await sleep(wait)
    const env = prepared[i]!
    sent.push([env.id, preciseNowMs()])
    send(env)
  }
  return sent
}

const methods: Record<string, (params: never) => Promise<unknown> | unknown> = {
  start: (config: MeshPeerConfig) => start(config),
  info: () => info(),
  async dial(params: { multiaddr: string }) {
    await network.libp2p.dial(multiaddr(params.multiaddr), { signal: AbortSignal.timeout(10_000) })
    return true
  },
  /** Pings a peer over an existing (possibly relayed) connection; returns the round trip in ms. */
  async ping(params: { multiaddr: string }) {
    return network.libp2p.services.ping.ping(multiaddr(params.multiaddr), {
      signal: AbortSignal.timeout(10_000),
      runOnLimitedConnection: true,
    } as never)
  },
  peers() {
    return {
      connections: network.libp2p.getConnections().map((c) => ({
        peer: c.remotePeer.toString(),
        addr: c.remoteAddr.toString(),
        limited: c.limits != null,
      })),
      gossipPeers: network.pubsub.getPeers().map(String),
    }
  },
  /** Signs `count` envelopes on `threads` threads (round robin) and publishes them at once. */
  async publish(params: { count: number; threads: string[] }) {
    const ids: string[] = []
    for (let i = 0; i < params.count; i += 1) {
      const env = await heartbeat(params.threads[i % params.threads.length]!, i)
      bus.publish(env)
      ids.push(env.id)
    }
    await bus.flush()
    return ids
  },
  /** Pre-signs envelopes for `blast` (signing is not part of what the bus benchmark measures). */
  async prepare(params: { count: number; threads: string[] }) {
    prepared.length = 0
    for (let i = 0; i < params.count; i += 1)
      prepared.push(await heartbeat(params.threads[i % params.threads.length]!, i))
    return prepared.map((env) => env.id)
  },
  /** The wire bytes of the prepared envelopes (the NATS baseline carries the same bytes). */
  preparedBytes() {
    return prepared.map((env) => encodeEnvelope(env))
  },
  /** Publishes the prepared envelopes at `ratePerS`; returns `[id, publishedAtMs]` pairs. */
  async blast(params: { ratePerS: number }) {
    const sent = await paced(params.ratePerS, (env) => bus.publish(env))
    await bus.flush()
    return sent
  },
  /** Publishes an envelope whose signature does not verify (a forgery); returns its id. */
  async forge(params: { thread: string }) {
    const env = await heartbeat(params.thread, 7)
    const forged = {
      ...env,
      payload: { ...(env as Envelope<'HEARTBEAT'>).payload, progress: 999 },
    } as AnyEnvelope
    const bytes = encodeEnvelope(forged)
    await bus.publishFrame(threadTopic(params.thread, network.config.shardCount), bytes)
    return decodeEnvelope(bytes).id
  },
  /** Republishes the bytes of an envelope this peer received earlier (a replay). */
  async replay(params: { id: string; thread: string }) {
    const bytes = kept.get(params.id)
    if (!bytes) throw new Error(`no kept bytes for ${params.id}`)
    // A new frame around old bytes: a replay no gossip seen-cache can catch, so the validator must.
    await bus.publishFrame(threadTopic(params.thread, network.config.shardCount), encodeFrame([bytes], true))
    return params.id
  },
  /** Benchmark baseline: subscribes to `subject` on nats-server, validating like the bus does. */
  async natsSubscribe(params: { servers: string; subject: string; validate: boolean }) {
    const { connect } = await import('nats')
    const connection = await connect({ servers: params.servers })
    nats = connection
    connection.subscribe(params.subject, {
      callback: (error, message) => {
        if (error) return
        if (!params.validate) {
          deliveries.push([decodeEnvelope(message.data).id, preciseNowMs()])
          return
        }
        void validateFrame(
          message.data,
          { from: 'nats', topic: params.subject },
          { maxEnvelopeAgeMs: network.config.maxEnvelopeAgeMs },
        ).then((result) => {
          if (result.ok) for (const env of result.envelopes) deliveries.push([env.id, preciseNowMs()])
        })
      },
    })
    await connection.flush()
    return true
  },
  /** Benchmark baseline: publishes the prepared envelopes' bytes on nats-server at `ratePerS`. */
  async natsBlast(params: { servers: string; subject: string; ratePerS: number }) {
    const { connect } = await import('nats')
    nats ??= await connect({ servers: params.servers })
    const connection = nats
    const sent = await paced(params.ratePerS, (env) =>
      connection.publish(params.subject, encodeEnvelope(env)),
    )
    await nats.flush()
    return sent
  },
  async natsClose() {
    await nats?.close()
    nats = undefined
    return true
  },
  stats(params: { deliveries?: boolean } = {}) {
    const scores: Record<string, { gossip: number; app: number }> = {}
    const known = new Set([
      ...network.pubsub.getPeers().map(String),
      ...Object.keys(network.reputation.snapshot()),
    ])
    for (const key of known) {
      scores[key] = {
        gossip: (network.pubsub as unknown as { getScore(peer: string): number }).getScore(key),
        app: network.reputation.score(key),
      }
    }
    return {
      bus: bus.stats(),
      scores,
      reputation: network.reputation.snapshot(),
      deliveries: params.deliveries === false ? deliveries.length : deliveries,
      connectedTo: network.libp2p.getConnections().map((c) => c.remotePeer.toString()),
      errors,
    }
  },
  /** CPU time this process has used, in µs (user + system). */
  cpu() {
    const usage = process.cpuUsage()
    return usage.user + usage.system
  },
  clearDeliveries() {
    deliveries.length = 0
    return true
  },
  async post(params: { requires: string[]; input: string; budget: number; bidWindowMs?: number }) {
    if (!agent) throw new Error('this peer runs no agent')
    return agent.post({
      requires: params.requires,
      inputs: [new TextEncoder().encode(params.input)],
      budget: params.budget,
      bidWindowMs: params.bidWindowMs ?? 500,
    })
  },
  /** The encoded envelopes this peer's agent holds for `thread` (a test's courier carries them). */
  envelopes(params: { thread: string }) {
    return (
      agent
        ?.replica(params.thread)
        ?.envelopes()
        .map((env) => encodeEnvelope(env)) ?? []
    )
  },
  /** Takes in envelopes carried from elsewhere: the agent receives them and they are gossiped on. */
  async carry(params: { envelopes: Uint8Array[] }) {
    if (!agent) throw new Error('this peer runs no agent')
    for (const bytes of params.envelopes) {
      const env = decodeEnvelope(bytes)
      await agent.deliver(env)
      bus.publish(env)
    }
    return params.envelopes.length
  },
  /** Per followed thread: task states and whether the NEED is final. */
  threads() {
    if (!agent) return {}
    const result: Record<
      string,
      {
        tasks: string[]
        decided: boolean
        final: boolean
        finalAtMs: number | null
        envelopes: number
        winner: string | null
        decides: number
        reconciles: number
        stateHash: string
        decidedProposals: string[]
      }
    > = {}
    for (const thread of agent.threads()) {
      const state = agent.replica(thread)!.state
      const tasks = [...state.tasks.values()].filter((task) => task.proposal === state.winner?.proposal)
      const final = isFinal(thread)
      // Final and its time come from one reading: a thread final without a time gets it now.
      if (final && !finalAt.has(thread)) finalAt.set(thread, preciseNowMs())
      result[thread] = {
        tasks: tasks.map((task) => task.state),
        decided: state.winner !== undefined,
        final,
        finalAtMs: finalAt.get(thread) ?? null,
        envelopes: agent.replica(thread)!.size,
        winner: state.winner?.proposal ?? null,
        decides: state.decides.size,
        reconciles: state.reconciles.length,
        stateHash: agent.replica(thread)!.stateHash(),
        decidedProposals: [...new Set([...state.decides.values()].map((decide) => decide.proposal))].sort(),
      }
    }
    return result
  },
  async stop() {
    await nats?.close().catch(() => {})
    if (peer) await peer.stop()
    else {
      bus?.close()
      await network?.stop()
    }
    return true
  },
}

process.on('message', (request: Request) => {
  const method = methods[request.method]
  if (!method) {
    process.send?.({ id: request.id, error: `unknown method ${request.method}` })
    return
  }
  Promise.resolve()
    .then(() => method(request.params as never))
    .then(
      (result) => process.send?.({ id: request.id, result }),
      (error: unknown) =>
        process.send?.({ id: request.id, error: error instanceof Error ? error.message : String(error) }),
    )
})
process.on('disconnect', () => {
  const stopping = network ? network.stop() : Promise.resolve()
  stopping.finally(() => process.exit(0))
  setTimeout(() => process.exit(0), 3000).unref()
})
