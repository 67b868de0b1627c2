/**
 * A replica of one thread: its envelope log (a set, kept sorted in the protocol's total order),
 * the folded state, the effects of each change, and the time-driven duties of a peer.
 *
 * Placement (A2, A4, docs/PROTOCOL.md §6.2): Lamport time is per thread. An envelope whose
 * `lamport` lies more than `maxLamportStep` above every lamport already placed in the log (above 0,
 * for the NEED), or that names by id an envelope not placed yet, cannot be placed: it waits,
 * unfolded and invisible to the state, in a bounded pending pool until the gap closes. Honest
 * envelopes always close their own gaps (each carries one more than the highest lamport its sender
 * had seen, and names only what its sender had), so only a sender that jumps ahead or names what
 * does not exist waits for ever — and is evicted first when the pool is full (the sender with the
 * most pending envelopes loses its newest).
 *
 * @example
 * ```ts
 * const replica = new ThreadReplica(need.thread, params)
 * const { applied, effects } = replica.receive(verifiedEnvelope, clock.now())
 * for (const effect of [...effects, ...replica.tick(clock.now())]) roles.react(effect)
 * ```
 */
import { compareEnvelopes, hashCanonical } from '../codec.ts'
import { PlanStore } from '../plan/index.ts'
import type { AnyEnvelope, Cid, Did, PlanFact } from '../types.ts'
import { isAnchor, type NetworkParams } from './params.ts'
import { refusalCode } from './refusals.ts'
import {
  type ApplyOutcome,
  applyEnvelope,
  cloneThreadState,
  type DecideInfo,
  emptyThreadState,
  type TaskInfo,
  type ThreadState,
} from './state.ts'

/** Something that happened in a thread that a role may act on. */
export type ThreadEffect =
  | { type: 'need' }
  | { type: 'proposal'; proposal: Cid }
  | { type: 'plan-quorum'; proposal: Cid }
  | { type: 'decided'; decide: DecideInfo }
  /** DECIDEs of different proposals are held (after a partition): the merge rule has picked `winner`. */
  | { type: 'decide-conflict'; winner: DecideInfo; proposals: Cid[] }
  | { type: 'task-ready'; task: string }
  /** A CLAIM of the task's current round was folded (a request for the lease authority). */
  | { type: 'claim-requested'; task: string; claim: Cid }
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
  /** False when the envelope was already held (in the log or pending). */
  added: boolean
  /** The envelope waits in the pending pool (A4): it is not folded yet. */
  pending?: boolean
  /** The pending pool was full and this envelope was the one evicted: it is not held at all. */
  evicted?: boolean
  /** Why the envelope did not apply (it stays in the log and may apply after a later refold). */
  rejected?: string
  effects: ThreadEffect[]
  /** Envelopes placed into the log by this call: the envelope itself and any pending ones it released. */
  placed: AnyEnvelope[]
}

/** Options of a {@link ThreadReplica}. */
export interface ThreadReplicaOptions {
  /** Most envelopes waiting for placement; beyond it the busiest sender's newest is evicted. @default 1 024 */
  maxPendingEnvelopes?: number
  /** Called with each envelope evicted from the pending pool (so that it can be fetched again later). @default none */
  onEvict?: (env: AnyEnvelope) => void
}

/** Default of {@link ThreadReplicaOptions.maxPendingEnvelopes}. */
export const DEFAULT_MAX_PENDING_ENVELOPES = 1_024

/**
 * Placed envelopes between two fold snapshots (docs/PROTOCOL.md §6.2): an envelope that sorts
 * before the end of the log is judged on the state just before its position, rebuilt from the
 * nearest snapshot by folding at most this many envelopes.
 */
export const FOLD_SNAPSHOT_SPACING = 64

