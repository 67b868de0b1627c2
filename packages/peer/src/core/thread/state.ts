/**
 * The state of one thread (one NEED) and the rule that applies one envelope to it
 * (docs/PROTOCOL.md §4–§6, §11).
 *
 * A thread's state is a pure function of its envelope SET: replicas sort the set in the
 * protocol's total order `(lamport, sender, id)` and fold {@link applyEnvelope} over it. Causal
 * predecessors always sort first (Lamport rule), so an envelope that cannot apply yet (its
 * PROPOSE has not arrived) applies when the fold is re-run with the missing envelope in place.
 * Two replicas holding the same envelopes therefore hold the same state (P2), whatever the order
 * in which the envelopes arrived.
 *
 * Authority (A1–A7) is checked here, first, from the envelope, the network parameters and the
 * envelopes it names (looked up by id, wherever they sort): a refused envelope changes nothing
 * ({@link canonicalThreadState} holds only what accepted envelopes made), and is refused the same
 * way at any position in the order (P9).
 *
 * Time never enters here. Lease expiry, bid windows and challenge windows are judged by anchors
 * against their own clocks and enter the log as anchor-signed envelopes (RELEASE, FINALIZE).
 */

import { threadIdOf } from '../codec.ts'
import { requiredBond } from '../economy/proofs.ts'
import { invariant } from '../errors.ts'
import {
  type AnyEnvelope,
  type Cid,
  type Did,
  type Envelope,
  GENESIS_EPOCH,
  type NeedPayload,
  type PlanFact,
  type PlanOp,
  type PoolSnapshot,
  type ProposePayload,
  type TaskSpec,
  type TaskState,
  type Verdict,
} from '../types.ts'
import { committeeFor } from './committee.ts'
import { taskInputRefs } from './inputs.ts'
import {
  inCommittee,
  isAnchor,
  isEligibleVerifier,
  isOpenPool,
  kPlanOf,
  kResultOf,
  type NetworkParams,
  withPool,
} from './params.ts'

/** A NEED as the thread knows it. */
export interface NeedInfo {
  env: Cid
  requester: Did
  payload: NeedPayload
  requires: readonly string[]
  inputs: readonly Cid[]
  budget: number
  bidWindowMs: number
}

export interface ProposalInfo {
  /** The PROPOSE's envelope id: the proposal's identity (A2). */
  id: Cid
  env: Cid
  planner: Did
  payload: ProposePayload
}

export interface DecideInfo {
  env: Cid
  need: string
  proposal: Cid
  epoch: number
  lamport: number
  decider: Did
  kPlan: number
  /** The pool the decision was taken under. */
  pool: PoolSnapshot
  /** The network parameters with that pool: the thread's rules once this DECIDE wins. */
  params: NetworkParams
  /** The anchor's clock when it decided (its `ts`): the ledger's order (A7). */
  ts: number
}

export interface Vote<V extends string> {
  verdict: V
  env: Cid
}

export interface Lease {
  claim: Cid
  worker: Did
  ttlMs: number
  /** The GRANT that started the lease. */
  grant: Cid
  /** Envelope that last renewed the lease (the GRANT or the latest HEARTBEAT). */
  renewedBy: Cid
  progress: number
}

export interface CommitInfo {
  id: Cid
  worker: Did
  claim: Cid
  /** The inputs the result was computed from, when the COMMIT declares them. */
  inputs?: readonly Cid[]
  outputs: readonly Cid[]
  round: number
  committee: readonly Did[]
  votes: Map<Did, Vote<'pass' | 'fail'> & { evalDigest: string }>
  /** ATTEST envelope that completed the passing quorum. */
  verifiedBy?: Cid
  finalizedBy?: Cid
  challenges: Map<Cid, { challenger: Did; proofType: string }>
  /** INVALIDATE votes per challenge. */
  invalidations: Map<Cid, Set<Did>>
  /**
   * How the commit ended, if it did. `rejected`: a failing quorum; `invalidated`: an upheld
   * challenge; `superseded`: an input it was computed from (a parent's result) was invalidated, so
   * it is redone — nobody's fault.
   */
  outcome?: 'rejected' | 'invalidated' | 'superseded'
}

export interface TaskInfo {
  id: string
  proposal: Cid
  name: string
  spec: TaskSpec
  parents: readonly string[]
  /** Lease generation: bumps each time the task is reopened (release, yield, rejection, invalidation). */
  round: number
  state: TaskState
  kResult: number
  lease?: Lease
  /** CLAIMs received for the task, with the round each was made in (requests; a GRANT picks one). */
  requests: Map<Cid, number>
  /** The commit of the current round, if any. */
  commit?: CommitInfo
  /** Commits of earlier rounds (rejected or invalidated). */
  pastCommits: CommitInfo[]
}

