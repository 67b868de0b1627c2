/**
 * The deterministic simulator: many agents in one process, virtual time, and a network that
 * loses, duplicates, reorders and delays messages, splits and heals, crashes and restarts peers,
 * skews clocks, and carries a minority of Byzantine senders — all drawn from one seed.
 *
 * Each delivered envelope is decoded from its wire bytes, checked (id and Ed25519 signature) and
 * handed to the receiving agent; after every delivery the receiving replica is checked against
 * P1, P4, P5 and P6, and at the end every replica is re-folded from a shuffled log (P2).
 * A failing seed replays exactly: `npm run sim -- --seed N`.
 */
import { Agent, type AgentOptions, type FundingCheck } from '../agent/agent.ts'
import { builtinCapabilities } from '../agent/capabilities.ts'
import type { SeededRandom } from '../agent/ports.ts'
import { MemoryArtifactStore } from '../core/artifacts.ts'
import { decodeEnvelope, encodeEnvelope } from '../core/codec.ts'
import { type ConsensusStore, type DecideRecord, MemoryConsensusStore } from '../core/consensus.ts'
import { deriveLedger } from '../core/economy/derive.ts'
import { CanSwarmError, InvalidArgumentError } from '../core/errors.ts'
import { type Genesis, genesisBody, paramsFromGenesis } from '../core/genesis.ts'
import type { NetworkParams } from '../core/thread/params.ts'
import { ThreadReplica } from '../core/thread/replica.ts'
import type { AnyEnvelope, Cid } from '../core/types.ts'
import { createIdentity, type Identity } from '../crypto/ed25519.ts'
import { signEnvelope, verifyEnvelope } from '../crypto/envelopes.ts'
import { signGenesis } from '../crypto/genesis.ts'
import { type Divergence, DivergenceDetector } from '../policy/divergence.ts'
import type { PolicyGates, PolicyStats } from '../policy/gates.ts'
import { Attacker, type AttackReport } from './attacker.ts'
import { type Adversary, ByzantineAgent } from './byzantine.ts'
import {
  CHECKED_PROPERTIES,
  checkDelivery,
  checkLiveness,
  checkReplica,
  checkStoreHistory,
  ECONOMY_PROPERTIES,
  type Property,
  type Violation,
} from './checkers.ts'
import { type EconomyReport, settleEconomy } from './economy.ts'
import { EventQueue, type Timed } from './queue.ts'
import { drawIntensity, type FaultIntensity, streamOf } from './streams.ts'

/** Fault classes; `combined` turns every fault on at once. */
export const FAULT_CLASSES = [
  'loss',
  'duplicate',
  'reorder',
  'delay',
  'partition',
  'crash',
  'skew',
  'byzantine',
  'attacker',
  'combined',
] as const
export type FaultClass = (typeof FAULT_CLASSES)[number] | 'none'

interface FaultPlan {
  lossP: number
  duplicateP: number
  jitterMs: number
  extraDelayP: number
  extraDelayMs: number
  partition: boolean
  crash: boolean
  skew: boolean
  byzantine: boolean
  attacker: boolean
}

/** What the run's fault classes turn on, at the intensities drawn from its seed. */
function faultPlan(faults: FaultClass, intensity: FaultIntensity): FaultPlan {
  const all = faults === 'combined'
  return {
    lossP: all || faults === 'loss' ? intensity.lossP : 0,
    duplicateP: all || faults === 'duplicate' ? intensity.duplicateP : 0,
    jitterMs: all || faults === 'reorder' ? intensity.jitterMs : 0,
    extraDelayP: all || faults === 'delay' ? intensity.extraDelayP : 0,
    extraDelayMs: all || faults === 'delay' ? intensity.extraDelayMs : 0,
    partition: all || faults === 'partition',
    crash: all || faults === 'crash',
    skew: all || faults === 'skew',
    byzantine: all || faults === 'byzantine',
    attacker: all || faults === 'attacker',
  }
}

export interface SimOptions {
  seed: number
  /** @default 'none' */
  faults?: FaultClass
  /** Peers, two of them anchors. @default 7 in bootstrap mode, 12 otherwise */
  peers?: number
  /**
   * Bootstrap-mode network (at most 4 verifiers, K = 1) or a full one (every non-anchor peer a
   * verifier, K = 3; needs ≥ 12 peers). @default by seed parity when there are enough peers
   */
  bootstrap?: boolean
  /** NEEDs the requester posts. @default 2 */
  needs?: number
  /** Virtual time during which faults are injected and NEEDs posted. @default 12 000 */
  workloadMs?: number
  /** Virtual time allowed after the faults stop for the swarm to converge. @default 30 000 */
  settleMs?: number
  /**
   * Settle the converged logs through the credit ledger and check P3 and conservation
   * (see economy.ts). @default false
   */
  economy?: boolean
  /** Receives each peer's thread logs at the end (for signed traces). @default none */
  onTrace?: (trace: PeerThreadLog) => void | Promise<void>
  /**
   * Policy gates for each peer (docs/PROTOCOL.md §10), created once per peer and kept across restarts;
   * a peer given none runs the built-in rules. With gates, the result reports `policy`. @default none
   */
  policy?: (peer: number, identity: Identity) => Promise<PolicyGates | undefined>
}

