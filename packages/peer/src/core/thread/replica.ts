/**
 * A replica of one thread: its envelope log (a set, kept sorted in the protocol's total order),
 * the folded state, the effects of each change, and the time-driven duties of a peer.
 *
 * @example
 * ```ts
 * const replica = new ThreadReplica(need, params)
 * const { applied, effects } = replica.receive(verifiedEnvelope, clock.now())
 * for (const effect of [...effects, ...replica.tick(clock.now())]) roles.react(effect)
 * ```
 */
import { compareEnvelopes, hashCanonical } from '../codec.ts'
import { PlanStore } from '../plan/index.ts'
import type { AnyEnvelope, Cid, PlanFact } from '../types.ts'
import type { NetworkParams } from './params.ts'
import { applyEnvelope, type DecideInfo, emptyThreadState, type TaskInfo, type ThreadState } from './state.ts'

/** Something that happened in a thread that a role may act on. */
export type ThreadEffect =
  | { type: 'need' }
  | { type: 'proposal'; proposal: string }
  | { type: 'plan-quorum'; proposal: string }
  | { type: 'decided'; decide: DecideInfo }
  /** DECIDEs of different proposals are held (after a partition): the merge rule has picked `winner`. */
  | { type: 'decide-conflict'; winner: DecideInfo; proposals: string[] }
  | { type: 'task-ready'; task: string }
  | { type: 'task-claimed'; task: string; claim: Cid }
  | { type: 'task-committed'; task: string; commit: Cid }
  | { type: 'task-verified'; task: string; commit: Cid }
  | { type: 'task-final'; task: string; commit: Cid }
  | { type: 'task-reopened'; task: string; round: number }
  | { type: 'challenged'; task: string; commit: Cid; challenge: Cid }
  // Time-driven (from tick):
  | { type: 'bid-window-closed' }
  | { type: 'lease-expired'; task: string; claim: Cid }
  | { type: 'finalize-due'; task: string; commit: Cid }

export interface ReceiveResult {
  /** False when the envelope was already in the log. */
  added: boolean
  /** Why the envelope did not apply (it stays in the log and may apply after a later refold). */
  rejected?: string
  effects: ThreadEffect[]
}

function isReady(state: ThreadState, task: TaskInfo): boolean {
  if (task.state !== 'DECIDED') return false
  if (state.winner === undefined || state.winner.proposal !== task.proposal) return false
  return task.parents.every((parent) => state.tasks.get(parent)?.state === 'FINAL')
}

/** Small summary of a state whose changes are the effects. */
function milestones(state: ThreadState): Map<string, string> {
  const marks = new Map<string, string>()
  if (state.need) marks.set('need', state.need.env)
  for (const id of state.proposals.keys()) marks.set(`proposal:${id}`, id)
  if (state.quorum) marks.set('quorum', state.quorum.proposal)
  if (state.winner) marks.set('winner', state.winner.env)
  const proposals = new Set([...state.decides.values()].map((decide) => decide.proposal))
  if (proposals.size > 1) marks.set('conflict', [...proposals].sort().join(','))
  for (const task of state.tasks.values()) {
    marks.set(
      `task:${task.id}`,
      `${task.state}|${task.round}|${task.commit?.id ?? ''}|${task.lease?.claim ?? ''}`,
    )
    if (isReady(state, task)) marks.set(`ready:${task.id}`, String(task.round))
    if (task.commit)
      for (const challenge of task.commit.challenges.keys()) marks.set(`challenge:${challenge}`, task.id)
  }
  return marks
}

function diff(state: ThreadState, before: Map<string, string>, after: Map<string, string>): ThreadEffect[] {
  const effects: ThreadEffect[] = []
  for (const [key, value] of after) {
    if (before.get(key) === value) continue
    if (key === 'need') effects.push({ type: 'need' })
    else if (key.startsWith('proposal:')) effects.push({ type: 'proposal', proposal: value })
    else if (key === 'quorum') effects.push({ type: 'plan-quorum', proposal: value })
    else if (key === 'winner') effects.push({ type: 'decided', decide: state.winner! })
    else if (key === 'conflict')
      effects.push({ type: 'decide-conflict', winner: state.winner!, proposals: value.split(',') })
    else if (key.startsWith('ready:')) effects.push({ type: 'task-ready', task: key.slice(6) })
    else if (key.startsWith('challenge:')) {
      const task = state.tasks.get(value)!
      effects.push({ type: 'challenged', task: value, commit: task.commit!.id, challenge: key.slice(10) })
    } else if (key.startsWith('task:')) {
      const task = state.tasks.get(key.slice(5))!
      const previousRound = Number(before.get(key)?.split('|')[1] ?? task.round)
      if (task.round !== previousRound)
        effects.push({ type: 'task-reopened', task: task.id, round: task.round })
      if (task.state === 'CLAIMED' && task.lease) {
        effects.push({ type: 'task-claimed', task: task.id, claim: task.lease.claim })
      } else if (task.commit && task.state === 'COMMITTED') {
        effects.push({ type: 'task-committed', task: task.id, commit: task.commit.id })
      } else if (task.commit && task.state === 'VERIFIED') {
        effects.push({ type: 'task-verified', task: task.id, commit: task.commit.id })
      } else if (task.commit && task.state === 'FINAL') {
        effects.push({ type: 'task-final', task: task.id, commit: task.commit.id })
      }
    }
  }
  return effects
}