/** Misbehaviour the fold noticed: two signed statements that contradict each other. */
export interface Equivocation {
  sender: Did
  kind: AnyEnvelope['kind']
  subject: string
  envelopes: [Cid, Cid]
}

export interface ThreadState {
  thread: string
  need?: NeedInfo
  proposals: Map<Cid, ProposalInfo>
  /** Accepted proposals per planner (the per-planner cap). */
  proposalsByPlanner: Map<Did, number>
  /**
   * Plan votes as evidence, judged against this replica's own view of the pool. Not part of the
   * canonical state: a DECIDE carries the votes that count, checked against its own pool.
   */
  planVotes: Map<Cid, Map<Did, Vote<Verdict>>>
  /** The first proposal to gather K_plan accepting votes in this replica's view (the decider's trigger). */
  quorum?: { proposal: Cid; attestations: Cid[] }
  decides: Map<Cid, DecideInfo>
  /** The DECIDE the merge rule selects among all valid DECIDEs. */
  winner?: DecideInfo
  /** The highest epoch an anchor has issued into this thread so far in the fold (A3). */
  issuedEpoch: number
  tasks: Map<string, TaskInfo>
  /** Plan facts produced by the fold (docs/PROTOCOL.md §6.7), in fold order. */
  facts: PlanFact[]
  reconciles: Cid[]
  checkpoints: Cid[]
  equivocations: Equivocation[]
  /** Accepted envelopes (diagnostics; not canonical). */
  accepted: number
  /** Envelopes in the log that did not apply, with the reason (diagnostics; not canonical). */
  rejected: Map<Cid, string>
}

export function emptyThreadState(thread: string): ThreadState {
  return {
    thread,
    proposals: new Map(),
    proposalsByPlanner: new Map(),
    planVotes: new Map(),
    decides: new Map(),
    issuedEpoch: GENESIS_EPOCH,
    tasks: new Map(),
    facts: [],
    reconciles: [],
    checkpoints: [],
    equivocations: [],
    accepted: 0,
    rejected: new Map(),
  }
}

/**
 * A copy of a state that a fold can go on from without touching the original (the replica's fold
 * snapshots). Envelopes, payloads, decisions, proposals, votes and facts are never mutated once made,
 * so they are shared; every map, set, array and record the fold mutates is copied. `rejected` starts
 * empty and `accepted` at 0: the replica keeps those for the whole log.
 */
export function cloneThreadState(state: ThreadState): ThreadState {
  const copy: ThreadState = {
    ...state,
    proposals: new Map(state.proposals),
    proposalsByPlanner: new Map(state.proposalsByPlanner),
    planVotes: new Map([...state.planVotes].map(([id, votes]) => [id, new Map(votes)])),
    decides: new Map(state.decides),
    tasks: new Map([...state.tasks].map(([id, task]) => [id, cloneTask(task)])),
    facts: state.facts.slice(),
    reconciles: state.reconciles.slice(),
    checkpoints: state.checkpoints.slice(),
    equivocations: state.equivocations.slice(),
    accepted: 0,
    rejected: new Map(),
  }
  return copy
}

function cloneTask(task: TaskInfo): TaskInfo {
  const copy: TaskInfo = {
    ...task,
    requests: new Map(task.requests),
    // Past commits are closed: the fold never changes one after it is moved there.
    pastCommits: task.pastCommits.slice(),
  }
  if (task.lease) copy.lease = { ...task.lease }
  if (task.commit) copy.commit = cloneCommit(task.commit)
  return copy
}

function cloneCommit(commit: CommitInfo): CommitInfo {
  return {
    ...commit,
    votes: new Map(commit.votes),
    challenges: new Map(commit.challenges),
    invalidations: new Map([...commit.invalidations].map(([id, voters]) => [id, new Set(voters)])),
  }
}

/** Task id of a task named `name` in the proposal whose PROPOSE has envelope id `proposal`. */
export function taskId(proposal: Cid, name: string): string {
  return `${proposal}/${name}`
}

/** The proposal (PROPOSE envelope id) a task id belongs to. */
export function proposalOfTask(task: string): string {
  const cut = task.lastIndexOf('/')
  return cut < 0 ? '' : task.slice(0, cut)
}

/** Thread ids computed for NEED envelopes (re-folds apply the same NEED many times). */
const threadIds = new WeakMap<AnyEnvelope, string>()

function threadIdOfNeed(env: Envelope<'NEED'>): string {
  let id = threadIds.get(env)
  if (id === undefined) {
    id = threadIdOf(env)
    threadIds.set(env, id)
  }
  return id
}