/** The envelopes an envelope names by id (A2): it is placed only after them. */
export function referencesOf(env: AnyEnvelope): Cid[] {
  switch (env.kind) {
    case 'ATTEST_PLAN':
    case 'DECIDE':
      return [env.payload.proposal]
    case 'GRANT':
    case 'HEARTBEAT':
    case 'YIELD':
    case 'RELEASE':
    case 'COMMIT':
      return [env.payload.claim]
    case 'ATTEST':
    case 'FINALIZE':
    case 'CHALLENGE':
      return [env.payload.commit]
    case 'INVALIDATE':
      return [env.payload.commit, env.payload.challenge]
    default:
      return []
  }
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
    if (isReady(state, task)) {
      marks.set(`ready:${task.id}`, String(task.round))
      for (const [claim, round] of task.requests) {
        if (round === task.round) marks.set(`request:${claim}`, task.id)
      }
    }
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
    else if (key.startsWith('request:'))
      effects.push({ type: 'claim-requested', task: value, claim: key.slice(8) })
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
  #params: NetworkParams
  #log: AnyEnvelope[] = []
  #byId = new Map<Cid, AnyEnvelope>()
  #receivedAt = new Map<Cid, number>()
  #pending = new Map<Cid, AnyEnvelope>()
  #maxPending: number
  #onEvict: ((env: AnyEnvelope) => void) | undefined
  #maxLamport = 0
  #state: ThreadState
  #fired = new Set<string>()
  #plan: PlanStore | undefined
  #hash: string | undefined
  #refolds = 0
  #foldSteps = 0
  /** States folded up to `at` placed envelopes, every {@link FOLD_SNAPSHOT_SPACING} (ascending `at`). */
  #snapshots: { at: number; state: ThreadState }[] = []
  #refusals = new Map<string, number>()
  readonly #lookup = (id: Cid): AnyEnvelope | undefined => this.#byId.get(id)
  /** Per CLAIM id: the earliest anchor FINALIZE in the log naming a COMMIT of that lease (§6.8). */
  #seals = new Map<Cid, { commit: Cid; finalize: AnyEnvelope }>()
  /** Seals whose FINALIZE the fold refused: they seal nothing. */
  #voided = new Set<Cid>()
  readonly #sealOf = (claim: Cid): Cid | undefined =>
    this.#voided.has(claim) ? undefined : this.#seals.get(claim)?.commit

  constructor(thread: string, params: NetworkParams, options: ThreadReplicaOptions = {}) {
    this.thread = thread
    this.#params = params
    this.#state = emptyThreadState(thread)
    this.#maxPending = options.maxPendingEnvelopes ?? DEFAULT_MAX_PENDING_ENVELOPES
    this.#onEvict = options.onEvict
  }

  /** The network parameters (with this peer's current view of the pool). */
  get params(): NetworkParams {
    return this.#params
  }

  /**
   * Replaces this peer's view of the pool (a newer snapshot an anchor adopted). Only the
   * non-canonical plan-vote evidence depends on it; the fold of decided threads never does.
   */
  setParams(params: NetworkParams): void {
    if (params.network !== this.#params.network) throw new Error('setParams cannot change the network')
    this.#params = params
  }

  /** The folded state. Read-only by contract: never mutate it. */
  get state(): Readonly<ThreadState> {
    return this.#state
  }

  /** Number of envelopes in the log (placed). */
  get size(): number {
    return this.#log.length
  }

  /** Number of envelopes waiting for placement. */
  get pendingSize(): number {
    return this.#pending.size
  }

  /** How many times the replica re-folded its whole log (a new seal changed how earlier envelopes fold). */
  get refolds(): number {
    return this.#refolds
  }

  /** How many times an envelope was applied to a state so far: the fold's work, for budgets and tests. */
  get foldSteps(): number {
    return this.#foldSteps
  }

  /** The highest lamport placed in the log (the thread's Lamport time; 0 before the NEED). */
  get lamport(): number {
    return this.#maxLamport
  }

  /** The lamport the next envelope this peer signs in the thread carries. */
  nextLamport(): number {
    return this.#maxLamport + 1
  }

  /** Refusals of envelopes this replica received, counted once each by reason code. */
  refusals(): ReadonlyMap<string, number> {
    return this.#refusals
  }

  /** Whether the envelope is held, placed or pending. */
  has(id: Cid): boolean {
    return this.#byId.has(id) || this.#pending.has(id)
  }

  /** A placed envelope of the log by id. */
  get(id: Cid): AnyEnvelope | undefined {
    return this.#byId.get(id)
  }

  /** The log in total order (placed envelopes only). */
  envelopes(): readonly AnyEnvelope[] {
    return this.#log
  }

  /** Envelopes waiting for placement. */
  pending(): AnyEnvelope[] {
    return [...this.#pending.values()]
  }

  /** Local receipt time of an envelope (ms on the injected clock). */
  receivedAt(id: Cid): number | undefined {
    return this.#receivedAt.get(id)
  }

  /**
   * Placeable: the lamport is within reach of what is placed (A4), and every envelope it names by id
   * (A2) is placed. The placed set is thus the closure of what is held under a monotone rule, the
   * same whatever the order of arrival.
   */
  #placeable(env: AnyEnvelope): boolean {
    if (env.lamport > this.#maxLamport + this.#params.maxLamportStep) return false
    for (const id of referencesOf(env)) if (!this.#byId.has(id)) return false
    return true
  }

  /**
   * Adds a verified envelope received at `atMs` (the caller has checked its id and signature).
   * Idempotent: an envelope already held changes nothing.
   */
  receive(env: AnyEnvelope, atMs: number): ReceiveResult {
    if (this.has(env.id)) return { added: false, effects: [], placed: [] }
    this.#receivedAt.set(env.id, atMs)
    if (!this.#placeable(env)) {
      this.#hold(env)
      if (!this.#pending.has(env.id)) return { added: true, evicted: true, effects: [], placed: [] }
      return { added: true, pending: true, effects: [], placed: [] }
    }
    const before = milestones(this.#state)
    this.#mark(env)
    const released = this.#releasePending()
    this.#placeAll([env, ...released])
    const rejected = this.#state.rejected.get(env.id)
    if (rejected !== undefined) this.#countRefusal(rejected)
    for (const other of released) {
      const reason = this.#state.rejected.get(other.id)
      if (reason !== undefined) this.#countRefusal(reason)
    }
    const effects = diff(this.#state, before, milestones(this.#state))
    const placed = [env, ...released]
    return rejected === undefined
      ? { added: true, effects, placed }
      : { added: true, rejected, effects, placed }
  }

  /**
   * The effects the current state implies, as if every envelope had just arrived (time-driven ones
   * come from {@link tick}): what an agent that takes on a new role must react to in a thread it
   * already holds.
   */
  standingEffects(): ThreadEffect[] {
    return diff(this.#state, new Map(), milestones(this.#state))
  }

  /**
   * Adds many envelopes at once and folds once (replay, restore, sync from a peer). `atMs` is one
   * receipt time for all, or a function giving each envelope's.
   */
  receiveAll(envs: Iterable<AnyEnvelope>, atMs: number | ((env: AnyEnvelope) => number)): ThreadEffect[] {
    return this.receiveBatch(envs, atMs).effects
  }

  /** {@link receiveAll}, also returning the envelopes placed into the log. */
  receiveBatch(
    envs: Iterable<AnyEnvelope>,
    atMs: number | ((env: AnyEnvelope) => number),
  ): { effects: ThreadEffect[]; placed: AnyEnvelope[] } {
    const fresh = new Map<Cid, AnyEnvelope>()
    for (const env of envs) {
      if (this.has(env.id) || fresh.has(env.id)) continue
      this.#receivedAt.set(env.id, typeof atMs === 'number' ? atMs : atMs(env))
      fresh.set(env.id, env)
    }
    if (fresh.size === 0) return { effects: [], placed: [] }
    const before = milestones(this.#state)
    for (const env of fresh.values()) this.#pending.set(env.id, env)
    const placed = this.#releasePending()
    this.#trimPending()
    if (placed.length > 0) this.#placeAll(placed)
    for (const env of placed) {
      const reason = this.#state.rejected.get(env.id)
      if (reason !== undefined) this.#countRefusal(reason)
    }
    return { effects: diff(this.#state, before, milestones(this.#state)), placed }
  }

  /** Holds a placeable envelope as placed (before it is put in the log and folded). */
  #mark(env: AnyEnvelope): void {
    this.#byId.set(env.id, env)
    if (env.lamport > this.#maxLamport) this.#maxLamport = env.lamport
  }

  /**
   * Puts placed envelopes into the log and folds them (docs/PROTOCOL.md §6.2). One that sorts last is
   * applied to the state. One that sorts earlier is judged on the state just before its position,
   * rebuilt from the nearest snapshot: refused, it changes nothing (P9), so nothing after it changes
   * either and the cost is a search, a snapshot copy and at most {@link FOLD_SNAPSHOT_SPACING}
   * steps; accepted, the log is folded on from there — the work it causes. Only a new seal that
   * judges envelopes already folded (§6.8) re-folds the whole log.
   */
  #placeAll(envs: readonly AnyEnvelope[]): void {
    this.#plan = undefined
    this.#hash = undefined
    const sorted = [...envs].sort(compareEnvelopes)
    let resealed = false
    for (const env of sorted) if (this.#noteSeal(env)) resealed = true
    if (resealed) {
      for (const env of sorted) this.#insert(env)
      this.#refold()
      return
    }
    let replayed = false
    for (let i = 0; i < sorted.length; i++) {
      const env = sorted[i]!
      const at = this.#insert(env)
      if (at === this.#log.length - 1) {
        this.#outcome(this.#state, env, this.#apply(this.#state, env))
        this.#snapshotIfDue()
        continue
      }
      const state = this.#stateBefore(at)
      const reason = this.#apply(state, env)
      if (reason !== undefined) {
        this.#state.rejected.set(env.id, reason)
        for (const snapshot of this.#snapshots) if (snapshot.at > at) snapshot.at += 1
        continue
      }
      for (const rest of sorted.slice(i + 1)) this.#insert(rest)
      this.#foldOn(state, at, this.#state.rejected)
      replayed = true
      break
    }
    this.#state.accepted = this.#log.length - this.#state.rejected.size
    // A seal holds only while its FINALIZE is accepted (see #refold).
    if (this.#sealVoidedByFold() || (replayed && this.#voided.size > 0)) this.#refold()
  }

  /** Inserts an envelope into the log at its place in the total order; returns its index. */
  #insert(env: AnyEnvelope): number {
    const last = this.#log[this.#log.length - 1]
    if (last === undefined || compareEnvelopes(last, env) < 0) {
      this.#log.push(env)
      return this.#log.length - 1
    }
    let low = 0
    let high = this.#log.length
    while (low < high) {
      const middle = (low + high) >> 1
      if (compareEnvelopes(this.#log[middle]!, env) < 0) low = middle + 1
      else high = middle
    }
    this.#log.splice(low, 0, env)
    return low
  }

  #apply(state: ThreadState, env: AnyEnvelope): ApplyOutcome {
    this.#foldSteps += 1
    return applyEnvelope(state, env, this.#params, this.#lookup, this.#sealOf)
  }

  #outcome(state: ThreadState, env: AnyEnvelope, reason: ApplyOutcome): void {
    if (reason === undefined) state.rejected.delete(env.id)
    else state.rejected.set(env.id, reason)
  }

  /** A fresh copy of the state folded over the first `at` envelopes of the log. */
  #stateBefore(at: number): ThreadState {
    let base: { at: number; state: ThreadState } | undefined
    for (const snapshot of this.#snapshots) {
      if (snapshot.at > at) break
      base = snapshot
    }
    const state = base ? cloneThreadState(base.state) : emptyThreadState(this.thread)
    for (let k = base?.at ?? 0; k < at; k++) this.#apply(state, this.#log[k]!)
    return state
  }

  /**
   * Makes `state` — the fold of the log up to and including index `at` — the replica's state by
   * folding the rest of the log into it, recording outcomes in `rejected` and snapshots on the way.
   */
  #foldOn(state: ThreadState, at: number, rejected: Map<Cid, string>): void {
    state.rejected = rejected
    if (at >= 0) rejected.delete(this.#log[at]!.id)
    this.#snapshots = this.#snapshots.filter((snapshot) => snapshot.at <= at)
    this.#state = state
    for (let k = at + 1; k < this.#log.length; k++) {
      const env = this.#log[k]!
      this.#outcome(state, env, this.#apply(state, env))
      this.#snapshotIfDue(k + 1)
    }
    state.accepted = this.#log.length - rejected.size
  }

  #snapshotIfDue(folded = this.#log.length): void {
    const last = this.#snapshots[this.#snapshots.length - 1]?.at ?? 0
    if (folded - last >= FOLD_SNAPSHOT_SPACING)
      this.#snapshots.push({ at: folded, state: cloneThreadState(this.#state) })
  }

  /** Whether a seal in force has a FINALIZE the fold refused. */
  #sealVoidedByFold(): boolean {
    for (const [claim, seal] of this.#seals) {
      if (!this.#voided.has(claim) && this.#state.rejected.has(seal.finalize.id)) return true
    }
    return false
  }

  /**
   * Marks every pending envelope that has become placeable as placed (in total order, so that each
   * may open the way for the next), without putting it in the log. Returns them.
   */
  #releasePending(): AnyEnvelope[] {
    const placed: AnyEnvelope[] = []
    let progressed = true
    while (progressed && this.#pending.size > 0) {
      progressed = false
      const waiting = [...this.#pending.values()].sort(compareEnvelopes)
      for (const env of waiting) {
        if (!this.#placeable(env)) continue
        this.#pending.delete(env.id)
        this.#mark(env)
        placed.push(env)
        progressed = true
      }
    }
    return placed
  }

  /**
   * Records the seal a placed FINALIZE makes (§6.8): an anchor's FINALIZE of a COMMIT seals that
   * commit as its lease's result; of several for one lease the earliest in total order counts.
   * Returns whether the log already holds an envelope the new seal judges otherwise (the caller
   * must then refold rather than append).
   */
  #noteSeal(env: AnyEnvelope): boolean {
    if (env.kind !== 'FINALIZE' || !isAnchor(this.#params, env.sender)) return false
    const commit = this.#byId.get(env.payload.commit)
    if (commit?.kind !== 'COMMIT' || commit.payload.task !== env.payload.task) return false
    const claim = commit.payload.claim
    const held = this.#seals.get(claim)
    if (held && compareEnvelopes(held.finalize, env) <= 0) return false
    this.#seals.set(claim, { commit: commit.id, finalize: env })
    return (
      held !== undefined ||
      this.#log.some(
        (other) =>
          ((other.kind === 'YIELD' || other.kind === 'RELEASE') && other.payload.claim === claim) ||
          (other.kind === 'COMMIT' && other.payload.claim === claim && other.id !== commit.id) ||
          (other.kind === 'ATTEST' && other.payload.commit === commit.id && other.payload.verdict === 'fail'),
      )
    )
  }

  #hold(env: AnyEnvelope): void {
    this.#pending.set(env.id, env)
    this.#trimPending()
  }

  /** Keeps the pending pool within its bound: the sender with the most waiting loses its newest. */
  #trimPending(): void {
    while (this.#pending.size > this.#maxPending) {
      const bySender = new Map<Did, AnyEnvelope[]>()
      for (const env of this.#pending.values()) {
        const list = bySender.get(env.sender) ?? []
        list.push(env)
        bySender.set(env.sender, list)
      }
      let busiest: AnyEnvelope[] = []
      for (const list of bySender.values()) if (list.length > busiest.length) busiest = list
      const victim = busiest.reduce((a, b) =>
        (this.#receivedAt.get(a.id) ?? 0) >= (this.#receivedAt.get(b.id) ?? 0) ? a : b,
      )
      this.#pending.delete(victim.id)
      this.#receivedAt.delete(victim.id)
      this.#onEvict?.(victim)
    }
  }

  #countRefusal(reason: string): void {
    const code = refusalCode(reason)
    this.#refusals.set(code, (this.#refusals.get(code) ?? 0) + 1)
  }

  #refold(): void {
    this.#refolds += 1
    // A seal holds only if its FINALIZE is accepted; one whose FINALIZE the fold refuses (its commit
    // was refused for another reason: a stale epoch, stale inputs…) seals nothing, or it would keep
    // a dead lease from being scavenged. Seals only drop, so this ends (one pass, as a rule).
    this.#voided.clear()
    for (;;) {
      this.#snapshots = []
      this.#foldOn(emptyThreadState(this.thread), -1, new Map())
      let dropped = false
      for (const [claim, seal] of this.#seals) {
        if (!this.#voided.has(claim) && this.#state.rejected.has(seal.finalize.id)) {
          this.#voided.add(claim)
          dropped = true
        }
      }
      if (!dropped) break
    }
    this.#plan = undefined
    this.#hash = undefined
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
          at + task.lease.ttlMs + this.#params.leaseGraceMs,
          { type: 'lease-expired', task: task.id, claim: task.lease.claim },
        ]
      }
      const commit = task.commit
      if (commit?.verifiedBy !== undefined && task.state === 'VERIFIED') {
        const at = this.#receivedAt.get(commit.verifiedBy) ?? 0
        yield [
          `final:${commit.id}`,
          at + this.#params.tChallengeMs,
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
   * The thread's plan store (docs/PROTOCOL.md §6.7): the facts the fold produced plus, for every task of
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

  /**
   * Hex SHA-256 of the canonical state: equal on every replica holding the same placed envelopes.
   * Remembered until the log changes.
   */
  stateHash(): string {
    this.#hash ??= hashCanonical(this.canonical())
    return this.#hash
  }

  /** {@link stateHash} computed afresh, ignoring what is remembered (for checkers). */
  freshStateHash(): string {
    return hashCanonical(canonicalThreadState(this.#state, this.#freshPlan()))
  }

  #freshPlan(): PlanStore {
    const saved = this.#plan
    this.#plan = undefined
    const plan = this.plan()
    this.#plan = saved
    return plan
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
    inputs: c.inputs ? [...c.inputs] : null,
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
      ? {
          claim: task.lease.claim,
          worker: task.lease.worker,
          grant: task.lease.grant,
          renewedBy: task.lease.renewedBy,
        }
      : null,
    commit: task.commit ? commit(task.commit) : null,
    pastCommits: task.pastCommits.map(commit),
  }
}

/**
 * The canonical form of a thread state, as hashed by {@link ThreadReplica.stateHash}: what
 * accepted envelopes made of the thread. Refusals, plan-vote evidence and claim requests are not
 * part of it, so an envelope the fold refuses leaves it exactly as it was (P9).
 */
export function canonicalThreadState(state: ThreadState, plan: PlanStore): unknown {
  return {
    thread: state.thread,
    need: state.need?.env ?? null,
    proposals: byKey(state.proposals).map(([id, p]) => [id, p.planner]),
    decides: [...state.decides.keys()].sort(),
    winner: state.winner?.env ?? null,
    issuedEpoch: state.issuedEpoch,
    tasks: byKey(state.tasks).map(([, task]) => canonicalTask(task)),
    plan: plan.canonicalState(),
    reconciles: [...state.reconciles].sort(),
    checkpoints: [...state.checkpoints].sort(),
    equivocations: state.equivocations.map((e) => [e.sender, e.kind, e.subject, ...e.envelopes]),
  }
}
