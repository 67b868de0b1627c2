/**
 * The state of one thread (one NEED) and the rule that applies one envelope to it.
 *
 * A thread's state is a pure function of its envelope SET: replicas sort the set in the
 * protocol's total order `(lamport, sender, id)` and fold {@link applyEnvelope} over it. Causal
 * predecessors always sort first (Lamport rule), so an envelope that cannot apply yet (its
 * PROPOSE has not arrived) applies when the fold is re-run with the missing envelope in place.
 * Two replicas holding the same envelopes therefore hold byte-identical state (P2), whatever the
 * order in which the envelopes arrived.
 *
 * Time never enters here. Lease expiry, bid windows and challenge windows are judged by peers
 * against their own clocks (see `timers.ts`) and enter the log as envelopes (RELEASE, FINALIZE).
 */

import { requiredBond } from '../economy/proofs.ts'
import type {
  AnyEnvelope,
  Cid,
  Did,
  Envelope,
  NeedPayload,
  PlanFact,
  PlanOp,
  ProposePayload,
  TaskSpec,
  TaskState,
  Verdict,
} from '../types.ts'
import { committeeFor } from './committee.ts'
import {
  inCommittee,
  isEligibleVerifier,
  isOpenPool,
  kPlanOf,
  kResultOf,
  type NetworkParams,
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
  id: string
  env: Cid
  planner: Did
  payload: ProposePayload
}

export interface DecideInfo {
  env: Cid
  need: string
  proposal: string
  epoch: number
  lamport: number
  decider: Did
  kPlan: number
}

export interface Vote<V extends string> {
  verdict: V
  env: Cid
}

export interface Lease {
  claim: Cid
  worker: Did
  ttlMs: number
  /** Envelope that last renewed the lease (the CLAIM or the latest HEARTBEAT). */
  renewedBy: Cid
  progress: number
}

export interface CommitInfo {
  id: Cid
  worker: Did
  claim: Cid
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
  /** How the commit ended, if it did. */
  /**
   * `rejected`: a failing quorum; `invalidated`: an upheld challenge; `superseded`: an input it was
   * computed from (a parent's result) was invalidated, so it is redone — nobody's fault.
   */
  outcome?: 'rejected' | 'invalidated' | 'superseded'
}

export interface TaskInfo {
  id: string
  proposal: string
  name: string
  spec: TaskSpec
  parents: readonly string[]
  /** Lease generation: bumps each time the task is reopened (release, yield, rejection, invalidation). */
  round: number
  state: TaskState
  kResult: number
  lease?: Lease
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
  proposals: Map<string, ProposalInfo>
  planVotes: Map<string, Map<Did, Vote<Verdict>>>
  /** The first proposal to gather K_plan accepting attestations, with those attestations. */
  quorum?: { proposal: string; attestations: Cid[] }
  decides: Map<Cid, DecideInfo>
  /** The DECIDE the merge rule selects among all valid DECIDEs. */
  winner?: DecideInfo
  tasks: Map<string, TaskInfo>
  /** Plan facts produced by the fold (PROTOCOL.md §5), in fold order. */
  facts: PlanFact[]
  reconciles: Cid[]
  checkpoints: Cid[]
  equivocations: Equivocation[]
  accepted: number
  /** Envelopes in the log that did not apply, with the reason. */
  rejected: Map<Cid, string>
}

export function emptyThreadState(thread: string): ThreadState {
  return {
    thread,
    proposals: new Map(),
    planVotes: new Map(),
    decides: new Map(),
    tasks: new Map(),
    facts: [],
    reconciles: [],
    checkpoints: [],
    equivocations: [],
    accepted: 0,
    rejected: new Map(),
  }
}

/** Task id of a task named `name` in proposal `proposal`. */
export function taskId(proposal: string, name: string): string {
  return `${proposal}/${name}`
}

/** Result of applying one envelope: `undefined` when it applied, else the reason it did not. */
export type ApplyOutcome = string | undefined

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

/**
 * Applies one verified envelope to the thread state (mutating it). Returns `undefined` when the
 * envelope applied, or a short reason when it did not (the state is then unchanged).
 */