/** Result of applying one envelope: `undefined` when it applied, else the reason it did not. */
export type ApplyOutcome = string | undefined

/** Looks an envelope of the thread's log up by id (wherever it sorts). */
export type EnvelopeLookup = (id: Cid) => AnyEnvelope | undefined

const noLookup: EnvelopeLookup = () => undefined

/**
 * The commit an anchor's FINALIZE sealed for a lease (by CLAIM id), if any (docs/PROTOCOL.md §6.8):
 * a function of the envelope set, computed by the replica over its whole log.
 */
export type SealLookup = (claim: Cid) => Cid | undefined

const noSeals: SealLookup = () => undefined

/** Checks a plan patch against its NEED; returns the reason it is invalid, or undefined. */
export function checkPatch(payload: ProposePayload, need: NeedInfo): string | undefined {
  if (payload.patch.length === 0) return 'empty-plan'
  if (payload.price > need.budget) return 'over-budget'
  const names = new Set<string>()
  for (const spec of payload.patch) {
    if (names.has(spec.name)) return `duplicate-task:${spec.name}`
    names.add(spec.name)
  }
  const inputs = new Set(need.inputs)
  const requires = new Set(need.requires)
  for (const spec of payload.patch) {
    if (!requires.has(spec.capability)) return `capability-not-required:${spec.capability}`
    if (spec.inputs.length === 0) return `no-inputs:${spec.name}`
    for (const input of spec.inputs) {
      if (input.startsWith('task:')) {
        const parent = input.slice(5)
        if (!names.has(parent) || parent === spec.name) return `unknown-parent:${spec.name}`
      } else if (!inputs.has(input)) {
        return `unknown-input:${spec.name}`
      }
    }
  }
  // Acyclic: repeatedly remove tasks whose parents are all removed.
  const remaining = new Map(payload.patch.map((spec) => [spec.name, parentNames(spec)]))
  let progressed = true
  while (remaining.size > 0 && progressed) {
    progressed = false
    for (const [name, parents] of remaining) {
      if (parents.every((parent) => !remaining.has(parent))) {
        remaining.delete(name)
        progressed = true
      }
    }
  }
  return remaining.size === 0 ? undefined : 'cyclic-plan'
}

function parentNames(spec: TaskSpec): string[] {
  return spec.inputs.filter((input) => input.startsWith('task:')).map((input) => input.slice(5))
}

function fact(state: ThreadState, env: AnyEnvelope, op: PlanOp): void {
  state.facts.push({ ...op, thread: state.thread, lamport: env.lamport, actor: env.sender })
}

function setTaskState(state: ThreadState, env: AnyEnvelope, task: TaskInfo, next: TaskState): void {
  task.state = next
  state.facts.push({
    op: 'STATE',
    task: task.id,
    state: next,
    epoch: task.round,
    thread: state.thread,
    lamport: env.lamport,
    actor: env.sender,
  })
}

function reopen(state: ThreadState, env: AnyEnvelope, task: TaskInfo): void {
  task.round += 1
  delete task.lease
  setTaskState(state, env, task, 'DECIDED')
}

/**
 * A reopened task's result was wrong, so everything computed from it is too: every descendant in
 * the plan that got past DECIDED is reopened (its commit `superseded`), to be redone once its
 * parents are FINAL again.
 */
function reopenDescendants(state: ThreadState, env: AnyEnvelope, root: TaskInfo): void {
  const reopened = new Set([root.id])
  let changed = true
  while (changed) {
    changed = false
    for (const task of state.tasks.values()) {
      if (reopened.has(task.id) || task.proposal !== root.proposal) continue
      if (!task.parents.some((parent) => reopened.has(parent))) continue
      reopened.add(task.id)
      changed = true
      // Only results are undone: a live lease runs on (its stale COMMIT will fail verification),
      // so a lease never ends but through COMMIT, YIELD or RELEASE.
      if (!task.commit || task.lease) continue
      task.commit.outcome = 'superseded'
      task.pastCommits.push(task.commit)
      delete task.commit
      reopen(state, env, task)
    }
  }
}

/** Looks up the task an envelope names and checks it is live work on the winning plan. */
function liveTask(state: ThreadState, id: string): TaskInfo | string {
  const task = state.tasks.get(id)
  if (task === undefined) return 'unknown-task'
  if (state.winner === undefined || task.proposal !== state.winner.proposal) return 'orphaned-task'
  return task
}

function isFenced(state: ThreadState, env: AnyEnvelope): boolean {
  return state.winner !== undefined && env.epoch < state.winner.epoch
}

/** The rules of the decided thread (its winning DECIDE's pool), or the network's when undecided. */
export function threadParams(state: ThreadState, params: NetworkParams): NetworkParams {
  return state.winner?.params ?? params
}