export class ThreadReplica {
  readonly thread: string
  readonly params: NetworkParams
  #log: AnyEnvelope[] = []
  #byId = new Map<Cid, AnyEnvelope>()
  #receivedAt = new Map<Cid, number>()
  #state: ThreadState
  #fired = new Set<string>()
  #plan: PlanStore | undefined
  #refolds = 0

  constructor(thread: string, params: NetworkParams) {
    this.thread = thread
    this.params = params
    this.#state = emptyThreadState(thread)
  }

  /** The folded state. Read-only by contract: never mutate it. */
  get state(): Readonly<ThreadState> {
    return this.#state
  }

  /** Number of envelopes held. */
  get size(): number {
    return this.#log.length
  }

  /** How many times an out-of-order arrival made the replica re-fold its log. */
  get refolds(): number {
    return this.#refolds
  }

  has(id: Cid): boolean {
    return this.#byId.has(id)
  }

  /** An envelope of the log by id. */
  get(id: Cid): AnyEnvelope | undefined {
    return this.#byId.get(id)
  }

  /** The log in total order. */
  envelopes(): readonly AnyEnvelope[] {
    return this.#log
  }

  /** Local receipt time of an envelope (ms on the injected clock). */
  receivedAt(id: Cid): number | undefined {
    return this.#receivedAt.get(id)
  }

