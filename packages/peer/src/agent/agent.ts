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
import type { ConsensusStore } from '../core/consensus.ts'
import { BUILTIN_POLICY_HASH } from '../core/digest.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import { fetchTaskInputs, taskInputRefs } from '../core/thread/inputs.ts'
import { isAnchor, type NetworkParams, withPool } from '../core/thread/params.ts'
import { refusalCode } from '../core/thread/refusals.ts'
import { type ThreadEffect, ThreadReplica } from '../core/thread/replica.ts'
import type { NeedInfo, TaskInfo, ThreadState } from '../core/thread/state.ts'
import type { AnyEnvelope, Cid, Envelope, Kind, PayloadByKind, UnsignedEnvelope } from '../core/types.ts'
import { GENESIS_EPOCH, PROTOCOL_VERSION } from '../core/types.ts'
import type { Identity } from '../crypto/ed25519.ts'
import { signEnvelope } from '../crypto/envelopes.ts'
import type { PolicyGates } from '../policy/gates.ts'
import { builtinCapabilities, type CapabilityRegistry } from './capabilities.ts'
import type { AgentClock, AgentRandom, EnvelopeSink } from './ports.ts'
import type { RoleContext } from './roles/context.ts'
import { DeciderRole } from './roles/decider.ts'
import { PlannerRole } from './roles/planner.ts'
import { RequesterRole } from './roles/requester.ts'
import { VerifierRole } from './roles/verifier.ts'
import { WorkerRole } from './roles/worker.ts'
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
export interface ThreadMemo {
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
export interface RunningWork {
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
  /** The roles, each with its own state, working through one context (roles/context.ts). */
  readonly #requester: RequesterRole
  readonly #planner: PlannerRole
  readonly #verifier: VerifierRole
  readonly #decider: DeciderRole
  readonly #worker: WorkerRole
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
    const agent = this
    const context: RoleContext = {
      get did() {
        return agent.did
      },
      get tuning() {
        return agent.tuning
      },
      get capabilities() {
        return agent.capabilities
      },
      get options() {
        return agent.#options
      },
      get params() {
        return agent.#params
      },
      get roles() {
        return agent.#roles
      },
      publish: (kind, thread, payload, extra) => agent.publish(kind, thread, payload, extra),
      once: (thread, key) => agent.#once(thread, key),
      after: (delayMs, action, thread) => agent.#after(delayMs, action, thread),
      duty: (thread, key, delayMs, act, round) => agent.#duty(thread, key, delayMs, act, round),
      timersOf: (thread) => agent.#timersOf(thread),
      memoOf: (thread) => agent.#memoOf(thread),
      anchorDelay: (replica) => agent.#anchorDelay(replica),
      duties: this.#duties,
      threadTimers: this.#threadTimers,
      running: this.#running,
      expectedOutputs: (replica, task) => agent.#expectedOutputs(replica, task),
      challengeExpectation: (replica, task) => agent.challengeExpectation(replica, task),
      inputsOf: (replica, task) => agent.#inputsOf(replica, task),
    }
    this.#requester = new RequesterRole(context, {
      draftNeed: (payload) => agent.#unsigned('NEED', '', payload, 1, {}, GENESIS_EPOCH),
      sign: (unsigned) => agent.#sign(unsigned),
      place: (thread, env) => agent.#take(agent.#replicaFor(thread), env),
    })
    this.#planner = new PlannerRole(context)
    this.#verifier = new VerifierRole(context)
    this.#decider = new DeciderRole(context)
    this.#worker = new WorkerRole(context)
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
      if (env.kind === 'DECIDE' && env.sender === this.did) this.#decider.noteDecide(env.ts)
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
  post(request: NeedRequest, options: { signal?: AbortSignal } = {}): Promise<string> {
    return this.#requester.post(request, options)
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
        if (roles.planner) this.#planner.planLater(replica)
        return
      case 'proposal':
        if (roles.verifier) await this.#verifier.attestPlan(replica, effect.proposal)
        return
      case 'plan-quorum':
        if (roles.decider) await this.#decider.decide(replica, effect.proposal, 1)
        return
      case 'task-ready':
        if (roles.worker) this.#worker.claimLater(replica, effect.task)
        return
      case 'claim-requested':
        if (roles.decider) this.#decider.grantLater(replica, effect.task)
        return
      case 'task-claimed':
        if (roles.decider) this.#decider.watchHold(replica, effect.task, effect.claim)
        if (roles.worker) this.#worker.workIfMine(replica, effect.task, effect.claim)
        return
      case 'task-committed':
        if (roles.verifier) await this.#verifier.attestResult(replica, effect.task, effect.commit)
        return
      case 'task-verified':
      case 'task-final':
        if (roles.verifier) await this.#verifier.challengeIfWrong(replica, effect.task, effect.commit)
        return
      case 'challenged':
        if (roles.verifier || roles.decider)
          await this.#verifier.judgeChallenge(replica, effect.task, effect.commit, effect.challenge)
        return
      case 'lease-expired':
        if (roles.decider) this.#decider.scavengeLater(replica, effect.task, effect.claim)
        return
      case 'finalize-due':
        if (roles.decider) this.#decider.finalizeLater(replica, effect.task, effect.commit)
        return
      case 'decided':
      case 'decide-conflict':
        if (roles.decider) await this.#decider.reconcile(replica)
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

  // verifier: plans -------------------------------------------------------

  // anchor: decisions -------------------------------------------------------

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

  /** How many leases of this task each worker held before (every accepted GRANT of it). */
  /** Workers whose earlier leases of this task an anchor scavenged. */
  /** Arms the hold limit of a lease this anchor watches. */
  /** Finalizes a verified result once the challenge window has passed by this anchor's clock (A6). */
  // worker ----------------------------------------------------------------

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

  /**
   * The outputs a challenger of `task`'s COMMIT expects: the capability's result on the commit's
   * inputs (undefined when it cannot tell). The one seam the simulator's Byzantine agents change
   * (sim/byzantine.ts); nothing else of theirs runs on this path.
   */
  protected challengeExpectation(replica: ThreadReplica, task: TaskInfo): Promise<Cid[] | undefined> {
    return this.#expectedOutputs(replica, task)
  }
}