/** The CLAIM a lease verb names, with its sender: looked up wherever it sorts (A2, A5). */
function claimOf(lookup: EnvelopeLookup, id: Cid, task: string): Envelope<'CLAIM'> | string {
  const claim = lookup(id)
  if (claim === undefined) return 'unknown-claim'
  if (claim.kind !== 'CLAIM') return 'not-a-claim'
  if (claim.payload.task !== task) return 'claim-of-another-task'
  return claim
}

/**
 * Applies one verified envelope to the thread state (mutating it). Returns `undefined` when the
 * envelope applied, or a short reason when it did not (the state is then unchanged). `lookup`
 * finds the envelopes it names in the thread's log (A2); `params` are the network's.
 */
export function applyEnvelope(
  state: ThreadState,
  env: AnyEnvelope,
  params: NetworkParams,
  lookup: EnvelopeLookup = noLookup,
  seals: SealLookup = noSeals,
): ApplyOutcome {
  // Network, thread and epoch: the same checks for every verb.
  if (env.net !== params.network) return 'wrong-network'
  if (env.thread !== state.thread) return 'wrong-thread'
  const anchor = isAnchor(params, env.sender)
  if (env.kind !== 'NEED' && state.need === undefined) return 'no-need'
  if (env.kind !== 'DECIDE' && env.epoch > state.issuedEpoch) return 'epoch-not-issued'
  const fold = { state, env, params, lookup, seals, anchor } as Fold<typeof env.kind>
  return (APPLY[env.kind] as (fold: Fold<typeof env.kind>) => ApplyOutcome)(fold)
}

/** What a verb's fold step is given: the state, the envelope (of that verb), and the context. */
interface Fold<K extends AnyEnvelope['kind']> {
  state: ThreadState
  env: Extract<AnyEnvelope, { kind: K }>
  params: NetworkParams
  lookup: EnvelopeLookup
  seals: SealLookup
  /** Whether the sender is one of the network's anchors. */
  anchor: boolean
}

/** The fold step of each verb (one function per verb; the checks every verb shares run first). */
const APPLY: { [K in AnyEnvelope['kind']]: (fold: Fold<K>) => ApplyOutcome } = {
  NEED: applyNeed,
  PROPOSE: applyPropose,
  ATTEST_PLAN: applyAttestPlan,
  DECIDE: applyDecide,
  UPDATE_PLAN: applyUpdatePlan,
  RECONCILE: applyReconcile,
  CHECKPOINT: applyCheckpoint,
  CLAIM: applyClaim,
  GRANT: applyGrant,
  HEARTBEAT: applyLeaseUse as (fold: Fold<'HEARTBEAT'>) => ApplyOutcome,
  YIELD: applyLeaseUse as (fold: Fold<'YIELD'>) => ApplyOutcome,
  RELEASE: applyLeaseUse as (fold: Fold<'RELEASE'>) => ApplyOutcome,
  COMMIT: applyCommit,
  ATTEST: applyAttest,
  FINALIZE: applyFinalize,
  CHALLENGE: applyChallenge,
  INVALIDATE: applyInvalidate,
}

/** The fold step of NEED (docs/PROTOCOL.md §4, §5 and §11). */
function applyNeed({ state, env }: Fold<'NEED'>): ApplyOutcome {
  if (env.payload.need !== env.thread) return 'need-thread-mismatch'
  if (threadIdOfNeed(env) !== env.thread) return 'thread-id-mismatch'
  if (state.need !== undefined) return 'duplicate-need'
  state.need = {
    env: env.id,
    requester: env.sender,
    payload: env.payload,
    requires: env.payload.requires,
    inputs: env.payload.inputs,
    budget: env.payload.budget,
    bidWindowMs: env.payload.bidWindowMs,
  }
  return undefined
}

/** The fold step of PROPOSE (docs/PROTOCOL.md §4, §5 and §11). */
function applyPropose({ state, env, params }: Fold<'PROPOSE'>): ApplyOutcome {
  const need = state.need!
  if (env.payload.need !== env.thread) return 'need-thread-mismatch'
  const mine = state.proposalsByPlanner.get(env.sender) ?? 0
  if (mine >= params.maxProposalsPerPlanner) return 'too-many-proposals'
  const invalid = checkPatch(env.payload, need)
  if (invalid !== undefined) return invalid
  state.proposals.set(env.id, { id: env.id, env: env.id, planner: env.sender, payload: env.payload })
  state.proposalsByPlanner.set(env.sender, mine + 1)
  return undefined
}

