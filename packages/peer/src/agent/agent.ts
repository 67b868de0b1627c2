/**
 * The agent SDK: one object that holds a peer's identity, its thread replicas and its roles —
 * requester, planner, verifier, worker, anchor (decider) — and turns thread effects into signed
 * envelopes (docs/PROTOCOL.md §5, §11).
 *
 * The agent does no I/O of its own: envelopes leave through an {@link EnvelopeSink}, arrive
 * (already verified) through {@link Agent.deliver}, and time comes from an {@link AgentClock}.
 * Every method that reacts returns a promise that settles when all resulting work is done, so a
 * deterministic driver (the simulator) can run agents step by step.
 *
 * Lamport time is per thread (A4): what this agent signs in a thread carries one more than the
 * highest lamport placed in that thread. Epochs too: a thread's envelopes carry the highest epoch
 * an anchor has issued into it (A3).
 *
 * @example
 * ```ts
 * const agent = new Agent({ identity, params, bus, clock, random, artifacts,
 *   roles: { planner: true, worker: true, verifier: true } })
 * const need = await agent.post({ requires: ['word-frequency'], inputs: [text], budget: 50 })
 * ```
 */
import { type ArtifactStore, artifactCid } from '../core/artifacts.ts'
import { threadIdOf } from '../core/codec.ts'
import type { ConsensusStore, DecideRecord } from '../core/consensus.ts'
import { BUILTIN_POLICY_HASH, evalDigestOf } from '../core/digest.ts'
import { requiredBond, violatesJsonSchema } from '../core/economy/proofs.ts'
import { CanSwarmError, InvalidArgumentError, StaleEpochError } from '../core/errors.ts'
import { fetchTaskInputs, taskInputRefs } from '../core/thread/inputs.ts'
import {
  inCommittee,
  isAnchor,
  isEligibleVerifier,
  kPlanOf,
  type NetworkParams,
  poolSnapshotOf,
  withPool,
} from '../core/thread/params.ts'
import { refusalCode } from '../core/thread/refusals.ts'
import { type ThreadEffect, ThreadReplica } from '../core/thread/replica.ts'
import { type NeedInfo, type TaskInfo, type ThreadState, threadParams } from '../core/thread/state.ts'
import type {
  AnyEnvelope,
  Cid,
  Envelope,
  Kind,
  PayloadByKind,
  TaskSpec,
  UnsignedEnvelope,
} from '../core/types.ts'
import { GENESIS_EPOCH, PROTOCOL_VERSION } from '../core/types.ts'
import type { Identity } from '../crypto/ed25519.ts'
import { signEnvelope } from '../crypto/envelopes.ts'
import type { PolicyGates } from '../policy/gates.ts'
import { builtinCapabilities, type CapabilityRegistry, checkNeedRequest } from './capabilities.ts'
import type { AgentClock, AgentRandom, EnvelopeSink } from './ports.ts'
import { NEVER_EVICTED, UndecidedIndex } from './undecided.ts'

/** Roles an agent can play. */
export interface AgentRoles {
  /** Proposes plans for NEEDs whose capabilities it has. @default false */
  planner?: boolean
  /** Attests plans and results, challenges wrong results, judges challenges outside bootstrap. @default false */
  verifier?: boolean
  /** Claims and performs tasks with its capabilities. @default false */
  worker?: boolean
  /**
   * The anchor's duties (its identity must be in the network's anchor set): turns plan quorums into
   * DECIDEs through the consensus store, grants leases, scavenges expired ones, finalizes results
   * when their challenge window has passed by its clock, judges challenges in bootstrap mode, and
   * records merges in RECONCILEs. @default false
   */
  decider?: boolean
}

/** Timings and bounds of an agent's behaviour, each with its unit in the name. */
export interface AgentTuning {
  /** Lease asked for in CLAIMs. @default 2000 */
  leaseTtlMs: number
  /** Upper bound of the random back-off before proposing (a fraction of the bid window is used when smaller). @default 400 */
  proposeBackoffMs: number
  /** Upper bound of the random back-off before claiming a ready task. @default 150 */
  claimBackoffMs: number
  /** A planner stays out of a NEED that already has this many proposals. @default 2 */
  maxProposalsSeen: number
  /** A verifier attests at most this many proposals of one NEED (the first it receives). @default 4 */
  maxPlanAttestations: number
  /** Time a worker spends on a task (modelled work; the capability itself runs at once). @default 50 */
  workMs: number
  /** First retry delay of a failed consensus call (doubles up to 8×). @default 200 */
  decideRetryMs: number
  /** Attempts at a DECIDE before giving up on it. @default 30 */
  decideAttempts: number
  /** Credits a worker escrows for its verifiers with each COMMIT. @default 4 */
  verifyBounty: number
  /** Credits a challenger puts up as a bond, at least the proof's required bond. @default 5 */
  challengeBond: number
  /** Anchor: the longest lease it grants, whatever a CLAIM asks. @default 60 000 */
  maxGrantTtlMs: number
  /** Anchor: the longest one lease may be held, heartbeats or not, before it is scavenged. @default 600 000 */
  maxLeaseHoldMs: number
  /**
   * Anchor: how long an anchor that is not the thread's decider waits before it grants, scavenges
   * or finalizes in the decider's place. @default 1 500
   */
  anchorBackupMs: number
}

export const DEFAULT_AGENT_TUNING: AgentTuning = Object.freeze({
  leaseTtlMs: 2000,
  proposeBackoffMs: 400,
  claimBackoffMs: 150,
  maxProposalsSeen: 2,
  maxPlanAttestations: 4,
  workMs: 50,
  decideRetryMs: 200,
  decideAttempts: 30,
  verifyBounty: 4,
  challengeBond: 5,
  maxGrantTtlMs: 60_000,
  maxLeaseHoldMs: 600_000,
  anchorBackupMs: 1_500,
})

/**
 * The anchor's funding check (A7): why the requester of `need` cannot fund its budget now, or
 * `undefined` when it can; `reserved` is what this anchor's DECIDEs in flight already take from the
 * same requester. An unfunded NEED is not decided.
 */
export type FundingCheck = (
  need: NeedInfo,
  thread: string,
  reserved: number,
  /** The threads whose DECIDEs in flight make up `reserved`. */
  reservedThreads: ReadonlySet<string>,
) => string | undefined | Promise<string | undefined>

export interface AgentOptions {
  identity: Identity
  /** The network's parameters (from its genesis) with this peer's current view of the pool. */
  params: NetworkParams
  bus: EnvelopeSink
  clock: AgentClock
  random: AgentRandom
  artifacts: ArtifactStore
  /** Required for the decider role. @default none */
  consensus?: ConsensusStore
  /** Decider: the funding check run before every DECIDE. @default every NEED is funded */
  funding?: FundingCheck
  /**
   * Decider: a worker's standing (its reputation, say): among CLAIMs of workers that never held the
   * task, the higher ranks are granted first, before the cheaper asks — so throwaway keys asking
   * nothing do not beat workers with a record. @default every worker ranks the same
   */
  workerRank?: (worker: string) => number
  /** @default the built-in capabilities */
  capabilities?: CapabilityRegistry
  /** The roles the agent plays; change them later with `setRoles`. @default none: it follows threads and does no work */
  roles?: AgentRoles
  /** Timings and bounds of the roles. @default DEFAULT_AGENT_TUNING */
  tuning?: Partial<AgentTuning>
  /** Hash of the policy capsule this agent evaluates. @default BUILTIN_POLICY_HASH, or the gates' capsule */
  policyHash?: string
  /**
   * Policy gates (docs/PROTOCOL.md §10): preflight before every publish (a denial throws), ingress on
   * every delivered envelope (a denial drops it), commit gate in the verifier's result check (its
   * decision is the verdict and its digest the ATTEST's evalDigest). @default none
   */
  policy?: PolicyGates
  /** Most envelopes held for threads whose NEED has not arrived, over all threads. @default 4 096 */
  maxOrphanEnvelopes?: number
  /** Most envelopes one thread holds waiting for placement (A4). @default 1 024 */
  maxPendingEnvelopes?: number
  /**
   * A thread is settled once every task of its winning plan is FINAL and nothing new has been placed
   * in it for this long; {@link Agent.onSettled} observers hear of it then. @default 2 × T_challenge
   */
  settleAfterMs?: number
  /**
   * Drops a settled thread from memory (a peer that keeps no ledger of it): its replica and memos go,
   * its id is remembered so that later envelopes of it are answered `retired`. @default false
   */
  retireSettled?: boolean
  /** Most retired thread ids remembered; beyond it the oldest are forgotten. @default 65 536 */
  maxRetiredThreads?: number
  /**
   * Most threads followed without a winning DECIDE (anyone may post a NEED; only funded ones get
   * decided). A NEED beyond it evicts one undecided thread — never one this agent posted — chosen
   * by {@link AgentOptions.undecidedRank}, then from the requester holding the most undecided
   * threads (of those, the least recently active), then that requester's quietest; its envelopes
   * go to {@link Agent.onEvict} observers.
   * A flood from one key so evicts its own NEEDs first. @default 4 096
   */
  maxUndecidedThreads?: number
  /**
   * How much an undecided NEED is worth keeping when room must be made (lower goes first): an
   * anchor ranks NEEDs whose requester can fund the budget above those it cannot. Asked once per
   * NEED, when it is placed. @default 0 for every NEED
   */
  undecidedRank?: (need: { requester: string; budget: number }) => number
  /**
   * Most envelopes one thread holds (placed and pending). A full thread still takes envelopes of
   * its parties — anchors, its requester, its winning planner, lease holders, committee members
   * and workers of its commits — and refuses everyone else's (`thread-full`). @default 16 384
   */
  maxEnvelopesPerThread?: number
  /** Called with errors the agent handled by dropping the action (never thrown from reactions). @default ignored */
  onError?: (error: unknown) => void
}