/** The scheduled faults of one run, as drawn from its `faults` stream. */
export interface FaultSchedule {
  /** Byzantine peers, by index. */
  byzantine: number[]
  /** Skewed clocks: offset (ms) and rate of each skewed peer. */
  skew: { peer: number; offsetMs: number; rate: number }[]
  /** The partition, if any (virtual ms). */
  partition?: { splitAtMs: number; healAtMs: number }
  /** Crashes (virtual ms). */
  crashes: { peer: number; downAtMs: number; upAtMs: number }[]
}

/** One peer's log of one thread, in arrival order, with local receipt times. */
export interface PeerThreadLog {
  peer: number
  identity: Identity
  params: NetworkParams
  thread: string
  entries: { atMs: number; env: AnyEnvelope }[]
  stateHash: string
}

export interface SimResult {
  seed: number
  faults: FaultClass
  /**
   * The fault intensities drawn from the seed (every field, whichever classes were on: only those
   * of `faults` took effect). Printed with a failing seed, so its scenario can be read and replayed.
   */
  intensity: FaultIntensity
  /** When and where the scheduled faults struck (what a failing seed's report names). */
  schedule: FaultSchedule
  bootstrap: boolean
  peers: number
  needs: number
  finalizedNeeds: number
  finalizedTasks: number
  envelopes: number
  deliveries: number
  droppedForged: number
  droppedLost: number
  converged: boolean
  virtualMs: number
  /** With the `attacker` fault: per catalogue entry, how often it was tried and refused. */
  attacks?: AttackReport
  /** Envelopes the honest peers refused, by reason code, all peers together. */
  refusals: Record<string, number>
  /** What the faults caused, counted on the requester's replicas at the end. */
  observed: {
    conflictingDecides: number
    reconciles: number
    orphanedTasks: number
    releasedLeases: number
    rejectedCommits: number
    invalidatedCommits: number
    equivocations: number
    restarts: number
  }
  /** With {@link SimOptions.economy}: what settlement did. */
  economy?: EconomyReport
  violations: Violation[]
  properties: readonly Property[]
  /** With {@link SimOptions.policy}: ATTEST digest divergences seen on the network, and each peer's gate counters. */
  policy?: { divergences: Divergence[]; stats: (PolicyStats | undefined)[] }
}

type SimEventBody =
  | { type: 'deliver'; to: number; bytes: Uint8Array; instance?: number }
  | { type: 'timer'; peer: number; incarnation: number; callback: () => Promise<void> | void }
  | { type: 'action'; run: () => Promise<void> | void }
type SimEvent = Timed & SimEventBody

interface SimPeer {
  index: number
  identity: Identity
  agent: Agent | undefined
  incarnation: number
  up: boolean
  anchor: boolean
  adversary: Adversary | undefined
  policy?: PolicyGates | undefined
  known: Set<Cid>
  /** Durable log: every envelope this peer accepted or published, in arrival order. */
  durable: { env: AnyEnvelope; bytes: Uint8Array; atMs: number }[]
  /** Anti-entropy cursors into other peers' durable logs (volatile: reset on restart). */
  cursors: Map<number, number>
  offsetMs: number
  rate: number
  side: 0 | 1
}

const TEMPLATES: string[][] = [
  ['word-frequency'],
  ['sha256'],
  ['sort-dedupe'],
  ['word-frequency', 'sort-dedupe'],
  ['sort-dedupe', 'sha256'],
  ['word-frequency', 'sort-dedupe', 'sha256'],
]
const WORDS = [
  'swarm',
  'mind',
  'need',
  'plan',
  'lease',
  'quorum',
  'verify',
  'epoch',
  'merge',
  'credit',
  'stake',
]

class SimConsensus implements ConsensusStore {
  #world: World
  #peer: number
  constructor(world: World, peer: number) {
    this.#world = world
    this.#peer = peer
  }
  async tryDecide(request: Parameters<ConsensusStore['tryDecide']>[0]) {
    return this.#world.tryDecide(this.#peer, request)
  }
  async getDecide(need: string) {
    return this.#world.storeFor(this.#peer).getDecideSync(need)
  }
  async currentEpoch() {
    this.#world.assertReachable(this.#peer)
    return this.#world.storeFor(this.#peer).epoch
  }
}

/** One in this many ordinary deliveries has P9's "a refusal changed nothing" checked (attacker ones all). */
const P9_SAMPLE = 16

class World {
  readonly seed: number
  readonly faults: FaultClass
  readonly plan: FaultPlan
  readonly intensity: FaultIntensity
  /** Per-message loss, duplication and delay. */
  readonly network: SeededRandom
  /** The anti-entropy schedule and partners. */
  readonly sync: SeededRandom
  /** When NEEDs go out and what they hold. */
  readonly workload: SeededRandom
  /** Scheduled faults: partitions, crashes, skew, Byzantine peers. */
  readonly faultStream: SeededRandom
  /** What Byzantine peers do. */
  readonly adversary: SeededRandom
  readonly queue = new EventQueue<SimEvent>()
  readonly artifacts = new MemoryArtifactStore()
  readonly peers: SimPeer[] = []
  readonly violations: Violation[] = []
  readonly verified = new Map<Cid, boolean>()
  readonly decoded = new WeakMap<Uint8Array, AnyEnvelope | CanSwarmError>()
  readonly history: { record: DecideRecord; storeEpoch: number }[] = []
  readonly divergence = new DivergenceDetector()
  params!: NetworkParams
  genesis!: Genesis
  attacker: Attacker | undefined
  /** Every envelope peers published, in order (what the attacker sees). */
  readonly published: AnyEnvelope[] = []
  main = new MemoryConsensusStore({ epoch: 1 })
  fork: MemoryConsensusStore | undefined
  nowMs = 0
  deliveries = 0
  droppedForged = 0
  droppedLost = 0
  faultsActive = true
  needs: string[] = []
  restarts = 0