/** The fold step of ATTEST_PLAN (docs/PROTOCOL.md §4, §5 and §11). */
function applyAttestPlan({ state, env, params }: Fold<'ATTEST_PLAN'>): ApplyOutcome {
  // Evidence only: the votes that count travel inside a DECIDE and are judged against its pool.
  const proposal = state.proposals.get(env.payload.proposal)
  if (proposal === undefined) return 'unknown-proposal'
  if (!isEligibleVerifier(params, env.sender)) return 'not-a-verifier'
  if (!params.bootstrap && env.sender === proposal.planner) return 'self-attestation'
  let votes = state.planVotes.get(proposal.id)
  if (votes === undefined) {
    votes = new Map()
    state.planVotes.set(proposal.id, votes)
  }
  if (votes.has(env.sender)) return 'duplicate-vote'
  votes.set(env.sender, { verdict: env.payload.verdict, env: env.id })
  if (state.quorum === undefined) {
    const accepting = [...votes.values()].filter((vote) => vote.verdict === 'accept')
    if (accepting.length >= kPlanOf(params)) {
      state.quorum = { proposal: proposal.id, attestations: accepting.map((vote) => vote.env) }
    }
  }
  return undefined
}

/** The fold step of UPDATE_PLAN (docs/PROTOCOL.md §4, §5 and §11). */
function applyUpdatePlan({ state, env }: Fold<'UPDATE_PLAN'>): ApplyOutcome {
  const winner = state.winner
  if (winner === undefined) return 'undecided'
  const planner = state.proposals.get(winner.proposal)?.planner
  if (env.sender !== planner && env.sender !== winner.decider) return 'not-plan-owner'
  for (const op of env.payload.ops) {
    if (op.op !== 'ANNOTATE' && op.op !== 'REQUIRES') return `op-not-allowed:${op.op}`
    const task = state.tasks.get(op.task)
    if (task === undefined || task.proposal !== winner.proposal) return 'unknown-task'
  }
  for (const op of env.payload.ops) fact(state, env, op)
  return undefined
}

/** The fold step of RECONCILE (docs/PROTOCOL.md §4, §5 and §11). */
function applyReconcile({ state, env, anchor }: Fold<'RECONCILE'>): ApplyOutcome {
  if (!anchor) return 'not-an-anchor'
  if (env.payload.thread !== env.thread) return 'reconcile-thread-mismatch'
  state.reconciles.push(env.id)
  return undefined
}

/** The fold step of CHECKPOINT (docs/PROTOCOL.md §4, §5 and §11). */
function applyCheckpoint({ state, env, anchor }: Fold<'CHECKPOINT'>): ApplyOutcome {
  if (!anchor) return 'not-an-anchor'
  state.checkpoints.push(env.id)
  return undefined
}

/** The fold step of CLAIM (docs/PROTOCOL.md §4, §5 and §11). */
function applyClaim({ state, env, params }: Fold<'CLAIM'>): ApplyOutcome {
  // A request: the lease starts only with an anchor's GRANT (A5).
  const task = liveTask(state, env.payload.task)
  if (typeof task === 'string') return task
  if (isFenced(state, env)) return 'stale-epoch'
  const ttl = env.payload.leaseTtlMs
  if (ttl < params.minLeaseTtlMs || ttl > params.maxLeaseTtlMs) return 'lease-ttl-out-of-bounds'
  if (task.state !== 'DECIDED') return task.lease ? 'lease-held' : `not-claimable:${task.state}`
  if (!parentsFinal(state, task)) return 'parents-unfinished'
  // A worker asks at most the plan's price for one task of it (its pay is its CLAIM's cost).
  const price = state.proposals.get(task.proposal)?.payload.price
  if (price !== undefined && env.payload.cost > price) return 'cost-above-price'
  task.requests.set(env.id, task.round)
  return undefined
}

/** The fold step of GRANT (docs/PROTOCOL.md §4, §5 and §11). */
function applyGrant({ state, env, params, lookup, anchor }: Fold<'GRANT'>): ApplyOutcome {
  if (!anchor) return 'grant-not-by-anchor'
  const claim = claimOf(lookup, env.payload.claim, env.payload.task)
  if (typeof claim === 'string') return claim
  const task = liveTask(state, env.payload.task)
  if (typeof task === 'string') return task
  if (isFenced(state, env)) return 'stale-epoch'
  if (task.state !== 'DECIDED') return task.lease ? 'lease-held' : `not-claimable:${task.state}`
  if (!parentsFinal(state, task)) return 'parents-unfinished'
  if (task.requests.get(claim.id) !== task.round) return 'claim-not-for-this-round'
  const ttl = env.payload.leaseTtlMs
  if (ttl < params.minLeaseTtlMs || ttl > claim.payload.leaseTtlMs) return 'lease-ttl-out-of-bounds'
  // One live lease per task: a DECIDED task holds none, so this GRANT cannot stack a second.
  invariant(
    task.lease === undefined,
    `one-live-lease: task ${task.id} of ${env.thread} is DECIDED with a lease`,
  )
  task.lease = {
    claim: claim.id,
    worker: claim.sender,
    ttlMs: ttl,
    grant: env.id,
    renewedBy: env.id,
    progress: 0,
  }
  setTaskState(state, env, task, 'CLAIMED')
  return undefined
}