/** What a requester asks for. */
export interface NeedRequest {
  /** Capabilities to chain, in order (each consumes the previous one's output). */
  requires: string[]
  /** Input artifacts (bytes are stored and referenced by CID). */
  inputs: Uint8Array[]
  /** Artifact type wanted back. @default 'application/octet-stream' */
  produces?: string
  budget: number
  /** @default 500 */
  bidWindowMs?: number
  /** Informational wall-clock deadline. @default now + 60 s */
  deadlineMs?: number
  /**
   * Post even though some required capability is not in this agent's registry (only other peers
   * offer it): the check of unknown names and of the budget against listed prices is skipped.
   * @default false
   */
  unlisted?: boolean
}

/** What an agent remembers of one thread: reactions taken, results it computed to judge commits. */
interface ThreadMemo {
  done: Set<string>
  /** Expected outputs per commit and inputs. */
  expected: Map<string, Cid[]>
  measured: Map<Cid, { inputBytes: number; outputBytes: number }>
}

/** Most times an anchor duty is checked and acted on again (its envelope refused each time). */
const MAX_DUTY_ROUNDS = 20

/** Default of {@link AgentOptions.maxOrphanEnvelopes}. */
export const DEFAULT_MAX_ORPHAN_ENVELOPES = 4_096

/** Default of {@link AgentOptions.maxRetiredThreads}. */
export const DEFAULT_MAX_RETIRED_THREADS = 65_536
/** Default of {@link AgentOptions.maxUndecidedThreads}. */
export const DEFAULT_MAX_UNDECIDED_THREADS = 4_096
/** Default of {@link AgentOptions.maxEnvelopesPerThread}. */
export const DEFAULT_MAX_ENVELOPES_PER_THREAD = 16_384

/**
 * Whether `did` takes part in a thread: an anchor, its requester, its winning planner, a lease
 * holder, or a committee member or worker of one of its commits.
 */
function isParty(replica: ThreadReplica, did: string): boolean {
  const state = replica.state
  if (isAnchor(replica.params, did) || state.need?.requester === did) return true
  const winner = state.winner
  if (winner && state.proposals.get(winner.proposal)?.planner === did) return true
  for (const task of state.tasks.values()) {
    if (task.lease?.worker === did) return true
    for (const commit of task.commit ? [task.commit, ...task.pastCommits] : task.pastCommits) {
      if (commit.worker === did || commit.committee.includes(did)) return true
    }
  }
  return false
}

/** One capability run of a worker under a lease (see {@link CapabilityContext}). */
interface RunningWork {
  thread: string
  task: string
  controller: AbortController
  /** The latest progress the handler reported, per-mille. */
  progress: number
}

/** Whether every task of a thread's winning plan is FINAL. */
export function isThreadSettled(state: Readonly<ThreadState>): boolean {
  const winner = state.winner
  if (winner === undefined) return false
  let tasks = 0
  for (const task of state.tasks.values()) {
    if (task.proposal !== winner.proposal) continue
    if (task.state !== 'FINAL') return false
    tasks += 1
  }
  return tasks > 0
}

export class Agent {
  readonly identity: Identity
  readonly capabilities: CapabilityRegistry
  #roles: Readonly<AgentRoles>
  readonly tuning: AgentTuning
  #params: NetworkParams
  #options: AgentOptions
  #replicas = new Map<string, ThreadReplica>()
  /** Envelopes of threads whose NEED is not held yet, per thread, in arrival order. */
  #orphans = new Map<string, AnyEnvelope[]>()
  #orphanCount = 0
  /** What the agent remembers of each thread it follows (dropped with the thread). */
  #memo = new Map<string, ThreadMemo>()
  /** Anchor duties and claim attempts with a timer armed (one per key). */
  #duties = new Set<string>()
  #timers = new Set<() => void>()
  /** Per thread, its pending {@link #after} timers and duty keys: cancelled when it is dropped. */
  #threadTimers = new Map<string, { cancels: Set<() => void>; duties: Set<string> }>()
  /** The duty timer armed per thread, with the time it is due. */
  #armed = new Map<string, { dueMs: number; cancel: () => void }>()
  #refusals = new Map<string, number>()
  #stopped = false
  #lastDecideTs = 0
  /** Budgets of this anchor's DECIDEs in flight, per requester (A7: checked and taken together). */
  #reserved = new Map<string, number>()
  /** The threads of those DECIDEs in flight, per requester. */
  #reservedThreads = new Map<string, Set<string>>()
  #observers = new Set<(env: AnyEnvelope) => void>()
  #evictionObservers = new Set<(env: AnyEnvelope) => void>()
  #settledObservers = new Set<(thread: string) => void>()
  #finalObservers = new Set<(thread: string, task: string, commit: Cid) => void>()
  #retireObservers = new Set<(thread: string, envelopes: readonly AnyEnvelope[]) => void>()
  /**
   * This worker's work in progress, by CLAIM id: at most one entry per lease it holds (its leases
   * are bounded by the tasks it claimed), removed when the work ends or its lease does.
   */
  readonly #running = new Map<Cid, RunningWork>()
  #evictedThreads = 0
  /** Threads followed that have no winning DECIDE yet. */
  #undecided = new UndecidedIndex()
  /** When an envelope was last placed in each followed thread (ms on the agent's clock). */
  #lastActivity = new Map<string, number>()
  /** The settle check armed per thread, with its time. */
  #settleTimers = new Map<string, { atMs: number; cancel: () => void }>()
  /** Threads dropped from memory once settled, oldest first. */
  #retired = new Set<string>()

  constructor(options: AgentOptions) {
    this.#options = options
    this.identity = options.identity
    this.#params = options.params
    this.capabilities = options.capabilities ?? builtinCapabilities()
    this.tuning = Object.freeze({ ...DEFAULT_AGENT_TUNING, ...options.tuning })
    this.#checkRoles(options.roles ?? {})
    this.#roles = Object.freeze({ ...options.roles })
  }

  /** The roles this agent plays now (see {@link setRoles}). */
  get roles(): Readonly<AgentRoles> {
    return this.#roles
  }

  #checkRoles(roles: AgentRoles): void {
    if (roles.decider && !this.#options.consensus) {
      throw new InvalidArgumentError('the decider role needs a consensus store', 'consensus')
    }
    if (roles.decider && !isAnchor(this.#params, this.identity.did)) {
      throw new InvalidArgumentError(
        `the decider role is an anchor's: ${this.identity.did} is not in the network's anchor set`,
        'roles',
      )
    }
  }