  constructor(seed: number, faults: FaultClass) {
    this.seed = seed
    this.faults = faults
    this.intensity = drawIntensity(seed)
    this.plan = faultPlan(faults, this.intensity)
    this.network = streamOf(seed, 'network')
    this.sync = streamOf(seed, 'sync')
    this.workload = streamOf(seed, 'workload')
    this.faultStream = streamOf(seed, 'faults')
    this.adversary = streamOf(seed, 'adversary')
  }

  // -------------------------------------------------------------- scheduling

  at(atMs: number, event: SimEventBody): void {
    this.queue.push({ ...event, atMs: Math.max(atMs, this.nowMs), seq: this.queue.nextSeq() })
  }

  localNow(peer: SimPeer): number {
    return this.nowMs * peer.rate + peer.offsetMs
  }

  // -------------------------------------------------------------- consensus

  storeFor(peer: number): MemoryConsensusStore {
    return this.fork && this.peers[peer]!.side === 1 ? this.fork : this.main
  }

  assertReachable(peer: number): void {
    if (!this.peers[peer]!.up) throw new Error('consensus unreachable: peer is down')
  }

  tryDecide(peer: number, request: Parameters<ConsensusStore['tryDecide']>[0]) {
    this.assertReachable(peer)
    const store = this.storeFor(peer)
    const storeEpoch = store.epoch
    const result = store.tryDecideSync(request)
    if (result.outcome === 'decided') this.history.push({ record: result.record, storeEpoch })
    return result
  }

  // -------------------------------------------------------------- network

  reachable(from: SimPeer, to: SimPeer): boolean {
    return this.fork === undefined || from.side === to.side
  }

  broadcast(from: SimPeer | undefined, bytes: Uint8Array, instance?: number): void {
    for (const to of this.peers) {
      if (to === from) continue
      if (from && !this.reachable(from, to)) continue
      if (this.faultsActive && this.network.chance(this.plan.lossP)) {
        this.droppedLost += 1
        continue
      }
      this.send(to.index, bytes, instance)
      if (this.faultsActive && this.network.chance(this.plan.duplicateP)) this.send(to.index, bytes, instance)
    }
  }

  send(to: number, bytes: Uint8Array, instance?: number): void {
    let delay = 1 + this.network.int(0, 15)
    if (this.faultsActive) {
      delay += this.network.next() * this.plan.jitterMs
      if (this.network.chance(this.plan.extraDelayP)) delay += this.network.next() * this.plan.extraDelayMs
    }
    this.at(this.nowMs + delay, {
      type: 'deliver',
      to,
      bytes,
      ...(instance === undefined ? {} : { instance }),
    })
  }

  decode(bytes: Uint8Array): AnyEnvelope | CanSwarmError {
    let result = this.decoded.get(bytes)
    if (result === undefined) {
      try {
        result = decodeEnvelope(bytes)
      } catch (error) {
        result =
          error instanceof CanSwarmError ? error : new CanSwarmError('MALFORMED_ENVELOPE', String(error))
      }
      this.decoded.set(bytes, result)
    }
    return result
  }

  async verify(env: AnyEnvelope): Promise<boolean> {
    let ok = this.verified.get(env.id)
    if (ok === undefined) {
      try {
        await verifyEnvelope(env)
        ok = true
      } catch {
        ok = false
      }
      this.verified.set(env.id, ok)
    }
    return ok
  }