/** The fold step of HEARTBEAT / YIELD / RELEASE (docs/PROTOCOL.md §4, §5 and §11). */
function applyLeaseUse({
  state,
  env,
  lookup,
  seals,
  anchor,
}: Fold<'HEARTBEAT' | 'YIELD' | 'RELEASE'>): ApplyOutcome {
  const claim = claimOf(lookup, env.payload.claim, env.payload.task)
  if (typeof claim === 'string') return claim
  if (env.kind === 'RELEASE' && env.payload.reason !== 'worker-failed') {
    // Scavenging and orphaning are an anchor's judgment, never a stranger's (A5).
    if (!anchor) return 'scavenge-not-by-anchor'
  } else if (env.sender !== claim.sender) {
    return 'not-lease-holder'
  }
  // A lease whose result an anchor finalized cannot be ended before its COMMIT after the fact
  // (§6.8): not by its holder, not by a scavenger that did not see the result.
  if (env.kind !== 'HEARTBEAT' && !(env.kind === 'RELEASE' && env.payload.reason === 'orphaned')) {
    if (seals(claim.id) !== undefined) return 'sealed'
  }
  const task = liveTask(state, env.payload.task)
  if (typeof task === 'string') return task
  const lease = task.lease
  if (lease === undefined || lease.claim !== claim.id) return 'stale-lease'
  if (env.kind === 'HEARTBEAT') {
    if (env.fence !== lease.claim) return 'bad-fence'
    if (isFenced(state, env)) return 'stale-epoch'
    lease.renewedBy = env.id
    lease.progress = env.payload.progress
    return undefined
  }
  reopen(state, env, task)
  return undefined
}

/** The fold step of COMMIT (docs/PROTOCOL.md §4, §5 and §11). */
function applyCommit({ state, env, params, lookup, seals }: Fold<'COMMIT'>): ApplyOutcome {
  const claim = claimOf(lookup, env.payload.claim, env.payload.task)
  if (typeof claim === 'string') return claim
  if (env.sender !== claim.sender) return 'not-lease-holder'
  // The one result an anchor finalized for this lease is the lease's result (§6.8).
  const sealed = seals(claim.id)
  if (sealed !== undefined && sealed !== env.id) return 'sealed'
  const task = liveTask(state, env.payload.task)
  if (typeof task === 'string') return task
  const lease = task.lease
  if (lease === undefined || lease.claim !== claim.id) return 'stale-lease'
  if (env.fence !== lease.claim) return 'bad-fence'
  if (isFenced(state, env)) return 'stale-epoch'
  if (env.payload.outputs.length === 0) return 'no-outputs'
  const inputs = env.payload.inputs
  if (inputs !== undefined) {
    // A result computed from other inputs than the task's now (a parent since redone) is stale.
    const current = taskInputRefs(state, task)
    if (!current || current.length !== inputs.length || current.some((ref, i) => ref !== inputs[i])) {
      return 'stale-inputs'
    }
  }
  delete task.lease
  task.commit = {
    id: env.id,
    worker: env.sender,
    claim: lease.claim,
    ...(inputs === undefined ? {} : { inputs }),
    outputs: env.payload.outputs,
    round: task.round,
    committee: committeeFor(env.id, env.sender, task.kResult, threadParams(state, params)),
    votes: new Map(),
    challenges: new Map(),
    invalidations: new Map(),
  }
  setTaskState(state, env, task, 'COMMITTED')
  return undefined
}