export function applyEnvelope(state: ThreadState, env: AnyEnvelope, params: NetworkParams): ApplyOutcome {
  if (env.thread !== state.thread) return 'wrong-thread'
  switch (env.kind) {
    case 'NEED': {
      if (state.need !== undefined) return 'duplicate-need'
      if (env.payload.need !== env.thread) return 'need-thread-mismatch'
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
    case 'PROPOSE': {
      const need = state.need
      if (need === undefined) return 'no-need'
      if (env.payload.need !== env.thread) return 'need-thread-mismatch'
      if (state.proposals.has(env.payload.proposal)) return 'duplicate-proposal'
      if (state.proposals.size >= params.maxProposalsPerNeed) return 'too-many-proposals'
      const invalid = checkPatch(env.payload, need)
      if (invalid !== undefined) return invalid
      state.proposals.set(env.payload.proposal, {
        id: env.payload.proposal,
        env: env.id,
        planner: env.sender,
        payload: env.payload,
      })
      return undefined
    }
    case 'ATTEST_PLAN': {
      const proposal = state.proposals.get(env.payload.proposal)
      if (proposal === undefined) return 'unknown-proposal'
      if (!isEligibleVerifier(params, env.sender)) return 'not-a-verifier'
      if (!params.bootstrap && env.sender === proposal.planner) return 'self-attestation'
      let votes = state.planVotes.get(proposal.id)
      if (votes === undefined) {
        votes = new Map()
        state.planVotes.set(proposal.id, votes)
      }
      const previous = votes.get(env.sender)
      if (previous !== undefined) {
        if (previous.verdict !== env.payload.verdict) {
          state.equivocations.push({
            sender: env.sender,
            kind: env.kind,
            subject: proposal.id,
            envelopes: [previous.env, env.id],
          })
        }
        return 'duplicate-vote'
      }
      votes.set(env.sender, { verdict: env.payload.verdict, env: env.id })
      if (state.quorum === undefined) {
        const accepting = [...votes.values()].filter((vote) => vote.verdict === 'accept')
        if (accepting.length >= kPlanOf(params)) {
          state.quorum = { proposal: proposal.id, attestations: accepting.map((vote) => vote.env) }
        }
      }
      return undefined
    }
    case 'DECIDE':
      return applyDecide(state, env, params)
    case 'UPDATE_PLAN': {
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
    case 'RECONCILE': {
      if (env.payload.thread !== env.thread) return 'reconcile-thread-mismatch'
      state.reconciles.push(env.id)
      return undefined
    }
    case 'CHECKPOINT': {
      state.checkpoints.push(env.id)
      return undefined
    }
    case 'CLAIM': {
      const task = liveTask(state, env.payload.task)
      if (typeof task === 'string') return task
      if (isFenced(state, env)) return 'stale-epoch'
      if (task.state !== 'DECIDED') return task.lease ? 'lease-held' : `not-claimable:${task.state}`
      for (const parent of task.parents) {
        if (state.tasks.get(parent)?.state !== 'FINAL') return 'parents-unfinished'
      }
      const ttl = env.payload.leaseTtlMs
      if (ttl < params.minLeaseTtlMs || ttl > params.maxLeaseTtlMs) return 'lease-ttl-out-of-bounds'
      task.lease = { claim: env.id, worker: env.sender, ttlMs: ttl, renewedBy: env.id, progress: 0 }
      setTaskState(state, env, task, 'CLAIMED')
      return undefined
    }
    case 'HEARTBEAT':
    case 'YIELD':
    case 'RELEASE': {
      const task = liveTask(state, env.payload.task)
      if (typeof task === 'string') return task
      const lease = task.lease
      if (lease === undefined || lease.claim !== env.payload.claim) return 'stale-lease'
      if (env.kind !== 'RELEASE' || env.payload.reason !== 'lease-expired') {
        if (env.sender !== lease.worker) return 'not-lease-holder'
      }
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
    case 'COMMIT': {
      const task = liveTask(state, env.payload.task)
      if (typeof task === 'string') return task
      const lease = task.lease
      if (lease === undefined || lease.claim !== env.payload.claim) return 'stale-lease'
      if (env.sender !== lease.worker) return 'not-lease-holder'
      if (env.fence !== lease.claim) return 'bad-fence'
      if (isFenced(state, env)) return 'stale-epoch'
      if (env.payload.outputs.length === 0) return 'no-outputs'
      delete task.lease
      task.commit = {
        id: env.id,
        worker: env.sender,
        claim: lease.claim,
        outputs: env.payload.outputs,
        round: task.round,
        committee: committeeFor(env.id, env.sender, task.kResult, params),
        votes: new Map(),
        challenges: new Map(),
        invalidations: new Map(),
      }
      setTaskState(state, env, task, 'COMMITTED')
      return undefined
    }
    case 'ATTEST': {
      const task = liveTask(state, env.payload.task)
      if (typeof task === 'string') return task
      const commit = task.commit
      if (commit === undefined || commit.id !== env.payload.commit) return 'unknown-commit'
      if (!inCommittee(commit.committee, env.sender, params)) return 'not-in-committee'
      const previous = commit.votes.get(env.sender)
      if (previous !== undefined) {
        if (previous.verdict !== env.payload.verdict) {
          state.equivocations.push({
            sender: env.sender,
            kind: env.kind,
            subject: commit.id,
            envelopes: [previous.env, env.id],
          })
        }
        return 'duplicate-vote'
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
        } else if (fails >= task.kResult) {
          commit.outcome = 'rejected'
          task.pastCommits.push(commit)
          delete task.commit
          reopen(state, env, task)
        }
      }
      return undefined
    }
    case 'FINALIZE': {
      const task = liveTask(state, env.payload.task)
      if (typeof task === 'string') return task
      const commit = task.commit
      if (commit === undefined || commit.id !== env.payload.commit) return 'unknown-commit'
      if (task.state === 'FINAL') return 'already-final'
      const voters = new Set<Did>()
      for (const attestation of env.payload.attestations) {
        if (attestation.kind !== 'ATTEST' || attestation.thread !== env.thread) return 'bad-attestation'
        const payload = (attestation as Envelope<'ATTEST'>).payload
        if (payload.commit !== commit.id || payload.verdict !== 'pass') return 'bad-attestation'
        if (!inCommittee(commit.committee, attestation.sender, params)) return 'attester-not-in-committee'
        voters.add(attestation.sender)
      }
      if (voters.size < task.kResult) return 'insufficient-quorum'
      commit.finalizedBy = env.id
      for (const ref of commit.outputs) fact(state, env, { op: 'PRODUCES', task: task.id, ref })
      setTaskState(state, env, task, 'FINAL')
      return undefined
    }
    case 'CHALLENGE': {
      const task = liveTask(state, env.payload.task)
      if (typeof task === 'string') return task
      const commit = task.commit
      if (commit === undefined || commit.id !== env.payload.commit) return 'unknown-commit'
      if (commit.challenges.has(env.id)) return 'duplicate-challenge'
      if (env.payload.bond < requiredBond(env.payload.proof)) return 'bond-too-small'
      commit.challenges.set(env.id, { challenger: env.sender, proofType: env.payload.proof.type })
      return undefined
    }
    case 'INVALIDATE': {
      const task = liveTask(state, env.payload.task)
      if (typeof task === 'string') return task
      const commit = task.commit
      if (commit === undefined || commit.id !== env.payload.commit) return 'unknown-commit'
      if (!commit.challenges.has(env.payload.challenge)) return 'unknown-challenge'
      if (!isEligibleVerifier(params, env.sender) || env.sender === commit.worker) return 'not-a-verifier'
      let voters = commit.invalidations.get(env.payload.challenge)
      if (voters === undefined) {
        voters = new Set()
        commit.invalidations.set(env.payload.challenge, voters)
      }
      if (voters.has(env.sender)) return 'duplicate-vote'
      voters.add(env.sender)
      if (voters.size >= task.kResult) {
        commit.outcome = 'invalidated'
        task.pastCommits.push(commit)
        delete task.commit
        task.kResult = isOpenPool(params)
          ? task.kResult + 1
          : Math.min(task.kResult + 1, Math.max(1, params.verifiers.length))
        reopen(state, env, task)
        reopenDescendants(state, env, task)
      }
      return undefined
    }
  }
}

function applyDecide(state: ThreadState, env: Envelope<'DECIDE'>, params: NetworkParams): ApplyOutcome {
  const payload = env.payload
  if (payload.need !== env.thread) return 'need-thread-mismatch'
  if (env.sender !== payload.decider) return 'decider-not-sender'
  if (payload.epoch !== env.epoch) return 'epoch-mismatch'
  const proposal = state.proposals.get(payload.proposal)
  if (proposal === undefined) return 'unknown-proposal'
  const required = kPlanOf(params)
  if (payload.kPlan < required) return 'kplan-too-small'
  const voters = new Set<Did>()
  for (const attestation of payload.attestations) {
    if (attestation.kind !== 'ATTEST_PLAN' || attestation.thread !== env.thread) return 'bad-attestation'
    const vote = (attestation as Envelope<'ATTEST_PLAN'>).payload
    if (vote.proposal !== proposal.id || vote.verdict !== 'accept') return 'bad-attestation'
    if (!isEligibleVerifier(params, attestation.sender)) return 'attester-not-a-verifier'
    if (!params.bootstrap && attestation.sender === proposal.planner) return 'self-attestation'
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
  }
  state.decides.set(env.id, info)
  materializePlan(state, env, proposal, params)
  if (state.winner === undefined || compareDecideInfo(info, state.winner) < 0) state.winner = info
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
  params: NetworkParams,
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
      kResult: kResultOf(params),
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