  async receive(peer: SimPeer, bytes: Uint8Array, instance?: number): Promise<void> {
    if (!peer.up || !peer.agent) return
    const env = this.decode(bytes)
    if (env instanceof CanSwarmError) {
      this.droppedForged += 1
      return
    }
    // Replays from the attacker go past the network's de-duplication, to test the agent's own.
    const replay = instance !== undefined && this.attacker?.isReplay(instance) === true
    if (peer.known.has(env.id) && !replay) return
    if (!(await this.verify(env))) {
      this.droppedForged += 1
      return
    }
    this.deliveries += 1
    this.divergence.observe(env)
    const agent = peer.agent
    const wasHeld = agent.holds(env)
    const fresh = !peer.known.has(env.id)
    if (fresh) peer.known.add(env.id)
    // P9's first half costs a state hash per delivery: it is checked on every attacker delivery and on
    // one in P9_SAMPLE of the others (its second half, authority, on every delivery).
    const before = agent.replica(env.thread)
    const hashBefore =
      instance !== undefined || this.deliveries % P9_SAMPLE === 0 ? before?.stateHash() : undefined
    const outcome = await agent.deliver(env)
    if (outcome === 'stopped') {
      // The peer crashed while this delivery was under way: it took nothing in.
      if (fresh) peer.known.delete(env.id)
      return
    }
    // The durable log keeps what passed the edge (a policy-denied envelope is not stored: A8).
    if (fresh && !outcome?.startsWith('policy')) peer.durable.push({ env, bytes, atMs: this.localNow(peer) })
    const replica = agent.replica(env.thread)
    if (!replica) return
    const refused =
      outcome !== undefined &&
      outcome !== 'duplicate' &&
      !outcome.startsWith('pending') &&
      !outcome.startsWith('policy')
        ? outcome
        : undefined
    // P9: a refused envelope left the state as it was; an accepted one had authority.
    checkDelivery(
      peer.index,
      env,
      replica,
      this.params,
      {
        ...(refused === undefined ? {} : { refused }),
        ...(before === replica && hashBefore !== undefined ? { hashBefore } : {}),
      },
      this.violations,
    )
    if (outcome === undefined && instance !== undefined)
      this.attacker?.observeAccepted(instance, env.id, wasHeld)
    checkReplica(peer.index, replica, this.params, (e) => this.verified.get(e.id) === true, this.violations)
  }

  // -------------------------------------------------------------- peers

  /** The anchor's funding check (A7): the requester's balance in the ledger its threads derive. */
  fundingOf(peer: SimPeer): FundingCheck {
    return (need, _thread, reserved) => {
      const agent = peer.agent
      if (!agent) return 'the anchor is down'
      const derived = deriveLedger({
        replicas: agent.threads().map((thread) => agent.replica(thread)!),
        params: this.params,
        nowMs: this.localNow(peer),
        genesis: this.genesis.body.economy,
        genesisVerifiers: this.genesis.body.pool.verifiers,
      })
      const balance = derived.ledger.account(need.requester).balance - reserved
      return balance >= need.budget
        ? undefined
        : `the requester holds ${balance} credits, the budget is ${need.budget}`
    }
  }

  startAgent(peer: SimPeer): Agent {
    peer.incarnation += 1
    const incarnation = peer.incarnation
    const world = this
    // Each agent's choices come from its own stream (per incarnation: a restart is a new process).
    const own = streamOf(this.seed, `agent:${peer.index}:${incarnation}`)
    const workMs = 40 + own.int(0, 120)
    const options: AgentOptions = {
      identity: peer.identity,
      params: this.params,
      artifacts: this.artifacts,
      random: own,
      roles: peer.anchor ? { decider: true } : { planner: true, worker: true, verifier: true },
      ...(peer.anchor
        ? { consensus: new SimConsensus(this, peer.index), funding: this.fundingOf(peer) }
        : {}),
      ...(peer.policy ? { policy: peer.policy } : {}),
      tuning: {
        leaseTtlMs: 1500,
        workMs,
        maxGrantTtlMs: 3_000,
        maxLeaseHoldMs: 8_000,
        anchorBackupMs: 600,
      },
      clock: {
        now: () => world.localNow(peer),
        setTimer(atMs, callback) {
          const virtual = (atMs - peer.offsetMs) / peer.rate
          let cancelled = false
          world.at(virtual, {
            type: 'timer',
            peer: peer.index,
            incarnation,
            callback: () => (cancelled ? undefined : callback()),
          })
          return () => {
            cancelled = true
          }
        },
      },
      bus: {
        publish(env) {
          const bytes = encodeEnvelope(env)
          world.verified.set(env.id, true)
          world.published.push(env)
          world.divergence.observe(env)
          peer.known.add(env.id)
          peer.durable.push({ env, bytes, atMs: world.localNow(peer) })
          world.broadcast(peer, bytes)
        },
      },
      onError: (error) => {
        if (!(error instanceof CanSwarmError) || error.code === 'INVARIANT_BROKEN') {
          world.violations.push({
            property: 'P2',
            peer: peer.index,
            message: `agent error: ${String(error)}`,
          })
        }
      },
    }
    // A Byzantine peer runs the honest agent with decorators on what it says (sim/byzantine.ts).
    const agent = peer.adversary ? new ByzantineAgent(options, peer.adversary) : new Agent(options)
    // An envelope a bounded pool dropped can come again (anti-entropy sends what a peer lacks).
    agent.onEvict((env) => peer.known.delete(env.id))
    peer.agent = agent
    return agent
  }

  crash(peer: SimPeer): void {
    peer.up = false
    peer.agent?.stop()
    peer.agent = undefined
    peer.cursors.clear()
  }

  async restart(peer: SimPeer): Promise<void> {
    this.restarts += 1
    peer.up = true
    const agent = this.startAgent(peer)
    await agent.restore(peer.durable.map((entry) => entry.env))
  }

  // -------------------------------------------------------------- anti-entropy

  pull(peer: SimPeer): void {
    if (!peer.up) return
    const candidates = this.peers.filter((other) => other !== peer && other.up && this.reachable(peer, other))
    if (candidates.length === 0) return
    const from = candidates[this.sync.int(0, candidates.length)]!
    if (this.faultsActive && this.sync.chance(this.plan.lossP)) return
    const cursor = peer.cursors.get(from.index) ?? 0
    for (const entry of from.durable.slice(cursor)) {
      if (!peer.known.has(entry.env.id)) this.send(peer.index, entry.bytes)
    }
    peer.cursors.set(from.index, from.durable.length)
  }