  /**
   * Changes the roles this agent plays, keeping everything it holds (no refold). A role switched on
   * acts at once on the threads held (a new verifier attests the plans and commits waiting for it,
   * a new worker claims ready tasks); a role switched off stops acting: its pending attempts are
   * dropped and its work in progress is aborted.
   *
   * @throws {InvalidArgumentError} as the constructor does for a decider without a consensus store
   *   or outside the network's anchor set.
   */
  async setRoles(roles: AgentRoles): Promise<void> {
    this.#checkRoles(roles)
    const before = this.#roles
    this.#roles = Object.freeze({ ...roles })
    const added: AgentRoles = {}
    for (const role of ['planner', 'worker', 'verifier', 'decider'] as const) {
      if (roles[role] && !before[role]) added[role] = true
    }
    if (before.worker && !roles.worker) {
      for (const work of this.#running.values())
        work.controller.abort(new Error('the worker role was switched off'))
      this.#running.clear()
    }
    if (Object.keys(added).length === 0) return
    for (const replica of [...this.#replicas.values()]) {
      if (this.#stopped) return
      await this.#react(replica, replica.standingEffects(), added)
      this.#schedule(replica)
    }
  }

  get did(): string {
    return this.identity.did
  }

  /** The network's parameters with this peer's current view of the verifier pool. */
  get params(): NetworkParams {
    return this.#params
  }

  /**
   * Adopts a newer view of the verifier pool (same network). Decided threads keep folding with the
   * pool of their DECIDE; what changes is which plans this agent attests and, for an anchor, the
   * pool its next DECIDEs carry.
   */
  setParams(params: NetworkParams): void {
    if (params.network !== this.#params.network) {
      throw new InvalidArgumentError('setParams cannot move an agent to another network', 'network')
    }
    this.#params = params
    for (const replica of this.#replicas.values()) replica.setParams(params)
  }

  /** The replica of a thread, if this agent follows it. */
  replica(thread: string): ThreadReplica | undefined {
    return this.#replicas.get(thread)
  }

  /** Every thread this agent follows. */
  threads(): string[] {
    return [...this.#replicas.keys()].sort()
  }

  /** Envelopes held for threads whose NEED has not arrived. */
  get orphanCount(): number {
    return this.#orphanCount
  }

  /** Envelopes this agent refused, counted once each by reason code (`wrong-network`, `not-an-anchor`, …). */
  refusals(): Record<string, number> {
    const total = new Map(this.#refusals)
    for (const replica of this.#replicas.values()) {
      for (const [code, count] of replica.refusals()) total.set(code, (total.get(code) ?? 0) + count)
    }
    return Object.fromEntries([...total].sort(([a], [b]) => (a < b ? -1 : 1)))
  }

  #replicaFor(thread: string): ThreadReplica {
    let replica = this.#replicas.get(thread)
    if (!replica) {
      replica = new ThreadReplica(thread, this.#params, {
        ...(this.#options.maxPendingEnvelopes === undefined
          ? {}
          : { maxPendingEnvelopes: this.#options.maxPendingEnvelopes }),
        onEvict: (env) => this.#notifyEviction(env),
      })
      this.#replicas.set(thread, replica)
      this.#undecided.add(thread)
    }
    return replica
  }

  /**
   * Calls `observer` with every envelope newly placed into one of this agent's replicas (delivered,
   * published or restored), right after it is folded. Returns a function that removes it.
   */
  observe(observer: (env: AnyEnvelope) => void): () => void {
    this.#observers.add(observer)
    return () => this.#observers.delete(observer)
  }

  /**
   * Calls `observer` with every envelope this agent dropped from a bounded pool (orphans, pending),
   * so that a transport may fetch it again later. Returns a function that removes it.
   */
  onEvict(observer: (env: AnyEnvelope) => void): () => void {
    this.#evictionObservers.add(observer)
    return () => this.#evictionObservers.delete(observer)
  }

  /**
   * Calls `observer` each time a task of a thread this agent holds becomes FINAL (with its commit),
   * once per FINAL as this replica sees it. Returns a function that removes it.
   */
  onFinal(observer: (thread: string, task: string, commit: Cid) => void): () => void {
    this.#finalObservers.add(observer)
    return () => this.#finalObservers.delete(observer)
  }

  /**
   * Calls `observer` with each thread that settles (every task of its winning plan FINAL, and
   * {@link AgentOptions.settleAfterMs} without news). A thread reopened by a later envelope may
   * settle again. Returns a function that removes it.
   */
  onSettled(observer: (thread: string) => void): () => void {
    this.#settledObservers.add(observer)
    return () => this.#settledObservers.delete(observer)
  }

  /**
   * Calls `observer` with each thread {@link retire}d and the envelopes it held (placed and
   * pending), so that indexes of envelopes (a sync index, a log's ids) let them go too. Returns a
   * function that removes it.
   */
  onRetire(observer: (thread: string, envelopes: readonly AnyEnvelope[]) => void): () => void {
    this.#retireObservers.add(observer)
    return () => this.#retireObservers.delete(observer)
  }

  /** Whether a thread was dropped from memory once settled ({@link AgentOptions.retireSettled}). */
  isRetired(thread: string): boolean {
    return this.#retired.has(thread)
  }

  /** Threads followed, threads retired, and memos held: the agent's bounded state, for status pages. */
  get sizes(): {
    threads: number
    undecided: number
    retired: number
    orphans: number
    memos: number
    timers: number
  } {
    return {
      timers: this.#timers.size,
      threads: this.#replicas.size,
      undecided: this.#undecided.size,
      retired: this.#retired.size,
      orphans: this.#orphanCount,
      memos: this.#memo.size,
    }
  }

  #notify(env: AnyEnvelope): void {
    this.#lastActivity.set(env.thread, this.#options.clock.now())
    if (env.kind === 'NEED' && this.#undecided.has(env.thread)) {
      // The NEED is placed: its requester and rank place the thread for eviction.
      const need = env as Envelope<'NEED'>
      const rank =
        need.sender === this.did
          ? NEVER_EVICTED
          : (this.#options.undecidedRank?.({ requester: need.sender, budget: need.payload.budget }) ?? 0)
      this.#undecided.add(env.thread, need.sender, rank)
    } else this.#undecided.touch(env.thread)
    for (const observer of this.#observers) {
      try {
        observer(env)
      } catch (error) {
        this.#options.onError?.(error)
      }
    }
  }

  #notifyEviction(env: AnyEnvelope): void {
    for (const observer of this.#evictionObservers) {
      try {
        observer(env)
      } catch (error) {
        this.#options.onError?.(error)
      }
    }
  }

  /** Whether an envelope is held (placed, pending, or waiting for its NEED). */
  holds(env: Pick<AnyEnvelope, 'id' | 'thread'>): boolean {
    if (this.#retired.has(env.thread)) return true
    if (this.#replicas.get(env.thread)?.has(env.id)) return true
    return this.#orphans.get(env.thread)?.some((held) => held.id === env.id) ?? false
  }

  /** True once {@link Agent.stop} has run. */
  get stopped(): boolean {
    return this.#stopped
  }

  /** Stops every timer and aborts the work in progress; the agent ignores further input. */
  stop(): void {
    this.#stopped = true
    for (const cancel of this.#timers) cancel()
    this.#timers.clear()
    for (const work of this.#running.values()) work.controller.abort(new Error('the agent stopped'))
    this.#running.clear()
  }

  // ------------------------------------------------------------------ input

  #refuse(reason: string): string {
    const code = refusalCode(reason)
    this.#refusals.set(code, (this.#refusals.get(code) ?? 0) + 1)
    return reason
  }

  /**
   * Takes in an envelope that has passed signature and id checks, and performs every reaction it
   * triggers. Returns `undefined` when it applied; otherwise why not: `duplicate` (already held),
   * `pending:no-need` / `pending:lamport` (it waits, unfolded, A4), `pending:evicted` (it would
   * wait, but the bounded pending pool dropped it at once), `stopped` (the agent was stopped:
   * nothing taken in), `policy: …` (the ingress gate
   * denied it), or the fold's refusal code (`not-an-anchor`, `stale-lease`, …; see refusals.ts).
   * `gated` says the policy ingress gate already ran on this envelope (the bus ran it before
   * forwarding), so it is not evaluated (nor counted) twice.
   */
  async deliver(env: AnyEnvelope, options: { gated?: boolean } = {}): Promise<string | undefined> {
    if (this.#stopped) return 'stopped'
    if (env.net !== this.#params.network) return this.#refuse('wrong-network')
    if (this.#retired.has(env.thread)) return 'retired'
    const denied = this.#policyDenial(env, options)
    if (denied !== undefined) return denied
    let replica = this.#replicas.get(env.thread)
    if (!replica) {
      if (env.kind !== 'NEED') return this.#holdOrphan(env)
      if (threadIdOf(env) !== env.thread) return this.#refuse('thread-id-mismatch')
      this.#makeRoomForThread(env)
      replica = this.#replicaFor(env.thread)
      const { effects, placed } = replica.receiveBatch(
        [env, ...this.#takeOrphans(env.thread)],
        this.#options.clock.now(),
      )
      for (const other of placed) this.#notify(other)
      await this.#react(replica, effects)
      this.#schedule(replica)
      return replica.state.rejected.get(env.id) ?? (replica.get(env.id) ? undefined : 'pending:lamport')
    }
    if (!replica.has(env.id) && this.#full(replica, env, 0)) return this.#refuse('thread-full')
    const result = replica.receive(env, this.#options.clock.now())
    if (!result.added) return 'duplicate'
    if (result.evicted) return 'pending:evicted'
    if (result.pending) return 'pending:lamport'
    for (const placed of result.placed) this.#notify(placed)
    this.#learnPool(replica)
    await this.#react(replica, result.effects)
    this.#schedule(replica)
    return result.rejected
  }

  /**
   * {@link deliver} for many envelopes at once (a sync page, a plan document's entries): each
   * thread's envelopes are placed and folded together and its reactions run once, on the state they
   * lead to — what a restore does — instead of one fold, diff and reaction round per envelope.
   * Returns one outcome per envelope, in order, with {@link deliver}'s meanings.
   */
  async deliverMany(
    envs: readonly AnyEnvelope[],
    options: { gated?: boolean } = {},
  ): Promise<(string | undefined)[]> {
    const outcomes: (string | undefined)[] = new Array(envs.length).fill(undefined)
    const byThread = new Map<string, number[]>()
    for (const [index, env] of envs.entries()) {
      const list = byThread.get(env.thread) ?? []
      list.push(index)
      byThread.set(env.thread, list)
    }
    for (const all of byThread.values()) {
      const thread = envs[all[0]!]!.thread
      // Until the thread is followed (its NEED opens it), one by one; then the rest together.
      let next = 0
      while (next < all.length && !this.#replicas.has(thread) && !this.#stopped) {
        const index = all[next++]!
        outcomes[index] = await this.deliver(envs[index]!, options)
      }
      const indices = all.slice(next)
      const replica = this.#replicas.get(thread)
      if (indices.length === 0) continue
      if (this.#stopped || !replica || indices.length === 1) {
        for (const index of indices) outcomes[index] = await this.deliver(envs[index]!, options)
        continue
      }
      const taken: AnyEnvelope[] = []
      const seen = new Set<string>()
      for (const index of indices) {
        const env = envs[index]!
        if (env.net !== this.#params.network) outcomes[index] = this.#refuse('wrong-network')
        else if (replica.has(env.id) || seen.has(env.id)) outcomes[index] = 'duplicate'
        else {
          const denied = this.#policyDenial(env, options)
          if (denied !== undefined) outcomes[index] = denied
          else if (this.#full(replica, env, taken.length)) outcomes[index] = this.#refuse('thread-full')
          else {
            taken.push(env)
            seen.add(env.id)
          }
        }
      }
      if (taken.length === 0) continue
      const { effects, placed } = replica.receiveBatch(taken, this.#options.clock.now())
      for (const env of placed) this.#notify(env)
      for (const index of indices) {
        const env = envs[index]!
        if (outcomes[index] !== undefined || !seen.has(env.id)) continue
        outcomes[index] = replica.get(env.id)
          ? replica.state.rejected.get(env.id)
          : replica.has(env.id)
            ? 'pending:lamport'
            : 'pending:evicted'
      }
      this.#learnPool(replica)
      await this.#react(replica, effects)
      this.#schedule(replica)
    }
    return outcomes
  }

  /** Why the policy ingress gate denies an envelope (unless the bus ran it already), if it does. */
  #policyDenial(env: AnyEnvelope, options: { gated?: boolean }): string | undefined {
    const gate = options.gated ? undefined : this.#options.policy?.ingress(env)
    if (!gate || gate.allowed) return undefined
    const reasons = gate.reasons.map((reason) => `${reason.rule} (${reason.field})`).join(', ')
    return `policy: denied by ${reasons || 'default deny'}`
  }

  /** Whether a thread holding `extra` more envelopes than it has is full for `env`'s sender. */
  #full(replica: ThreadReplica, env: AnyEnvelope, extra: number): boolean {
    const max = this.#options.maxEnvelopesPerThread ?? DEFAULT_MAX_ENVELOPES_PER_THREAD
    return replica.size + replica.pendingSize + extra >= max && !isParty(replica, env.sender)
  }

  /**
   * A newer pool snapshot from an anchor's accepted DECIDE becomes this agent's view of the pool
   * (anchors adopt snapshots at epoch boundaries; peers learn them from the DECIDEs that carry them).
   */
  #learnPool(replica: ThreadReplica): void {
    const winner = replica.state.winner
    if (!winner || winner.pool.epoch <= (this.#params.poolEpoch ?? 0)) return
    if (this.roles.decider) return // an anchor decides under the pool it adopted itself
    this.setParams(withPool(this.#params, winner.pool))
  }

  #holdOrphan(env: AnyEnvelope): string {
    let list = this.#orphans.get(env.thread)
    if (!list) {
      list = []
      this.#orphans.set(env.thread, list)
    }
    if (list.some((held) => held.id === env.id)) return 'duplicate'
    list.push(env)
    this.#orphanCount += 1
    const max = this.#options.maxOrphanEnvelopes ?? DEFAULT_MAX_ORPHAN_ENVELOPES
    while (this.#orphanCount > max) {
      // The thread holding the most orphans loses its newest: a flood of made-up threads evicts itself.
      let busiest: string | undefined
      let most = 0
      for (const [thread, held] of this.#orphans) {
        if (held.length > most) {
          most = held.length
          busiest = thread
        }
      }
      const held = this.#orphans.get(busiest!)!
      const victim = held.pop()!
      if (held.length === 0) this.#orphans.delete(busiest!)
      this.#orphanCount -= 1
      this.#notifyEviction(victim)
    }
    return 'pending:no-need'
  }

  #takeOrphans(thread: string): AnyEnvelope[] {
    const list = this.#orphans.get(thread) ?? []
    this.#orphans.delete(thread)
    this.#orphanCount -= list.length
    return list
  }

  /**
   * Restores threads from a durable log after a restart: folds everything once, then resumes
   * whatever duties the restored state implies. What the log holds passes the same gates as a
   * delivery (the network, the policy ingress gate: a log written before a gate, or by an older
   * policy, cannot bring in what the peer now refuses); its own envelopes passed preflight.
   */
  async restore(envs: readonly AnyEnvelope[]): Promise<void> {
    const byThread = new Map<string, AnyEnvelope[]>()
    for (const env of envs) {
      if (env.net !== this.#params.network) continue
      if (env.sender !== this.did && this.#options.policy && !this.#options.policy.ingress(env).allowed)
        continue
      if (env.kind === 'DECIDE' && env.sender === this.did)
        this.#lastDecideTs = Math.max(this.#lastDecideTs, env.ts)
      const list = byThread.get(env.thread) ?? []
      list.push(env)
      byThread.set(env.thread, list)
    }
    for (const [thread, list] of byThread) {
      const need = list.find((env) => env.kind === 'NEED' && threadIdOf(env) === thread)
      if (!need && !this.#replicas.has(thread)) {
        for (const env of list) this.#holdOrphan(env)
        continue
      }
      const replica = this.#replicaFor(thread)
      const { effects, placed } = replica.receiveBatch(
        [...list, ...this.#takeOrphans(thread)],
        this.#options.clock.now(),
      )
      for (const env of placed) this.#notify(env)
      await this.#react(replica, effects)
      this.#schedule(replica)
    }
  }

  // ------------------------------------------------------------------ output

  /** The epoch this agent's envelopes in a thread carry: the highest an anchor issued into it (A3). */
  #threadEpoch(replica: ThreadReplica | undefined): number {
    return Math.max(GENESIS_EPOCH, replica?.state.issuedEpoch ?? GENESIS_EPOCH)
  }

  #unsigned<K extends Kind>(
    kind: K,
    thread: string,
    payload: PayloadByKind[K],
    lamport: number,
    extra: { refs?: Cid[]; fence?: string; epoch?: number; evalDigest?: string; ts?: number },
    epoch: number,
  ): UnsignedEnvelope<K> {
    return {
      v: PROTOCOL_VERSION,
      net: this.#params.network,
      kind,
      thread,
      sender: this.did,
      lamport,
      ts: extra.ts ?? Math.max(0, Math.floor(this.#options.clock.now())),
      payload,
      refs: extra.refs ?? [],
      policy: this.#options.policy?.capsule ?? this.#options.policyHash ?? BUILTIN_POLICY_HASH,
      epoch: extra.epoch ?? epoch,
      ...(extra.fence === undefined ? {} : { fence: extra.fence }),
      ...(extra.evalDigest === undefined ? {} : { evalDigest: extra.evalDigest }),
    }
  }

  /** Signs and publishes an envelope in a thread this agent follows, applying it to the own replica first. */
  async publish<K extends Kind>(
    kind: K,
    thread: string,
    payload: PayloadByKind[K],
    extra: { refs?: Cid[]; fence?: string; epoch?: number; evalDigest?: string; ts?: number } = {},
  ): Promise<Envelope<K>> {
    const replica = this.#replicas.get(thread)
    if (!replica) {
      throw new InvalidArgumentError(
        `this agent follows no thread ${thread}: post or receive its NEED first`,
        'thread',
      )
    }
    const unsigned = this.#unsigned(
      kind,
      thread,
      payload,
      replica.nextLamport(),
      extra,
      this.#threadEpoch(replica),
    )
    const env = await this.#sign(unsigned)
    await this.#take(replica, env as AnyEnvelope)
    return env
  }

  async #sign<K extends Kind>(unsigned: UnsignedEnvelope<K>): Promise<Envelope<K>> {
    const gates = this.#options.policy
    if (gates) gates.enforce('preflight', gates.preflight(unsigned), unsigned.policy)
    return signEnvelope(unsigned, this.identity)
  }

  async #take(replica: ThreadReplica, env: AnyEnvelope): Promise<void> {
    const result = replica.receive(env, this.#options.clock.now())
    for (const placed of result.placed) this.#notify(placed)
    this.#options.bus.publish(env)
    await this.#react(replica, result.effects)
    this.#schedule(replica)
  }

  /**
   * Posts a NEED (requester role). Returns the NEED id (the thread id, A1). `signal` aborts it
   * until the NEED is published (storing inputs included), never after: then it rejects with the
   * signal's reason and nothing was said.
   */
  async post(request: NeedRequest, options: { signal?: AbortSignal } = {}): Promise<string> {
    const signal = options.signal
    signal?.throwIfAborted()
    if (request.requires.length === 0)
      throw new InvalidArgumentError('requires must name a capability', 'requires')
    if (request.inputs.length === 0)
      throw new InvalidArgumentError('a NEED needs at least one input', 'inputs')
    if (!request.unlisted) checkNeedRequest(request, this.capabilities)
    const inputs: Cid[] = []
    for (const bytes of request.inputs)
      inputs.push(await this.#options.artifacts.put(bytes, signal ? { signal } : undefined))
    const now = this.#options.clock.now()
    const payload = {
      need: '',
      epoch: GENESIS_EPOCH,
      requires: request.requires,
      inputs,
      produces: request.produces ?? 'application/octet-stream',
      budget: request.budget,
      deadlineMs: Math.max(0, Math.floor(request.deadlineMs ?? now + 60_000)),
      bidWindowMs: request.bidWindowMs ?? 500,
    }
    const draft = this.#unsigned('NEED', '', payload, 1, {}, GENESIS_EPOCH)
    const thread = threadIdOf(draft)
    const env = await this.#sign({ ...draft, thread, payload: { ...payload, need: thread } })
    // The last moment to give up: once taken, the NEED is published.
    signal?.throwIfAborted()
    await this.#take(this.#replicaFor(thread), env as AnyEnvelope)
    return thread
  }

  // ------------------------------------------------------------------ reactions

  async #react(replica: ThreadReplica, effects: readonly ThreadEffect[], roles = this.#roles): Promise<void> {
    for (const effect of effects) {
      if (this.#stopped) return
      if (effect.type === 'task-final' && roles === this.#roles) {
        for (const observer of this.#finalObservers) {
          try {
            observer(replica.thread, effect.task, effect.commit)
          } catch (error) {
            this.#options.onError?.(error)
          }
        }
      }
      try {
        await this.#reactOne(replica, effect, roles)
      } catch (error) {
        this.#options.onError?.(error)
      }
    }
    if (this.#running.size > 0) this.#abortLostWork(replica.thread)
  }

  /**
   * Aborts this worker's work in progress on `thread` whose lease has ended (the task was
   * scavenged, reopened or released, or the thread is gone): its handler's signal fires.
   */
  #abortLostWork(thread: string): void {
    const tasks = this.#replicas.get(thread)?.state.tasks
    for (const [claim, work] of this.#running) {
      if (work.thread !== thread || tasks?.get(work.task)?.lease?.claim === claim) continue
      work.controller.abort(new Error(`the lease of task ${work.task} ended`))
      this.#running.delete(claim)
    }
  }

  async #reactOne(replica: ThreadReplica, effect: ThreadEffect, roles: Readonly<AgentRoles>): Promise<void> {
    switch (effect.type) {
      case 'need':
        if (roles.planner) this.#planLater(replica)
        return
      case 'proposal':
        if (roles.verifier) await this.#attestPlan(replica, effect.proposal)
        return
      case 'plan-quorum':
        if (roles.decider) await this.#decide(replica, effect.proposal, 1)
        return
      case 'task-ready':
        if (roles.worker) this.#claimLater(replica, effect.task)
        return
      case 'claim-requested':
        if (roles.decider) this.#grantLater(replica, effect.task)
        return
      case 'task-claimed':
        if (roles.decider) this.#watchHold(replica, effect.task, effect.claim)
        if (roles.worker) this.#workIfMine(replica, effect.task, effect.claim)
        return
      case 'task-committed':
        if (roles.verifier) await this.#attestResult(replica, effect.task, effect.commit)
        return
      case 'task-verified':
      case 'task-final':
        if (roles.verifier) await this.#challengeIfWrong(replica, effect.task, effect.commit)
        return
      case 'challenged':
        if (roles.verifier || roles.decider)
          await this.#judgeChallenge(replica, effect.task, effect.commit, effect.challenge)
        return
      case 'lease-expired':
        if (roles.decider) this.#scavengeLater(replica, effect.task, effect.claim)
        return
      case 'finalize-due':
        if (roles.decider) this.#finalizeLater(replica, effect.task, effect.commit)
        return
      case 'decided':
      case 'decide-conflict':
        if (roles.decider) await this.#reconcile(replica)
        return
      case 'task-reopened':
      case 'bid-window-closed':
        return
    }
  }

  /** True the first time `key` is asked in `thread` (memos live as long as the thread's replica). */
  #once(thread: string, key: string): boolean {
    const { done } = this.#memoOf(thread)
    if (done.has(key)) return false
    done.add(key)
    return true
  }

  #memoOf(thread: string): ThreadMemo {
    let memo = this.#memo.get(thread)
    if (memo === undefined) {
      memo = { done: new Set(), expected: new Map(), measured: new Map() }
      // A reaction finishing after its thread was retired keeps nothing.
      if (this.#replicas.has(thread)) this.#memo.set(thread, memo)
    }
    return memo
  }

  /**
   * Runs `action` after `delayMs`, for `thread`: dropping the thread cancels it (a timer must not
   * keep a retired thread's replica in memory until it fires).
   */
  #after(delayMs: number, action: () => Promise<void>, thread: string): void {
    if (this.#stopped) return
    const clock = this.#options.clock
    const own = this.#timersOf(thread)
    const cancel = clock.setTimer(clock.now() + delayMs, async () => {
      this.#timers.delete(cancel)
      own.cancels.delete(cancel)
      const tidy = () => {
        if (own.cancels.size === 0 && own.duties.size === 0 && this.#threadTimers.get(thread) === own)
          this.#threadTimers.delete(thread)
      }
      if (this.#stopped) return
      try {
        await action()
      } catch (error) {
        this.#options.onError?.(error)
      } finally {
        tidy()
      }
    })
    this.#timers.add(cancel)
    own.cancels.add(cancel)
  }

  /**
   * Keeps one timer armed per thread for its next time-driven duty (re-armed for an earlier one).
   */
  #schedule(replica: ThreadReplica): void {
    this.#watchSettled(replica)
    const due = replica.nextDueMs()
    if (due === undefined) return
    const armed = this.#armed.get(replica.thread)
    if (armed && armed.dueMs <= due) return
    if (armed) {
      armed.cancel()
      this.#timers.delete(armed.cancel)
    }
    const clock = this.#options.clock
    const cancel = clock.setTimer(due, async () => {
      this.#timers.delete(cancel)
      if (this.#armed.get(replica.thread)?.cancel === cancel) this.#armed.delete(replica.thread)
      if (this.#stopped) return
      // The timer's contract is "at or after `due`": a clock read a hair early (timer rounding,
      // floating point) still counts as due.
      await this.#react(replica, replica.tick(Math.max(clock.now(), due)))
      this.#schedule(replica)
    })
    this.#timers.add(cancel)
    this.#armed.set(replica.thread, { dueMs: due, cancel })
  }

  /** Delay before an anchor acts on a thread: none for its decider, a back-off for the others. */
  #anchorDelay(replica: ThreadReplica): number {
    const decider = replica.state.winner?.decider
    return decider === this.did ? 0 : this.tuning.anchorBackupMs * (1 + this.#options.random.next())
  }

  // planner --------------------------------------------------------------

  /** Forgets a thread (its replica, memos and timers), keeping its refusal counts; false if not followed. */
  #drop(thread: string): boolean {
    const replica = this.#replicas.get(thread)
    if (!replica) return false
    for (const [code, count] of replica.refusals())
      this.#refusals.set(code, (this.#refusals.get(code) ?? 0) + count)
    for (const timers of [this.#armed, this.#settleTimers]) {
      const armed = timers.get(thread)
      if (armed) {
        armed.cancel()
        this.#timers.delete(armed.cancel)
        timers.delete(thread)
      }
    }
    const held = this.#threadTimers.get(thread)
    if (held) {
      for (const cancel of held.cancels) {
        cancel()
        this.#timers.delete(cancel)
      }
      for (const key of held.duties) this.#duties.delete(key)
      this.#threadTimers.delete(thread)
    }
    this.#replicas.delete(thread)
    this.#abortLostWork(thread)
    this.#undecided.delete(thread)
    this.#memo.delete(thread)
    this.#lastActivity.delete(thread)
    return true
  }

  /** Arms (or re-arms, after news) the check that tells observers a thread has settled. */
  #watchSettled(replica: ThreadReplica): void {
    const thread = replica.thread
    if (replica.state.winner !== undefined) this.#undecided.delete(thread)
    const armed = this.#settleTimers.get(thread)
    if (!isThreadSettled(replica.state)) {
      if (armed) {
        armed.cancel()
        this.#timers.delete(armed.cancel)
        this.#settleTimers.delete(thread)
      }
      return
    }
    const clock = this.#options.clock
    const quietMs = this.#options.settleAfterMs ?? 2 * this.#params.tChallengeMs
    const atMs = (this.#lastActivity.get(thread) ?? clock.now()) + quietMs
    if (armed?.atMs === atMs || this.#stopped) return
    if (armed) {
      armed.cancel()
      this.#timers.delete(armed.cancel)
    }
    const cancel = clock.setTimer(atMs, () => {
      this.#timers.delete(cancel)
      if (this.#settleTimers.get(thread)?.cancel === cancel) this.#settleTimers.delete(thread)
      if (this.#stopped || this.#replicas.get(thread) !== replica) return
      const quietSince = this.#lastActivity.get(thread) ?? 0
      if (!isThreadSettled(replica.state)) return
      if (quietSince + quietMs > clock.now() + 1) {
        this.#watchSettled(replica)
        return
      }
      for (const observer of this.#settledObservers) {
        try {
          observer(thread)
        } catch (error) {
          this.#options.onError?.(error)
        }
      }
      if (this.#options.retireSettled) this.retire(thread)
    })
    this.#timers.add(cancel)
    this.#settleTimers.set(thread, { atMs, cancel })
  }

  /**
   * Before a NEED opens a new thread: when as many undecided threads are followed as allowed, one
   * is dropped (never one of this agent's own NEEDs; order in {@link AgentOptions.maxUndecidedThreads},
   * kept by {@link UndecidedIndex}) and its envelopes handed to eviction observers (they may be
   * fetched again later).
   */
  #makeRoomForThread(need: AnyEnvelope): void {
    const max = this.#options.maxUndecidedThreads ?? DEFAULT_MAX_UNDECIDED_THREADS
    if (this.#undecided.size < max || need.sender === this.did) return
    const thread = this.#undecided.victim()
    const victim = thread === undefined ? undefined : this.#replicas.get(thread)
    if (!victim) return
    const dropped = [...victim.envelopes(), ...victim.pending()]
    this.#drop(victim.thread)
    this.#evictedThreads += 1
    for (const env of dropped) this.#notifyEviction(env)
  }

  /** Threads dropped undecided to make room for new ones ({@link AgentOptions.maxUndecidedThreads}). */
  get evictedThreads(): number {
    return this.#evictedThreads
  }

  /**
   * Drops a thread from memory for good — its replica, memos and timers (its refusal counts stay)
   * — and remembers its id, so that later envelopes of it are answered `retired`
   * ({@link AgentOptions.maxRetiredThreads} ids at most). For a thread whose record lives elsewhere:
   * an anchor's settled ledger base and its log on disk. Returns false if the thread was not followed.
   */
  retire(thread: string): boolean {
    const replica = this.#replicas.get(thread)
    if (!replica) return false
    const envelopes = [...replica.envelopes(), ...replica.pending()]
    this.#drop(thread)
    this.#retired.add(thread)
    const max = this.#options.maxRetiredThreads ?? DEFAULT_MAX_RETIRED_THREADS
    for (const oldest of this.#retired) {
      if (this.#retired.size <= max) break
      this.#retired.delete(oldest)
    }
    for (const observer of this.#retireObservers) {
      try {
        observer(thread, envelopes)
      } catch (error) {
        this.#options.onError?.(error)
      }
    }
    return true
  }

  #planLater(replica: ThreadReplica): void {
    const need = replica.state.need
    if (!need || !this.#once(replica.thread, `plan:${need.env}`)) return
    if (!need.requires.every((name) => this.capabilities.has(name))) return
    const window = Math.max(1, Math.min(this.tuning.proposeBackoffMs, need.bidWindowMs))
    this.#after(this.#options.random.next() * window, () => this.#propose(replica), replica.thread)
  }

  async #propose(replica: ThreadReplica): Promise<void> {
    const state = replica.state
    const need = state.need
    if (!this.#roles.planner || !need || state.winner || state.proposals.size >= this.tuning.maxProposalsSeen)
      return
    const patch: TaskSpec[] = need.requires.map((capability, index) => ({
      name: `t${index}-${capability}`.slice(0, 64),
      capability,
      inputs:
        index === 0 ? [...need.inputs] : [`task:t${index - 1}-${need.requires[index - 1]}`.slice(0, 69)],
      produces: this.capabilities.get(capability)!.manifest.produces,
    }))
    const price = need.requires.reduce((sum, name) => sum + this.capabilities.get(name)!.manifest.price, 0)
    if (price > need.budget) return
    await this.publish('PROPOSE', replica.thread, {
      need: replica.thread,
      patch,
      ballot: 1,
      price,
      etaMs: this.tuning.workMs * patch.length,
      shardDependencies: [],
    })
  }

  // verifier: plans -------------------------------------------------------

  async #attestPlan(replica: ThreadReplica, proposal: Cid): Promise<void> {
    if (!isEligibleVerifier(this.#params, this.did)) return
    const info = replica.state.proposals.get(proposal)
    if (!info || replica.state.planVotes.get(proposal)?.has(this.did)) return
    if (!this.#params.bootstrap && info.planner === this.did) return
    // A verifier weighs a bounded number of plans per NEED (the first it receives), not every bid.
    const attested = [...replica.state.planVotes.values()].filter((votes) => votes.has(this.did)).length
    if (attested >= this.tuning.maxPlanAttestations) return
    // A plan that names an output type other than the one a capability it knows produces would
    // make its workers' right results look wrong: not accepted.
    const mistyped = info.payload.patch.some((spec) => {
      const capability = this.capabilities.get(spec.capability)
      return capability !== undefined && capability.manifest.produces !== spec.produces
    })
    if (mistyped) return
    if (!this.#once(replica.thread, `attest-plan:${proposal}`)) return
    const payload = { need: replica.thread, proposal, verdict: 'accept' as const }
    await this.publish('ATTEST_PLAN', replica.thread, payload)
  }

  // anchor: decisions -------------------------------------------------------

  /**
   * The anchor that decides a requester's NEEDs first (the others only after a back-off), so that
   * one anchor checks and takes each requester's funds in order (A7).
   */
  #homeAnchor(requester: string): string {
    const anchors = this.#params.anchors
    let hash = 0
    for (let i = 0; i < requester.length; i += 1) hash = (hash * 31 + requester.charCodeAt(i)) >>> 0
    return anchors[hash % anchors.length]!
  }

  async #decide(replica: ThreadReplica, proposal: Cid, attempt: number): Promise<void> {
    const quorum = replica.state.quorum
    if (!quorum || quorum.proposal !== proposal || replica.state.winner) return
    if (attempt === 1) {
      // Once per proposal: when a late envelope moves the quorum to another plan, that plan gets its
      // own attempt (the attempts armed for the old one stop at the check above).
      if (!this.#once(replica.thread, `decide:${replica.thread}:${proposal}`)) return
      const need = replica.state.need!
      if (this.#homeAnchor(need.requester) !== this.did) {
        this.#after(
          this.tuning.anchorBackupMs * (1 + this.#options.random.next()),
          () => this.#decide(replica, proposal, 2),
          replica.thread,
        )
        return
      }
    }
    const need = replica.state.need!
    const reserved = this.#reserved.get(need.requester) ?? 0
    const inFlight = new Set(this.#reservedThreads.get(need.requester))
    const unfunded = await this.#options.funding?.(need, replica.thread, reserved, inFlight)
    if (replica.state.winner) return
    if (unfunded !== undefined) {
      this.#options.onError?.(
        new InvalidArgumentError(`NEED ${replica.thread} is not decided: ${unfunded}`, 'budget'),
      )
      return
    }
    this.#reserved.set(need.requester, (this.#reserved.get(need.requester) ?? 0) + need.budget)
    const held = this.#reservedThreads.get(need.requester) ?? new Set<string>()
    this.#reservedThreads.set(need.requester, held.add(replica.thread))
    try {
      await this.#decideFunded(replica, proposal, attempt, quorum.attestations)
    } finally {
      const left = (this.#reserved.get(need.requester) ?? 0) - need.budget
      if (left > 0) this.#reserved.set(need.requester, left)
      else this.#reserved.delete(need.requester)
      const still = this.#reservedThreads.get(need.requester)
      still?.delete(replica.thread)
      if (still?.size === 0) this.#reservedThreads.delete(need.requester)
    }
  }

  async #decideFunded(replica: ThreadReplica, proposal: Cid, attempt: number, quorum: Cid[]): Promise<void> {
    const consensus = this.#options.consensus!
    let record: DecideRecord
    const lamport = replica.nextLamport()
    try {
      const epoch = await consensus.currentEpoch()
      const result = await consensus.tryDecide({
        need: replica.thread,
        proposal,
        epoch,
        lamport,
        kPlan: kPlanOf(this.#params),
        decider: this.did,
      })
      if (result.outcome === 'conflict' || result.record.decider !== this.did) return
      record = result.record
    } catch (error) {
      if (!(error instanceof StaleEpochError) && error instanceof CanSwarmError) throw error
      if (attempt < this.tuning.decideAttempts) {
        const delay = this.tuning.decideRetryMs * 2 ** Math.min(3, attempt - 1)
        this.#after(
          delay * (0.5 + this.#options.random.next()),
          () => this.#decide(replica, proposal, attempt + 1),
          replica.thread,
        )
      }
      return
    }
    const attestations = quorum.map((id) => replica.get(id)!)
    // The anchors' sequence (A7): an anchor's DECIDEs carry strictly rising times.
    const ts = Math.max(this.#lastDecideTs + 1, Math.floor(this.#options.clock.now()))
    this.#lastDecideTs = ts
    await this.publish(
      'DECIDE',
      replica.thread,
      {
        need: record.need,
        proposal: record.proposal,
        epoch: record.epoch,
        lamport: record.lamport,
        kPlan: record.kPlan,
        decider: record.decider,
        attestations: attestations as Envelope[],
        pool: poolSnapshotOf(this.#params),
      },
      { epoch: record.epoch, ts },
    )
  }

  /**
   * After a heal, a thread may hold DECIDEs of different proposals: the merge rule has picked one
   * everywhere; a decider records the outcome in a RECONCILE (once per winner).
   */
  async #reconcile(replica: ThreadReplica): Promise<void> {
    const state = replica.state
    const winner = state.winner
    if (!winner) return
    const losers = [...state.decides.values()].filter((decide) => decide.proposal !== winner.proposal)
    // The anchor whose DECIDE won records the merge (one RECONCILE, not one per anchor).
    if (losers.length === 0 || winner.decider !== this.did) return
    if (!this.#once(replica.thread, `reconcile:${replica.thread}:${winner.env}`)) return
    await this.publish('RECONCILE', replica.thread, {
      thread: replica.thread,
      merged: [winner.env],
      orphaned: [...new Set(losers.map((decide) => decide.proposal))].sort(),
      salvaged: replica.salvaged(),
    })
  }

  // anchor: duties -----------------------------------------------------------

  /**
   * Runs an anchor duty driven by the thread's state: `act` looks at the state and publishes what
   * it calls for (a GRANT, a RELEASE, a FINALIZE), answering whether it did. A duty that acted is
   * checked again after `anchorBackupMs` — an envelope the log later refuses (a re-fold after a
   * heal placed it where it no longer applies) is then sent anew — until the state no longer calls
   * for it, at most `MAX_DUTY_ROUNDS` times. One timer per duty key at a time.
   */
  #duty(thread: string, key: string, delayMs: number, act: () => Promise<boolean>, round = 1): void {
    if (this.#duties.has(key)) return
    this.#duties.add(key)
    this.#timersOf(thread).duties.add(key)
    this.#after(
      delayMs,
      async () => {
        this.#duties.delete(key)
        this.#threadTimers.get(thread)?.duties.delete(key)
        if ((await act()) && round < MAX_DUTY_ROUNDS)
          this.#duty(thread, key, this.tuning.anchorBackupMs, act, round + 1)
      },
      thread,
    )
  }

  /** The pending timers and duty keys of `thread` (cancelled and forgotten when it is dropped). */
  #timersOf(thread: string): { cancels: Set<() => void>; duties: Set<string> } {
    let held = this.#threadTimers.get(thread)
    if (!held) {
      held = { cancels: new Set(), duties: new Set() }
      this.#threadTimers.set(thread, held)
    }
    return held
  }

  /**
   * Grants the lease of a claimable task to the CLAIM of its current round this anchor received
   * first (A5), skipping workers that already let a lease of the task expire. The thread's decider
   * grants at once; other anchors only after a back-off, when no grant has come.
   */
  #grantLater(replica: ThreadReplica, taskId: string): void {
    this.#duty(replica.thread, `grant:${replica.thread}:${taskId}`, this.#anchorDelay(replica), async () => {
      const current = replica.state.tasks.get(taskId)
      if (current?.state !== 'DECIDED' || current.lease) return false
      if (!current.parents.every((parent) => replica.state.tasks.get(parent)?.state === 'FINAL')) return false
      const timedOut = new Set(this.#timedOutWorkers(replica, current))
      const held = this.#earlierHolders(replica, current)
      // Workers that never held this task first (a holder that yields and claims again cannot keep
      // it from the others), then the best standing, then the cheapest ask, then the first received.
      const rank = this.#options.workerRank ?? (() => 0)
      const candidates = [...current.requests]
        .filter(([, round]) => round === current.round)
        .map(([claim]) => replica.get(claim) as Envelope<'CLAIM'>)
        .filter((claim) => claim !== undefined && !timedOut.has(claim.sender))
        .sort(
          (a, b) =>
            (held.get(a.sender) ?? 0) - (held.get(b.sender) ?? 0) ||
            rank(b.sender) - rank(a.sender) ||
            a.payload.cost - b.payload.cost ||
            (replica.receivedAt(a.id) ?? 0) - (replica.receivedAt(b.id) ?? 0) ||
            (a.id < b.id ? -1 : 1),
        )
      const chosen = candidates[0]
      if (!chosen) return false
      // An earlier holder is granted the task again only after one more back-off, so that a worker
      // that yields and claims in one breath does not beat everyone else to every round.
      if (
        (held.get(chosen.sender) ?? 0) > 0 &&
        this.#once(replica.thread, `regrant:${taskId}:${current.round}`)
      )
        return true
      await this.publish('GRANT', replica.thread, {
        task: taskId,
        claim: chosen.id,
        leaseTtlMs: Math.max(
          this.#params.minLeaseTtlMs,
          Math.min(chosen.payload.leaseTtlMs, this.tuning.maxGrantTtlMs),
        ),
      })
      return true
    })
  }

  /** How many leases of this task each worker held before (every accepted GRANT of it). */
  #earlierHolders(replica: ThreadReplica, task: TaskInfo): Map<string, number> {
    const counts = new Map<string, number>()
    for (const env of replica.envelopes()) {
      if (env.kind !== 'GRANT' || env.payload.task !== task.id || replica.state.rejected.has(env.id)) continue
      const claim = replica.get(env.payload.claim)
      if (claim) counts.set(claim.sender, (counts.get(claim.sender) ?? 0) + 1)
    }
    return counts
  }

  /** Workers whose earlier leases of this task an anchor scavenged. */
  #timedOutWorkers(replica: ThreadReplica, task: TaskInfo): string[] {
    const workers: string[] = []
    for (const env of replica.envelopes()) {
      if (env.kind !== 'RELEASE' || env.payload.task !== task.id || env.payload.reason !== 'lease-expired')
        continue
      if (replica.state.rejected.has(env.id)) continue
      const claim = replica.get(env.payload.claim)
      if (claim) workers.push(claim.sender)
    }
    return workers
  }

  /**
   * Scavenges a lease whose heartbeats stopped (by this anchor's clock), or that has been held
   * longer than `maxLeaseHoldMs` (A5). Only an anchor's RELEASE counts against the worker.
   */
  #scavengeLater(replica: ThreadReplica, taskId: string, claim: Cid): void {
    const renewedBy = replica.state.tasks.get(taskId)?.lease?.renewedBy
    this.#duty(replica.thread, `release:${claim}:${renewedBy}`, this.#anchorDelay(replica), async () => {
      const lease = replica.state.tasks.get(taskId)?.lease
      if (lease?.claim !== claim || lease.renewedBy !== renewedBy) return false
      await this.publish('RELEASE', replica.thread, { task: taskId, claim, reason: 'lease-expired' })
      return true
    })
  }

  /** Arms the hold limit of a lease this anchor watches. */
  #watchHold(replica: ThreadReplica, taskId: string, claim: Cid): void {
    if (!this.#once(replica.thread, `hold:${claim}`)) return
    this.#after(
      this.tuning.maxLeaseHoldMs,
      async () => {
        this.#duty(replica.thread, `release:${claim}:hold`, 0, async () => {
          if (replica.state.tasks.get(taskId)?.lease?.claim !== claim) return false
          await this.publish('RELEASE', replica.thread, { task: taskId, claim, reason: 'lease-expired' })
          return true
        })
      },
      replica.thread,
    )
  }

  /** Finalizes a verified result once the challenge window has passed by this anchor's clock (A6). */
  #finalizeLater(replica: ThreadReplica, taskId: string, commitId: Cid): void {
    const task = replica.state.tasks.get(taskId)
    if (task?.commit?.id !== commitId) return
    this.#duty(replica.thread, `finalize:${commitId}`, this.#anchorDelay(replica), async () => {
      const current = replica.state.tasks.get(taskId)
      const commit = current?.commit
      if (!current || commit?.id !== commitId || current.state !== 'VERIFIED') return false
      // The first K_result passes in the log's order: enough, and bounded whatever else voted.
      const passing = [...commit.votes.values()]
        .filter((vote) => vote.verdict === 'pass')
        .slice(0, current.kResult)
        .map((vote) => replica.get(vote.env)!)
      await this.publish('FINALIZE', replica.thread, {
        task: taskId,
        commit: commitId,
        attestations: passing as Envelope[],
      })
      return true
    })
  }

  // worker ----------------------------------------------------------------

  /**
   * Arms a claim attempt after a random back-off whenever the task is ready, unless this worker
   * already has a CLAIM of the task's current round in the log (a CLAIM the log refused — a re-fold
   * placed it before the task was claimable — does not count). The CLAIM is a request: the lease
   * starts with the anchor's GRANT.
   */
  #claimLater(replica: ThreadReplica, taskId: string): void {
    const task = replica.state.tasks.get(taskId)
    if (!task || !this.capabilities.has(task.spec.capability)) return
    const key = `claim:${replica.thread}:${taskId}`
    if (this.#duties.has(key)) return
    this.#duties.add(key)
    this.#timersOf(replica.thread).duties.add(key)
    this.#after(
      this.#options.random.next() * this.tuning.claimBackoffMs,
      async () => {
        this.#duties.delete(key)
        this.#threadTimers.get(replica.thread)?.duties.delete(key)
        const current = replica.state.tasks.get(taskId)
        if (!this.#roles.worker || current?.state !== 'DECIDED' || current.lease) return
        if (!current.parents.every((parent) => replica.state.tasks.get(parent)?.state === 'FINAL')) return
        for (const [id, round] of current.requests) {
          if (round === current.round && replica.get(id)?.sender === this.did) return
        }
        const cost = this.capabilities.get(current.spec.capability)!.manifest.price
        const payload = { task: taskId, leaseTtlMs: this.tuning.leaseTtlMs, cost, etaMs: this.tuning.workMs }
        await this.publish('CLAIM', replica.thread, payload)
      },
      replica.thread,
    )
  }

  #workIfMine(replica: ThreadReplica, taskId: string, claim: Cid): void {
    const task = replica.state.tasks.get(taskId)
    if (!task?.lease || task.lease.claim !== claim || task.lease.worker !== this.did) return
    if (!this.#once(replica.thread, `work:${claim}`)) return
    const heartbeatEvery = Math.max(1, Math.floor(task.lease.ttlMs / 3))
    const beat = (): void => {
      this.#after(
        heartbeatEvery,
        async () => {
          const current = replica.state.tasks.get(taskId)
          if (current?.lease?.claim !== claim) return
          await this.publish(
            'HEARTBEAT',
            replica.thread,
            { task: taskId, claim, progress: this.#running.get(claim)?.progress ?? 0 },
            { fence: claim },
          )
          beat()
        },
        replica.thread,
      )
    }
    beat()
    this.#after(this.tuning.workMs, () => this.#commit(replica, taskId, claim), replica.thread)
  }

  async #commit(replica: ThreadReplica, taskId: string, claim: Cid): Promise<void> {
    const task = replica.state.tasks.get(taskId)
    if (!this.#roles.worker || task?.lease?.claim !== claim) return
    const refs = taskInputRefs(replica.state, task)
    const inputs = await this.#inputsOf(replica, task)
    if (!inputs || !refs) return
    const work: RunningWork = {
      thread: replica.thread,
      task: taskId,
      controller: new AbortController(),
      progress: 0,
    }
    this.#running.set(claim, work)
    let output: Uint8Array
    try {
      output = await this.capabilities.run(task.spec.capability, inputs, {
        signal: work.controller.signal,
        onProgress: (perMille) => {
          work.progress = Number.isFinite(perMille) ? Math.min(1000, Math.max(0, Math.round(perMille))) : 0
        },
      })
    } catch (error) {
      // Work stopped because its lease ended is not an error; anything else is the handler's.
      if (work.controller.signal.aborted) return
      throw error
    } finally {
      if (this.#running.get(claim) === work) this.#running.delete(claim)
    }
    // The lease may have ended while the work ran: what it gave is no longer this worker's to commit.
    if (work.controller.signal.aborted || replica.state.tasks.get(taskId)?.lease?.claim !== claim) return
    const cid = await this.#options.artifacts.put(output)
    const inputBytes = inputs.reduce((sum, bytes) => sum + bytes.length, 0)
    await this.publish(
      'COMMIT',
      replica.thread,
      {
        task: taskId,
        claim,
        inputs: refs,
        outputs: [cid],
        telemetry: {
          cpuMs: 1,
          wallMs: this.tuning.workMs,
          memoryBytes: 0,
          inputBytes,
          outputBytes: output.length,
        },
        verifyBounty: this.tuning.verifyBounty,
      },
      { fence: claim, refs: [cid] },
    )
  }

  async #fetchAll(refs: readonly Cid[]): Promise<Uint8Array[] | undefined> {
    const result: Uint8Array[] = []
    for (const ref of refs) {
      const bytes = await this.#options.artifacts.get(ref)
      if (!bytes) return undefined
      result.push(bytes)
    }
    return result
  }

  /** Input bytes of a task: NEED inputs by CID, `task:x` as the final outputs of task x. */
  #inputsOf(replica: ThreadReplica, task: TaskInfo): Promise<Uint8Array[] | undefined> {
    return fetchTaskInputs(replica.state, task, (cid) => this.#options.artifacts.get(cid))
  }

  // verifier: results ----------------------------------------------------

  /** What a commit's outputs should be: the capability re-run on the task's inputs (cached). */
  async #expectedOutputs(replica: ThreadReplica, task: TaskInfo): Promise<Cid[] | undefined> {
    const commit = task.commit
    if (!commit) return undefined
    // A commit that names its inputs is judged on exactly those (whatever this peer's view of the
    // parents now); one that does not, on the task's inputs as this peer sees them. Keyed by the
    // inputs: a parent reopened and finalized again changes what the task should give.
    const refs = commit.inputs ? [...commit.inputs] : taskInputRefs(replica.state, task)
    if (!refs) return undefined
    const key = `${commit.id}|${refs.join(',')}`
    const memo = this.#memoOf(replica.thread)
    const cached = memo.expected.get(key)
    if (cached) return cached
    if (!this.capabilities.has(task.spec.capability)) return undefined
    const inputs = await this.#fetchAll(refs)
    if (!inputs) return undefined
    const output = await this.capabilities.run(task.spec.capability, inputs)
    const expected = [artifactCid(output)]
    memo.expected.set(key, expected)
    const inputBytes = inputs.reduce((sum, bytes) => sum + bytes.length, 0)
    memo.measured.set(commit.id, { inputBytes, outputBytes: output.length })
    return expected
  }

  async #attestResult(replica: ThreadReplica, taskId: string, commitId: Cid): Promise<void> {
    const task = replica.state.tasks.get(taskId)
    const commit = task?.commit
    const rules = threadParams(replica.state, this.#params)
    if (!task || commit?.id !== commitId || !inCommittee(commit.committee, this.did, rules)) return
    // Already voted (e.g. before a restart, whose memory of what it did is gone): never vote twice.
    if (commit.votes.has(this.did) || !this.#once(replica.thread, `attest:${commitId}`)) return
    const expected = await this.#expectedOutputs(replica, task)
    if (!expected) return
    let honest: 'pass' | 'fail' = sameRefs(expected, commit.outputs) ? 'pass' : 'fail'
    const policyHash = this.#options.policyHash ?? BUILTIN_POLICY_HASH
    const digest = (v: string) => evalDigestOf({ commit: commitId, outputs: commit.outputs }, v, policyHash)
    let evalDigest: string | undefined
    const gates = this.#options.policy
    if (gates) {
      const decision = gates.commit(replica.get(commitId) as Envelope<'COMMIT'>, {
        outputsMatch: honest === 'pass',
        measured: this.#memoOf(replica.thread).measured.get(commitId) ?? {},
        taskClass: task.spec.capability,
      })
      honest = decision.allowed ? 'pass' : 'fail'
      evalDigest = decision.evalDigest
    }
    const verdict = honest
    evalDigest ??= digest(verdict)
    await this.publish(
      'ATTEST',
      replica.thread,
      { task: taskId, commit: commitId, verdict, evalDigest },
      { evalDigest },
    )
  }

  /**
   * The outputs a challenger of `task`'s COMMIT expects: the capability's result on the commit's
   * inputs (undefined when it cannot tell). The one seam the simulator's Byzantine agents change
   * (sim/byzantine.ts); nothing else of theirs runs on this path.
   */
  protected challengeExpectation(replica: ThreadReplica, task: TaskInfo): Promise<Cid[] | undefined> {
    return this.#expectedOutputs(replica, task)
  }

  async #challengeIfWrong(replica: ThreadReplica, taskId: string, commitId: Cid): Promise<void> {
    const task = replica.state.tasks.get(taskId)
    const commit = task?.commit
    if (!task || commit?.id !== commitId || commit.worker === this.did) return
    const expected = await this.challengeExpectation(replica, task)
    if (!expected || sameRefs(expected, commit.outputs)) return
    if (!this.#once(replica.thread, `challenge:${commitId}`)) return
    await this.publish('CHALLENGE', replica.thread, {
      task: taskId,
      commit: commitId,
      proof: { type: 'output-mismatch', expected },
      bond: Math.max(this.tuning.challengeBond, requiredBond({ type: 'output-mismatch', expected })),
    })
  }

  /**
   * Judges a challenge (A6): in bootstrap an anchor is the judge; outside it, verifiers of the pool
   * are — never of a challenge they made, of their own work, or of a result they passed.
   */
  async #judgeChallenge(
    replica: ThreadReplica,
    taskId: string,
    commitId: Cid,
    challenge: Cid,
  ): Promise<void> {
    const rules = threadParams(replica.state, this.#params)
    const anchor = this.roles.decider === true
    if (anchor ? !rules.bootstrap : rules.bootstrap || !isEligibleVerifier(rules, this.did)) return
    const task = replica.state.tasks.get(taskId)
    const commit = task?.commit
    if (!task || commit?.id !== commitId || commit.worker === this.did) return
    const challengeEnv = replica.get(challenge) as Envelope<'CHALLENGE'> | undefined
    if (!challengeEnv || challengeEnv.sender === this.did) return
    if (!anchor && commit.votes.get(this.did)?.verdict === 'pass') return
    const proof = challengeEnv.payload.proof
    // Each proof type is judged by its own bounded check; only a proof that the result itself is
    // wrong invalidates it (a contradiction between attestations is the equivocator's fault, settled
    // by slashing, not by throwing away a right result).
    let upheld = false
    if (proof.type === 'output-mismatch') {
      const expected = await this.#expectedOutputs(replica, task)
      upheld = expected !== undefined && !sameRefs(expected, commit.outputs)
    } else if (proof.type === 'schema-violation') {
      // Only the worker's fault counts: an output that violates the type the plan named and is not
      // what the capability gives on those inputs. When the capability itself gives it, the plan
      // named the wrong type (the planner's doing), and the worker's right result stands.
      const output = commit.outputs.includes(proof.output)
        ? await this.#options.artifacts.get(proof.output)
        : undefined
      if (output !== undefined && violatesJsonSchema(task.spec.produces, output)) {
        const expected = await this.#expectedOutputs(replica, task)
        upheld = expected !== undefined && !sameRefs(expected, commit.outputs)
      }
    } else if (proof.type === 'missing-artifact') {
      upheld =
        commit.outputs.includes(proof.ref) && (await this.#options.artifacts.get(proof.ref)) === undefined
    }
    if (!upheld || !this.#once(replica.thread, `invalidate:${challenge}`)) return
    await this.publish('INVALIDATE', replica.thread, { task: taskId, commit: commitId, challenge })
  }
}

function sameRefs(a: readonly Cid[], b: readonly Cid[]): boolean {
  return a.length === b.length && a.every((ref, index) => ref === b[index])
}