/** The fold step of ATTEST (docs/PROTOCOL.md §4, §5 and §11). */
function applyAttest({ state, env, params, seals }: Fold<'ATTEST'>): ApplyOutcome {
  const task = liveTask(state, env.payload.task)
  if (typeof task === 'string') return task
  const commit = task.commit
  if (commit === undefined || commit.id !== env.payload.commit) return 'unknown-commit'
  if (!inCommittee(commit.committee, env.sender, threadParams(state, params))) return 'not-in-committee'
  const previous = commit.votes.get(env.sender)
  if (previous !== undefined) {
    if (previous.verdict === env.payload.verdict) return 'duplicate-vote'
    // One record per verifier and commit: a third vote proves nothing the second did not.
    if (state.equivocations.some((record) => record.sender === env.sender && record.subject === commit.id)) {
      return 'duplicate-vote'
    }
    // A contradicting vote is kept as evidence (its signer is slashed); it does not count twice.
    state.equivocations.push({
      sender: env.sender,
      kind: env.kind,
      subject: commit.id,
      envelopes: [previous.env, env.id],
    })
    return undefined
  }
  commit.votes.set(env.sender, {
    verdict: env.payload.verdict,
    env: env.id,
    evalDigest: env.payload.evalDigest,
  })
  if (task.state === 'COMMITTED') {
    const votes = [...commit.votes.values()]
    const passes = votes.filter((vote) => vote.verdict === 'pass').length
    const fails = votes.length - passes
    if (passes >= task.kResult) {
      commit.verifiedBy = env.id
      setTaskState(state, env, task, 'VERIFIED')
    } else if (fails >= task.kResult && seals(commit.claim) !== commit.id) {
      // A finalized result is not voted down after the fact (§6.8): only a CHALLENGE undoes it.
      commit.outcome = 'rejected'
      task.pastCommits.push(commit)
      delete task.commit
      reopen(state, env, task)
    }
  }
  return undefined
}

/** The fold step of FINALIZE (docs/PROTOCOL.md §4, §5 and §11). */
function applyFinalize({ state, env, params, anchor }: Fold<'FINALIZE'>): ApplyOutcome {
  // The challenge window is judged by an anchor's clock (A6): only anchors finalize.
  if (!anchor) return 'finalize-not-by-anchor'
  const task = liveTask(state, env.payload.task)
  if (typeof task === 'string') return task
  const commit = task.commit
  if (commit === undefined || commit.id !== env.payload.commit) return 'unknown-commit'
  if (task.state === 'FINAL') return 'already-final'
  const rules = threadParams(state, params)
  const voters = new Set<Did>()
  for (const attestation of env.payload.attestations) {
    if (attestation.kind !== 'ATTEST' || attestation.thread !== env.thread) return 'bad-attestation'
    const payload = (attestation as Envelope<'ATTEST'>).payload
    if (payload.commit !== commit.id || payload.verdict !== 'pass') return 'bad-attestation'
    if (!inCommittee(commit.committee, attestation.sender, rules)) return 'attester-not-in-committee'
    voters.add(attestation.sender)
  }
  if (voters.size < task.kResult) return 'insufficient-quorum'
  commit.finalizedBy = env.id
  for (const ref of commit.outputs) fact(state, env, { op: 'PRODUCES', task: task.id, ref })
  setTaskState(state, env, task, 'FINAL')
  return undefined
}

/** The fold step of CHALLENGE (docs/PROTOCOL.md §4, §5 and §11). */
function applyChallenge({ state, env }: Fold<'CHALLENGE'>): ApplyOutcome {
  const task = liveTask(state, env.payload.task)
  if (typeof task === 'string') return task
  const commit = task.commit
  if (commit === undefined || commit.id !== env.payload.commit) return 'unknown-commit'
  if (commit.challenges.has(env.id)) return 'duplicate-challenge'
  if (env.payload.bond < requiredBond(env.payload.proof)) return 'bond-too-small'
  commit.challenges.set(env.id, { challenger: env.sender, proofType: env.payload.proof.type })
  return undefined
}

function parentsFinal(state: ThreadState, task: TaskInfo): boolean {
  return task.parents.every((parent) => state.tasks.get(parent)?.state === 'FINAL')
}

/**
 * INVALIDATE (A6): judges are anchors (one suffices) and, outside bootstrap, eligible verifiers
 * other than the challenger, the worker and the verifiers who passed the commit under judgment
 * (K_result of them uphold it).
 */
function applyInvalidate({ state, env, params, anchor, lookup }: Fold<'INVALIDATE'>): ApplyOutcome {
  const challengeEnv = lookup(env.payload.challenge)
  if (challengeEnv === undefined || challengeEnv.kind !== 'CHALLENGE') return 'unknown-challenge'
  const task = liveTask(state, env.payload.task)
  if (typeof task === 'string') return task
  const commit = task.commit
  if (commit === undefined || commit.id !== env.payload.commit) return 'unknown-commit'
  if (!commit.challenges.has(env.payload.challenge)) return 'unknown-challenge'
  const rules = threadParams(state, params)
  if (!anchor) {
    if (rules.bootstrap || !isEligibleVerifier(rules, env.sender)) return 'not-a-judge'
    if (env.sender === challengeEnv.sender) return 'judge-is-challenger'
    if (env.sender === commit.worker) return 'judge-is-worker'
    if (commit.votes.get(env.sender)?.verdict === 'pass') return 'judge-attested'
  }
  let voters = commit.invalidations.get(env.payload.challenge)
  if (voters === undefined) {
    voters = new Set()
    commit.invalidations.set(env.payload.challenge, voters)
  }
  if (voters.has(env.sender)) return 'duplicate-vote'
  voters.add(env.sender)
  if (anchor || voters.size >= task.kResult) {
    commit.outcome = 'invalidated'
    task.pastCommits.push(commit)
    delete task.commit
    task.kResult = isOpenPool(rules)
      ? task.kResult + 1
      : Math.min(task.kResult + 1, Math.max(1, rules.verifiers.length))
    reopen(state, env, task)
    reopenDescendants(state, env, task)
  }
  return undefined
}