  // -------------------------------------------------------------- adversaries

  /** A Byzantine peer abuses what it has itself received: it knows no more than its own log. */
  async misbehave(peer: SimPeer): Promise<void> {
    if (!peer.up) return
    const seen = peer.durable.filter((entry) => entry.env.sender !== peer.identity.did)
    if (seen.length === 0) return
    const entry = seen[this.adversary.int(0, seen.length)]!
    const roll = this.adversary.int(0, 3)
    if (roll === 0) {
      // Tamper: same signature, altered content.
      const forged = { ...entry.env, lamport: entry.env.lamport + 1 }
      this.broadcast(peer, encodeEnvelope(forged as AnyEnvelope))
    } else if (roll === 1) {
      // Impersonate: claim another sender, sign with our own key.
      const { id: _id, sig: _sig, ...unsigned } = entry.env
      const mine = await signEnvelope({ ...unsigned, sender: peer.identity.did }, peer.identity)
      const bytes = encodeEnvelope({ ...mine, sender: entry.env.sender } as AnyEnvelope)
      this.broadcast(peer, bytes)
    } else {
      // Replay an old envelope.
      this.broadcast(peer, entry.bytes)
    }
  }

  // -------------------------------------------------------------- workload

  async postNeed(index: number): Promise<void> {
    const requester = this.peers[2]!
    if (!requester.up || !requester.agent) return
    const requires = TEMPLATES[this.workload.int(0, TEMPLATES.length)]!
    const lines: string[] = []
    const count = this.workload.int(3, 8)
    for (let line = 0; line < count; line += 1) {
      const words: string[] = []
      for (let w = this.workload.int(2, 7); w > 0; w -= 1)
        words.push(WORDS[this.workload.int(0, WORDS.length)]!)
      lines.push(words.join(' '))
    }
    const input = new TextEncoder().encode(`${lines.join('\n')}\n# need ${index} seed ${this.seed}\n`)
    const need = await requester.agent.post({ requires, inputs: [input], budget: 50, bidWindowMs: 400 })
    this.needs.push(need)
  }
}