  /**
   * Adds a verified envelope received at `atMs` (the caller has checked its id and signature).
   * Idempotent: an envelope already held changes nothing.
   */
  receive(env: AnyEnvelope, atMs: number): ReceiveResult {
    if (this.#byId.has(env.id)) return { added: false, effects: [] }
    const before = milestones(this.#state)
    this.#byId.set(env.id, env)
    this.#receivedAt.set(env.id, atMs)
    this.#plan = undefined
    const last = this.#log[this.#log.length - 1]
    if (last === undefined || compareEnvelopes(last, env) < 0) {
      this.#log.push(env)
      const reason = applyEnvelope(this.#state, env, this.params)
      if (reason === undefined) this.#state.accepted += 1
      else this.#state.rejected.set(env.id, reason)
    } else {
      let low = 0
      let high = this.#log.length
      while (low < high) {
        const middle = (low + high) >> 1
        if (compareEnvelopes(this.#log[middle]!, env) < 0) low = middle + 1
        else high = middle
      }
      this.#log.splice(low, 0, env)
      this.#refold()
    }
    const rejected = this.#state.rejected.get(env.id)
    const effects = diff(this.#state, before, milestones(this.#state))
    return rejected === undefined ? { added: true, effects } : { added: true, rejected, effects }
  }

  /**
   * Adds many envelopes at once and folds once (replay, restore, sync from a peer). `atMs` is one
   * receipt time for all, or a function giving each envelope's.
   */
  receiveAll(envs: Iterable<AnyEnvelope>, atMs: number | ((env: AnyEnvelope) => number)): ThreadEffect[] {
    const before = milestones(this.#state)
    let added = false
    for (const env of envs) {
      if (this.#byId.has(env.id)) continue
      this.#byId.set(env.id, env)
      this.#receivedAt.set(env.id, typeof atMs === 'number' ? atMs : atMs(env))
      this.#log.push(env)
      added = true
    }
    if (!added) return []
    this.#log.sort(compareEnvelopes)
    this.#plan = undefined
    this.#refold()
    return diff(this.#state, before, milestones(this.#state))
  }

  #refold(): void {
    this.#refolds += 1
    const state = emptyThreadState(this.thread)
    for (const env of this.#log) {
      const reason = applyEnvelope(state, env, this.params)
      if (reason === undefined) state.accepted += 1
      else state.rejected.set(env.id, reason)
    }
    this.#state = state
  }

  /**
   * Time-driven duties due at `nowMs`, each reported once: the bid window closing, leases whose
   * heartbeats stopped, results whose challenge window has elapsed.
   */
  tick(nowMs: number): ThreadEffect[] {
    const effects: ThreadEffect[] = []
    for (const [key, dueMs, effect] of this.#duties()) {
      if (dueMs <= nowMs && !this.#fired.has(key)) {
        this.#fired.add(key)
        effects.push(effect)
      }
    }
    return effects
  }

  /** The earliest time a duty not yet reported falls due, if any. */
  nextDueMs(): number | undefined {
    let next: number | undefined
    for (const [key, dueMs] of this.#duties()) {
      if (!this.#fired.has(key) && (next === undefined || dueMs < next)) next = dueMs
    }
    return next
  }

  *#duties(): Generator<[string, number, ThreadEffect]> {
    const state = this.#state
    if (state.need) {
      const at = this.#receivedAt.get(state.need.env) ?? 0
      yield [`bid:${state.need.env}`, at + state.need.bidWindowMs, { type: 'bid-window-closed' }]
    }
    for (const task of state.tasks.values()) {
      if (task.lease) {
        const at = this.#receivedAt.get(task.lease.renewedBy) ?? 0
        yield [
          `lease:${task.lease.renewedBy}`,
          at + task.lease.ttlMs + this.params.leaseGraceMs,
          { type: 'lease-expired', task: task.id, claim: task.lease.claim },
        ]
      }
      const commit = task.commit
      if (commit?.verifiedBy !== undefined && task.state === 'VERIFIED') {
        const at = this.#receivedAt.get(commit.verifiedBy) ?? 0
        yield [
          `final:${commit.id}`,
          at + this.params.tChallengeMs,
          { type: 'finalize-due', task: task.id, commit: commit.id },
        ]
      }
    }
  }

  /** Forgets which duties were reported (after a restart, duties are re-evaluated). */
  resetDuties(): void {
    this.#fired.clear()
  }

  /**
   * The thread's plan store (PROTOCOL.md §5): the facts the fold produced plus, for every task of
   * a proposal that lost the merge, an `orphanedByEpoch` annotation naming the winning epoch.
   */
  plan(): PlanStore {
    if (this.#plan) return this.#plan
    const store = new PlanStore()
    store.applyAll(this.#state.facts)
    const winner = this.#state.winner
    if (winner) {
      for (const task of this.#state.tasks.values()) {
        if (task.proposal === winner.proposal) continue
        const orphan: PlanFact = {
          op: 'ANNOTATE',
          task: task.id,
          key: 'orphanedByEpoch',
          value: String(winner.epoch),
          thread: this.thread,
          lamport: winner.lamport,
          actor: winner.decider,
        }
        store.apply(orphan)
      }
    }
    this.#plan = store
    return store
  }

  /** Artifacts of attested work on orphaned branches that stay usable (RECONCILE.salvaged). */
  salvaged(): Cid[] {
    const winner = this.#state.winner
    const refs = new Set<Cid>()
    for (const task of this.#state.tasks.values()) {
      if (winner && task.proposal === winner.proposal) continue
      if (task.commit?.verifiedBy !== undefined) for (const ref of task.commit.outputs) refs.add(ref)
    }
    return [...refs].sort()
  }

  /** A deterministic, order-independent plain object of the whole state. */
  canonical(): unknown {
    return canonicalThreadState(this.#state, this.plan())
  }

  /** Hex SHA-256 of the canonical state: equal on every replica holding the same envelopes. */
  stateHash(): string {
    return hashCanonical(this.canonical())
  }
}

function byKey<T>(entries: Iterable<[string, T]>): [string, T][] {
  return [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}

function canonicalTask(task: TaskInfo): unknown {
  const commit = (c: NonNullable<TaskInfo['commit']>) => ({
    id: c.id,
    worker: c.worker,
    claim: c.claim,
    outputs: [...c.outputs],
    round: c.round,
    committee: [...c.committee],
    votes: byKey(c.votes).map(([did, vote]) => [did, vote.verdict, vote.env, vote.evalDigest]),
    verifiedBy: c.verifiedBy ?? null,
    finalizedBy: c.finalizedBy ?? null,
    challenges: byKey(c.challenges).map(([id, ch]) => [id, ch.challenger, ch.proofType]),
    invalidations: byKey(c.invalidations).map(([id, voters]) => [id, [...voters].sort()]),
    outcome: c.outcome ?? null,
  })
  return {
    id: task.id,
    proposal: task.proposal,
    round: task.round,
    state: task.state,
    kResult: task.kResult,
    lease: task.lease
      ? { claim: task.lease.claim, worker: task.lease.worker, renewedBy: task.lease.renewedBy }
      : null,
    commit: task.commit ? commit(task.commit) : null,
    pastCommits: task.pastCommits.map(commit),
  }
}

/** The canonical form of a thread state, as hashed by {@link ThreadReplica.stateHash}. */
export function canonicalThreadState(state: ThreadState, plan: PlanStore): unknown {
  return {
    thread: state.thread,
    need: state.need?.env ?? null,
    proposals: byKey(state.proposals).map(([id, p]) => [id, p.env, p.planner]),
    planVotes: byKey(state.planVotes).map(([id, votes]) => [
      id,
      byKey(votes).map(([did, vote]) => [did, vote.verdict, vote.env]),
    ]),
    quorum: state.quorum
      ? { proposal: state.quorum.proposal, attestations: [...state.quorum.attestations] }
      : null,
    decides: [...state.decides.keys()].sort(),
    winner: state.winner?.env ?? null,
    tasks: byKey(state.tasks).map(([, task]) => canonicalTask(task)),
    plan: plan.canonicalState(),
    reconciles: [...state.reconciles].sort(),
    checkpoints: [...state.checkpoints].sort(),
    equivocations: state.equivocations.map((e) => [e.sender, e.kind, e.subject, ...e.envelopes]),
    accepted: state.accepted,
    rejected: byKey(state.rejected),
  }
}