function applyDecide({ state, env, params, anchor }: Fold<'DECIDE'>): ApplyOutcome {
  const payload = env.payload
  if (!anchor) return 'not-an-anchor'
  if (payload.need !== env.thread) return 'need-thread-mismatch'
  if (env.sender !== payload.decider) return 'decider-not-sender'
  if (payload.epoch !== env.epoch) return 'epoch-mismatch'
  const proposal = state.proposals.get(payload.proposal)
  if (proposal === undefined) return 'unknown-proposal'
  const rules = withPool(params, payload.pool)
  const required = kPlanOf(rules)
  if (payload.kPlan < required) return 'kplan-too-small'
  const voters = new Set<Did>()
  for (const attestation of payload.attestations) {
    if (attestation.kind !== 'ATTEST_PLAN' || attestation.thread !== env.thread) return 'bad-attestation'
    const vote = (attestation as Envelope<'ATTEST_PLAN'>).payload
    if (vote.proposal !== proposal.id || vote.verdict !== 'accept') return 'bad-attestation'
    if (!isEligibleVerifier(rules, attestation.sender)) return 'attester-not-a-verifier'
    if (!rules.bootstrap && attestation.sender === proposal.planner) return 'self-attestation'
    voters.add(attestation.sender)
  }
  if (voters.size < Math.max(required, payload.kPlan)) return 'insufficient-quorum'
  const info: DecideInfo = {
    env: env.id,
    need: payload.need,
    proposal: payload.proposal,
    epoch: payload.epoch,
    lamport: payload.lamport,
    decider: payload.decider,
    kPlan: payload.kPlan,
    pool: payload.pool,
    params: rules,
    ts: env.ts,
  }
  state.decides.set(env.id, info)
  if (payload.epoch > state.issuedEpoch) state.issuedEpoch = payload.epoch
  materializePlan(state, env, proposal, rules)
  if (state.winner === undefined || compareDecideInfo(info, state.winner) < 0) state.winner = info
  // The winner is the least of the decisions held (the merge rule), whatever order they came in.
  invariant(
    [...state.decides.values()].every((other) => compareDecideInfo(state.winner!, other) <= 0),
    `winner-is-least-decide: ${env.thread} holds a DECIDE that sorts before its winner ${state.winner.env}`,
  )
  return undefined
}

/** The merge rule on DecideInfo, with the envelope id as the last tie-break (a total order). */
export function compareDecideInfo(a: DecideInfo, b: DecideInfo): number {
  if (a.epoch !== b.epoch) return b.epoch - a.epoch
  if (a.lamport !== b.lamport) return b.lamport - a.lamport
  if (a.decider !== b.decider) return a.decider < b.decider ? -1 : 1
  if (a.proposal !== b.proposal) return a.proposal < b.proposal ? -1 : 1
  return a.env < b.env ? -1 : a.env > b.env ? 1 : 0
}

function materializePlan(
  state: ThreadState,
  env: Envelope<'DECIDE'>,
  proposal: ProposalInfo,
  rules: NetworkParams,
): void {
  if ([...state.tasks.values()].some((task) => task.proposal === proposal.id)) return
  for (const spec of proposal.payload.patch) {
    const id = taskId(proposal.id, spec.name)
    const parents = parentNames(spec)
      .map((name) => taskId(proposal.id, name))
      .sort()
    const task: TaskInfo = {
      id,
      proposal: proposal.id,
      name: spec.name,
      spec,
      parents,
      round: 1,
      state: 'DRAFT',
      kResult: kResultOf(rules),
      requests: new Map(),
      pastCommits: [],
    }
    state.tasks.set(id, task)
    fact(state, env, {
      op: 'ADD_TASK',
      task: id,
      capability: spec.capability,
      requires: [],
      produces: spec.produces,
    })
    for (const parent of parents) fact(state, env, { op: 'LINK', parent, child: id })
    setTaskState(state, env, task, 'DECIDED')
  }
}