/** Runs one seed; never throws for protocol failures (they are returned as violations). */
export async function runSimulation(options: SimOptions): Promise<SimResult> {
  const faults = options.faults ?? 'none'
  const world = new World(options.seed, faults)
  const { faultStream, workload, sync, adversary: misbehaviour } = world
  if (options.peers !== undefined && (!Number.isSafeInteger(options.peers) || options.peers < 5)) {
    throw new InvalidArgumentError('a simulation needs at least 5 peers (2 anchors, 3 agents)', 'peers')
  }
  const canLeaveBootstrap = options.peers === undefined || options.peers >= 12
  const bootstrap = options.bootstrap ?? (!canLeaveBootstrap || options.seed % 2 === 0)
  if (!bootstrap && !canLeaveBootstrap) {
    throw new InvalidArgumentError(
      'leaving bootstrap mode needs ≥ 10 verifiers: use at least 12 peers',
      'peers',
    )
  }
  const peerCount = options.peers ?? (bootstrap ? 7 : 12)
  const workloadMs = options.workloadMs ?? 12_000
  const settleMs = options.settleMs ?? 30_000
  const needCount = options.needs ?? 2

  const identities: Identity[] = []
  for (let index = 0; index < peerCount; index += 1) {
    const seedBytes = new Uint8Array(32)
    const view = new DataView(seedBytes.buffer)
    view.setUint32(0, options.seed >>> 0)
    view.setUint32(4, index)
    view.setUint32(8, 0x5157_4152)
    identities.push(await createIdentity({ seed: seedBytes }))
  }
  const rolePeers = identities.slice(2)
  // A full network draws committees by stake, reputation and diversity: seven orgs, five ASNs and
  // four regions among its verifiers, so the caps bite (org mates of a worker never judge it).
  const entries = bootstrap
    ? []
    : rolePeers.map((identity, i) => ({
        did: identity.did,
        stake: 100 + 40 * i,
        reputationPerMille: 500 + 20 * i,
        lastActiveMs: 0,
        entity: `entity-${i}`,
        org: `org-${i % 7}`,
        asn: `asn-${i % 5}`,
        region: `region-${i % 4}`,
      }))
  // The attacker's keys: six Sybils that hold nothing, three keys funded with 100 credits each at
  // genesis (one double spend each).
  const sybils: Identity[] = []
  for (let index = 0; index < 9; index += 1) {
    const seedBytes = new Uint8Array(32)
    const view = new DataView(seedBytes.buffer)
    view.setUint32(0, options.seed >>> 0)
    view.setUint32(4, index)
    view.setUint32(8, 0x5359_4249)
    sybils.push(await createIdentity({ seed: seedBytes }))
  }
  const funded = sybils.splice(6, 3)
  const verifiers = (bootstrap ? rolePeers.slice(0, 4) : rolePeers).map((identity) => identity.did)
  world.genesis = await signGenesis(
    genesisBody({
      name: `sim-${options.seed}`,
      createdMs: 0,
      anchors: [identities[0]!.did, identities[1]!.did],
      params: { tChallengeMs: 800 },
      pool: { bootstrap, verifiers, entries },
      economy: {
        allocations: [
          ...identities.map((identity) => ({ did: identity.did, amount: 1_000 })),
          ...funded.map((identity) => ({ did: identity.did, amount: 100 })),
        ],
        verifierStake: 300,
      },
    }),
    [identities[0]!, identities[1]!],
  )
  world.params = paramsFromGenesis(world.genesis)

  const schedule: FaultSchedule = { byzantine: [], skew: [], crashes: [] }
  const byzantine = new Set<number>()
  if (world.plan.byzantine) {
    const count = bootstrap ? 1 : 2
    while (byzantine.size < count) byzantine.add(faultStream.int(3, peerCount))
    schedule.byzantine = [...byzantine].sort((a, b) => a - b)
  }
  for (let index = 0; index < peerCount; index += 1) {
    const adversary = byzantine.has(index)
      ? {
          corruptOutputs: misbehaviour.chance(0.7),
          equivocate: misbehaviour.chance(0.7),
          rubberStamp: misbehaviour.chance(0.7),
          frivolousChallenges: misbehaviour.chance(0.5),
        }
      : undefined
    const skewed = world.plan.skew && index !== 0
    const offsetMs = skewed ? faultStream.int(-world.intensity.skewMs, world.intensity.skewMs + 1) : 0
    const rate = skewed ? 1 + (faultStream.next() * 2 - 1) * world.intensity.driftRate : 1
    if (skewed) schedule.skew.push({ peer: index, offsetMs, rate })
    world.peers.push({
      index,
      identity: identities[index]!,
      agent: undefined,
      incarnation: 0,
      up: true,
      anchor: index < 2,
      adversary,
      known: new Set(),
      durable: [],
      cursors: new Map(),
      offsetMs,
      rate,
      side: 0,
    })
  }
  if (options.policy) {
    for (const peer of world.peers) peer.policy = await options.policy(peer.index, peer.identity)
  }
  for (const peer of world.peers) world.startAgent(peer)

  // Workload and faults.
  const needTimes: number[] = []
  for (let index = 0; index < needCount; index += 1) {
    const atMs = 100 + index * 1500 + workload.int(0, 300)
    needTimes.push(atMs)
    world.at(atMs, { type: 'action', run: () => world.postNeed(index) })
  }
  for (const peer of world.peers) {
    for (let t = sync.int(100, 400); t < workloadMs + settleMs; t += 300 + sync.int(0, 200)) {
      world.at(t, { type: 'action', run: () => world.pull(peer) })
    }
    if (peer.adversary) {
      for (let t = misbehaviour.int(200, 700); t < workloadMs; t += 500 + misbehaviour.int(0, 400)) {
        world.at(t, { type: 'action', run: () => world.misbehave(peer) })
      }
    }
  }
  if (world.plan.attacker) {
    const other = await signGenesis(
      genesisBody({ name: 'elsewhere', createdMs: 0, anchors: [sybils[0]!.did] }),
      [sybils[0]!],
    )
    const attacker = new Attacker({
      world: {
        params: world.params,
        seen: () => world.published,
        broadcast: (bytes, instance) => world.broadcast(undefined, bytes, instance),
        nowMs: () => world.nowMs,
        honestReplicas: (thread) =>
          world.peers
            .filter((peer) => peer.up && peer.agent && !peer.adversary)
            .map((peer) => peer.agent!.replica(thread))
            .filter((replica): replica is ThreadReplica => replica !== undefined),
        anchorsHolding: (thread, id) =>
          world.peers
            .filter((peer) => peer.up && peer.agent && peer.anchor && peer.agent.replica(thread)?.has(id))
            .map((peer) => peer.identity.did),
        unfundedThreads: () => {
          // Every thread any honest peer holds, each from the replica that holds the most of it.
          const fullest = new Map<string, ThreadReplica>()
          for (const peer of world.peers) {
            if (peer.adversary || !peer.agent) continue
            for (const thread of peer.agent.threads()) {
              const replica = peer.agent.replica(thread)!
              if ((fullest.get(thread)?.size ?? -1) < replica.size) fullest.set(thread, replica)
            }
          }
          return new Set(
            deriveLedger({
              replicas: [...fullest.values()],
              params: world.params,
              nowMs: world.nowMs,
              genesis: world.genesis.body.economy,
              genesisVerifiers: world.genesis.body.pool.verifiers,
            }).unfunded,
          )
        },
      },
      // Its own stream: the workload and the network faults draw from theirs.
      random: streamOf(options.seed, 'attacker'),
      sybils,
      funded,
      ...(bootstrap ? {} : { verifier: rolePeers[rolePeers.length - 1]! }),
      otherNetwork: other.id,
    })
    world.attacker = attacker
    const schedule = streamOf(options.seed, 'attacker-schedule')
    for (let t = 300 + schedule.int(0, 200); t < workloadMs; t += 120 + schedule.int(0, 240)) {
      world.at(t, { type: 'action', run: () => attacker.act() })
    }
  }
  if (world.plan.partition) {
    // Split just after a NEED went out, before it is decided, so that both sides may decide it.
    const splitAt = needTimes[faultStream.int(0, needTimes.length)]! + faultStream.int(20, 250)
    const healAt = splitAt + world.intensity.partitionMs
    schedule.partition = { splitAtMs: splitAt, healAtMs: Math.min(healAt, workloadMs) }
    world.at(splitAt, {
      type: 'action',
      run: () => {
        for (const peer of world.peers)
          peer.side = peer.index === 0 ? 0 : peer.index === 1 ? 1 : faultStream.chance(0.5) ? 1 : 0
        world.fork = world.main.fork(world.main.epoch + 1)
      },
    })
    world.at(Math.min(healAt, workloadMs), { type: 'action', run: () => heal(world) })
  }
  if (world.plan.crash) {
    for (let c = 0; c < world.intensity.crashes; c += 1) {
      const victim =
        world.peers[faultStream.chance(0.2) ? faultStream.int(0, 2) : faultStream.int(3, peerCount)]!
      const downAt = faultStream.int(300, workloadMs - 3000)
      const upAt = downAt + faultStream.int(200, 4000)
      schedule.crashes.push({ peer: victim.index, downAtMs: downAt, upAtMs: upAt })
      world.at(downAt, { type: 'action', run: () => (victim.up ? world.crash(victim) : undefined) })
      world.at(upAt, { type: 'action', run: () => (victim.up ? undefined : world.restart(victim)) })
    }
  }
  world.at(workloadMs, {
    type: 'action',
    run: async () => {
      world.faultsActive = false
      heal(world)
      for (const peer of world.peers) if (!peer.up) await world.restart(peer)
    },
  })

  // Run.
  const endMs = workloadMs + settleMs
  let converged = false
  let nextConvergenceCheck = workloadMs + 500
  for (;;) {
    const event = world.queue.pop()
    if (!event || event.atMs > endMs) break
    world.nowMs = event.atMs
    if (event.type === 'deliver') {
      await world.receive(world.peers[event.to]!, event.bytes, event.instance)
    } else if (event.type === 'timer') {
      const peer = world.peers[event.peer]!
      if (peer.up && peer.incarnation === event.incarnation) await event.callback()
    } else {
      await event.run()
    }
    if (world.nowMs >= nextConvergenceCheck) {
      nextConvergenceCheck = world.nowMs + 500
      if (isSettled(world)) {
        converged = true
        break
      }
    }
  }

  checkStoreHistory(world.history, world.violations)
  const finalized = finalCheck(world, converged)
  // P10: after the faults stopped, within the quiet period, every funded NEED of the honest
  // requester reached FINAL and the honest replicas converged.
  const requesterAgent = world.peers[2]!.agent
  checkLiveness(
    {
      converged,
      quietMs: settleMs,
      needs: world.needs.map((need) => ({ need, final: isFinal(requesterAgent?.replica(need)) })),
    },
    world.violations,
  )
  const attacks = world.attacker?.report()
  for (const name of world.attacker?.failures() ?? []) {
    world.violations.push({ property: 'P9', message: `attack ${name} was neither refused nor contained` })
  }
  let economy: EconomyReport | undefined
  if (options.economy) {
    const { ledger: _ledger, ...report } = await settleEconomy({
      params: world.params,
      genesis: world.genesis.body.economy,
      genesisVerifiers: world.genesis.body.pool.verifiers,
      replicas: (requesterAgent?.threads() ?? []).map((thread) => requesterAgent!.replica(thread)!),
      artifacts: world.artifacts,
      capabilities: builtinCapabilities(),
      converged,
      violations: world.violations,
    })
    economy = report
  }
  const refusals: Record<string, number> = {}
  for (const peer of world.peers) {
    if (peer.adversary || !peer.agent) continue
    for (const [code, count] of Object.entries(peer.agent.refusals()))
      refusals[code] = (refusals[code] ?? 0) + count
  }
  if (options.onTrace) {
    for (const peer of world.peers) {
      for (const thread of peer.agent?.threads() ?? []) {
        const replica = peer.agent!.replica(thread)!
        await options.onTrace({
          peer: peer.index,
          identity: peer.identity,
          params: world.params,
          thread,
          entries: peer.durable
            .filter((entry) => entry.env.thread === thread)
            .map((entry) => ({ atMs: Math.floor(entry.atMs), env: entry.env })),
          stateHash: replica.stateHash(),
        })
      }
    }
  }
  for (const peer of world.peers) peer.agent?.stop()
  return {
    seed: options.seed,
    faults,
    intensity: world.intensity,
    schedule,
    bootstrap,
    peers: peerCount,
    needs: world.needs.length,
    finalizedNeeds: finalized.needs,
    finalizedTasks: finalized.tasks,
    envelopes: world.verified.size,
    deliveries: world.deliveries,
    droppedForged: world.droppedForged,
    droppedLost: world.droppedLost,
    converged,
    virtualMs: Math.round(world.nowMs),
    ...(attacks === undefined ? {} : { attacks }),
    refusals,
    observed: observe(world),
    violations: world.violations,
    ...(economy === undefined ? {} : { economy }),
    properties: options.economy ? [...CHECKED_PROPERTIES, ...ECONOMY_PROPERTIES] : CHECKED_PROPERTIES,
    ...(options.policy
      ? {
          policy: {
            divergences: world.divergence.divergences(),
            stats: world.peers.map((peer) => peer.policy?.stats()),
          },
        }
      : {}),
  }
}

function observe(world: World): SimResult['observed'] {
  const observed = {
    conflictingDecides: 0,
    reconciles: 0,
    orphanedTasks: 0,
    releasedLeases: 0,
    rejectedCommits: 0,
    invalidatedCommits: 0,
    equivocations: 0,
    restarts: world.restarts,
  }
  const agent = world.peers[2]!.agent
  for (const thread of agent?.threads() ?? []) {
    const replica = agent!.replica(thread)!
    const state = replica.state
    if (new Set([...state.decides.values()].map((decide) => decide.proposal)).size > 1)
      observed.conflictingDecides += 1
    observed.reconciles += state.reconciles.length
    observed.equivocations += state.equivocations.length
    for (const task of state.tasks.values()) {
      if (state.winner && task.proposal !== state.winner.proposal) observed.orphanedTasks += 1
      for (const commit of task.pastCommits) {
        if (commit.outcome === 'rejected') observed.rejectedCommits += 1
        else if (commit.outcome === 'invalidated') observed.invalidatedCommits += 1
      }
    }
    for (const env of replica.envelopes()) {
      if (env.kind === 'RELEASE' && !state.rejected.has(env.id)) observed.releasedLeases += 1
    }
  }
  return observed
}

function heal(world: World): void {
  if (world.fork) {
    const fork = world.fork
    world.fork = undefined
    world.main.mergeFrom(fork, Math.max(world.main.epoch, fork.epoch) + 1)
  }
  for (const peer of world.peers) peer.side = 0
}

/** Whether every task of a thread's winning plan is FINAL. */
function isFinal(replica: ThreadReplica | undefined): boolean {
  const state = replica?.state
  const winner = state?.winner
  if (!state || !winner) return false
  const planned = [...state.tasks.values()].filter((task) => task.proposal === winner.proposal)
  return planned.length > 0 && planned.every((task) => task.state === 'FINAL')
}

/**
 * Settled: every peer is up, every NEED is FINAL at the requester, and all peers hold every thread
 * in the same canonical state (what accepted envelopes made; refused ones and pending ones aside).
 */
function isSettled(world: World): boolean {
  if (world.peers.some((peer) => !peer.up || !peer.agent)) return false
  const requester = world.peers[2]!.agent!
  for (const need of world.needs) if (!isFinal(requester.replica(need))) return false
  let reference: string | undefined
  for (const peer of world.peers) {
    const agent = peer.agent!
    const digest = agent
      .threads()
      .map((thread) => `${thread}=${agent.replica(thread)!.stateHash()}`)
      .join(';')
    if (reference === undefined) reference = digest
    else if (digest !== reference) return false
  }
  return true
}

function finalCheck(world: World, converged: boolean): { needs: number; tasks: number } {
  const violations = world.violations
  const order = streamOf(world.seed, 'order')
  const winners = new Map<string, string>()
  const hashesBySet = new Map<string, string>()
  for (const peer of world.peers) {
    const agent = peer.agent
    if (!agent) continue
    for (const thread of agent.threads()) {
      const replica = agent.replica(thread)!
      // P2: a fresh replica fed the same envelopes in a shuffled order reaches the same state.
      const shuffled = [...replica.envelopes()]
      for (let i = shuffled.length - 1; i > 0; i -= 1) {
        const j = order.int(0, i + 1)
        ;[shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!]
      }
      const fresh = new ThreadReplica(thread, world.params)
      for (const env of shuffled) fresh.receive(env, 0)
      const hash = replica.stateHash()
      if (fresh.stateHash() !== hash) {
        violations.push({
          property: 'P2',
          peer: peer.index,
          thread,
          message: 'replay in another order differs',
        })
      }
      const setKey = `${thread}|${replica
        .envelopes()
        .map((env) => env.id)
        .join(',')}`
      const other = hashesBySet.get(setKey)
      if (other !== undefined && other !== hash) {
        violations.push({
          property: 'P2',
          peer: peer.index,
          thread,
          message: 'same envelopes, different state',
        })
      }
      hashesBySet.set(setKey, hash)
      // P1 after merge: once converged, every peer picks the same winner.
      const winner = replica.state.winner?.proposal
      if (converged && winner !== undefined) {
        const previous = winners.get(thread)
        if (previous !== undefined && previous !== winner) {
          violations.push({
            property: 'P1',
            peer: peer.index,
            thread,
            message: `winner ${winner} ≠ ${previous}`,
          })
        }
        winners.set(thread, winner)
      }
    }
  }
  let needs = 0
  let tasks = 0
  const requester = world.peers[2]!.agent
  for (const need of world.needs) {
    const state = requester?.replica(need)?.state
    const winner = state?.winner
    if (!state || !winner) continue
    const planned = [...state.tasks.values()].filter((task) => task.proposal === winner.proposal)
    const final = planned.filter((task) => task.state === 'FINAL').length
    tasks += final
    if (final === planned.length && planned.length > 0) needs += 1
  }
  return { needs, tasks }
}
