/**
 * Property checkers of the simulator (docs/PROTOCOL.md §12). They read what the core produced —
 * logs, accepted envelopes, store histories — and judge it with rules written independently of the
 * fold, so that a bug in the core shows up as a violation rather than agreeing with itself.
 */
import { threadIdOf } from '../core/codec.ts'
import type { DecideRecord } from '../core/consensus.ts'
import { committeeFor } from '../core/thread/committee.ts'
import {
  inCommittee,
  isAnchor,
  isEligibleVerifier,
  kPlanOf,
  kResultOf,
  type NetworkParams,
  withPool,
} from '../core/thread/params.ts'
import type { ThreadReplica } from '../core/thread/replica.ts'
import { type AnyEnvelope, type Envelope, GENESIS_EPOCH, MAX_LAMPORT } from '../core/types.ts'

/**
 * Protocol properties, plus `no-agent-error` (an agent never fails with an unexpected error) and,
 * with the economy, `P3` and `conservation` (see economy.ts).
 */
export type Property =
  | 'P1'
  | 'P2'
  | 'P3'
  | 'P4'
  | 'P5'
  | 'P6'
  | 'P9'
  | 'P10'
  | 'no-agent-error'
  | 'conservation'
export const CHECKED_PROPERTIES: readonly Property[] = [
  'P1',
  'P2',
  'P4',
  'P5',
  'P6',
  'P9',
  'P10',
  'no-agent-error',
]
/** Properties checked when the simulator runs with its economy. */
export const ECONOMY_PROPERTIES: readonly Property[] = ['P3', 'conservation']

export interface Violation {
  property: Property
  message: string
  peer?: number
  thread?: string
}

/** Ids of envelopes whose signatures a checker has verified (shared across checks of one run). */
export type SignatureOracle = (env: Envelope) => boolean

/**
 * P1 on a store's history: each (need, epoch) was decided for one proposal at most, and no write
 * carried an epoch older than the store's epoch at that moment (P4 for DECIDE).
 */
export function checkStoreHistory(
  history: readonly { record: DecideRecord; storeEpoch: number }[],
  violations: Violation[],
): void {
  const seen = new Map<string, string>()
  for (const { record, storeEpoch } of history) {
    const key = `${record.need}@${record.epoch}`
    const previous = seen.get(key)
    if (previous !== undefined && previous !== record.proposal) {
      violations.push({
        property: 'P1',
        thread: record.need,
        message: `two proposals decided for ${record.need} in epoch ${record.epoch}: ${previous}, ${record.proposal}`,
      })
    }
    seen.set(key, record.proposal)
    if (record.epoch < storeEpoch) {
      violations.push({
        property: 'P4',
        thread: record.need,
        message: `DECIDE written with stale epoch ${record.epoch} < ${storeEpoch}`,
      })
    }
  }
}

function accepted(replica: ThreadReplica): AnyEnvelope[] {
  const rejected = replica.state.rejected
  return replica.envelopes().filter((env) => !rejected.has(env.id))
}

/** The parameters of a decided thread, from the merge rule's choice among accepted DECIDEs. */
function threadRules(decides: readonly Envelope<'DECIDE'>[], params: NetworkParams): NetworkParams {
  const best = bestDecide(decides)
  return best ? withPool(params, best.payload.pool) : params
}

function bestDecide(decides: readonly Envelope<'DECIDE'>[]): Envelope<'DECIDE'> | undefined {
  if (decides.length === 0) return undefined
  return decides.reduce((a, b) => {
    const pa = a.payload
    const pb = b.payload
    if (pa.epoch !== pb.epoch) return pa.epoch > pb.epoch ? a : b
    if (pa.lamport !== pb.lamport) return pa.lamport > pb.lamport ? a : b
    if (pa.decider !== pb.decider) return pa.decider < pb.decider ? a : b
    if (pa.proposal !== pb.proposal) return pa.proposal < pb.proposal ? a : b
    return a.id < b.id ? a : b
  })
}

/** Checks one peer's replica of one thread: P1 (per epoch), P4, P5 and P6 on accepted envelopes. */
export function checkReplica(
  peer: number,
  replica: ThreadReplica,
  params: NetworkParams,
  verified: SignatureOracle,
  violations: Violation[],
): void {
  const thread = replica.thread
  const log = accepted(replica)
  const report = (property: Property, message: string) => violations.push({ property, peer, thread, message })

  // P1: accepted DECIDEs agree within an epoch; the state's winner is the merge rule's choice.
  const decidedInEpoch = new Map<number, string>()
  const decides = log.filter((env): env is Envelope<'DECIDE'> => env.kind === 'DECIDE')
  for (const env of decides) {
    const previous = decidedInEpoch.get(env.payload.epoch)
    if (previous !== undefined && previous !== env.payload.proposal) {
      report('P1', `two DECIDEs for epoch ${env.payload.epoch}: ${previous} and ${env.payload.proposal}`)
    }
    decidedInEpoch.set(env.payload.epoch, env.payload.proposal)
  }
  const best = bestDecide(decides)
  if (best && replica.state.winner?.proposal !== best.payload.proposal) {
    report('P1', `winner ${replica.state.winner?.proposal} is not the merge rule's ${best.payload.proposal}`)
  }

  // P6: every accepted DECIDE / FINALIZE carries ≥ K distinct, eligible, correctly signed attestations.
  for (const env of decides) {
    const rules = withPool(params, env.payload.pool)
    const planner = log.find((e) => e.kind === 'PROPOSE' && e.id === env.payload.proposal)?.sender
    const voters = new Set<string>()
    for (const attestation of env.payload.attestations) {
      const ok =
        attestation.kind === 'ATTEST_PLAN' &&
        attestation.thread === thread &&
        (attestation as Envelope<'ATTEST_PLAN'>).payload.proposal === env.payload.proposal &&
        (attestation as Envelope<'ATTEST_PLAN'>).payload.verdict === 'accept' &&
        isEligibleVerifier(rules, attestation.sender) &&
        (rules.bootstrap || attestation.sender !== planner) &&
        verified(attestation)
      if (ok) voters.add(attestation.sender)
    }
    if (voters.size < kPlanOf(rules))
      report('P6', `DECIDE ${env.id} has ${voters.size} valid attestations < K_plan ${kPlanOf(rules)}`)
  }
  const commits = new Map(
    log.filter((env): env is Envelope<'COMMIT'> => env.kind === 'COMMIT').map((env) => [env.id, env]),
  )
  const rules = threadRules(decides, params)
  const kResult = kResultOf(rules)
  for (const env of log) {
    if (env.kind !== 'FINALIZE') continue
    const commit = commits.get(env.payload.commit)
    if (!commit) {
      report('P6', `FINALIZE ${env.id} accepted without its COMMIT`)
      continue
    }
    const task = replica.state.tasks.get(env.payload.task)
    const committee = committeeFor(commit.id, commit.sender, task?.kResult ?? kResult, rules)
    const voters = new Set<string>()
    for (const attestation of env.payload.attestations) {
      const payload = (attestation as Envelope<'ATTEST'>).payload
      const ok =
        attestation.kind === 'ATTEST' &&
        attestation.thread === thread &&
        payload.commit === commit.id &&
        payload.verdict === 'pass' &&
        inCommittee(committee, attestation.sender, rules) &&
        verified(attestation)
      if (ok) voters.add(attestation.sender)
    }
    if (voters.size < kResult) {
      report('P6', `FINALIZE ${env.id} has ${voters.size} valid attestations < K_result ${kResult}`)
    }
  }

  // P4 and P5 on leases: walk accepted lease verbs in total order. A lease starts with a GRANT.
  const granted = new Map<string, string>()
  const ended = new Set<string>()
  const winnerEpochOf = new Map<string, number>()
  for (const env of decides) {
    const epoch = winnerEpochOf.get(env.payload.proposal)
    if (epoch === undefined || env.payload.epoch < epoch)
      winnerEpochOf.set(env.payload.proposal, env.payload.epoch)
  }
  const claims = new Map<string, AnyEnvelope>()
  for (const env of replica.envelopes()) if (env.kind === 'CLAIM') claims.set(env.id, env)
  const liveByTask = new Map<string, string>()
  for (const env of log) {
    switch (env.kind) {
      case 'GRANT': {
        const live = liveByTask.get(env.payload.task)
        // Every way a lease ends passes through COMMIT, YIELD or RELEASE of its claim.
        if (live !== undefined && !ended.has(live))
          report('P5', `task ${env.payload.task} has two live leases`)
        granted.set(env.payload.claim, env.payload.task)
        liveByTask.set(env.payload.task, env.payload.claim)
        break
      }
      case 'HEARTBEAT':
      case 'COMMIT': {
        const claim = claims.get(env.payload.claim)
        if (!claim || !granted.has(claim.id))
          report('P4', `${env.kind} ${env.id} under a claim never granted`)
        else if (ended.has(claim.id)) report('P4', `${env.kind} ${env.id} under an ended lease`)
        else if (claim.sender !== env.sender) report('P4', `${env.kind} ${env.id} not from the lease holder`)
        if (env.fence !== env.payload.claim) report('P4', `${env.kind} ${env.id} without the lease's fence`)
        const cut = env.payload.task.lastIndexOf('/')
        const epoch = winnerEpochOf.get(env.payload.task.slice(0, cut))
        if (epoch !== undefined && env.epoch < epoch) report('P4', `${env.kind} ${env.id} with stale epoch`)
        if (env.kind === 'COMMIT' && claim) ended.add(claim.id)
        break
      }
      case 'YIELD':
      case 'RELEASE':
        ended.add(env.payload.claim)
        break
      default:
        break
    }
  }
  for (const task of replica.state.tasks.values()) {
    if (task.lease && ended.has(task.lease.claim)) report('P5', `task ${task.id} holds an ended lease`)
  }
}

/**
 * P9, second half: an envelope the fold accepted had the authority of docs/PROTOCOL.md §11. Written
 * from the rules, not from the fold: anchors alone decide, grant, scavenge, finalize, reconcile and
 * checkpoint; only a lease's holder heartbeats, yields or commits it; only the committee attests;
 * judges are anchors, or outside bootstrap eligible verifiers other than the challenger, the worker
 * and the commit's passing attesters; a thread is opened by the one NEED its id names; epochs are
 * only those an anchor issued; every envelope is of this network. Returns why `env` lacked
 * authority, or `undefined`.
 */
export function authorityProblem(
  env: AnyEnvelope,
  replica: ThreadReplica,
  params: NetworkParams,
): string | undefined {
  if (env.net !== params.network) return 'accepted from another network'
  if (env.lamport > MAX_LAMPORT) return 'accepted with a lamport past the bound'
  const log = replica.envelopes()
  const get = (id: string) => replica.get(id)
  const acceptedDecides = accepted(replica).filter((e): e is Envelope<'DECIDE'> => e.kind === 'DECIDE')
  if (env.kind !== 'DECIDE') {
    const index = log.findIndex((held) => held.id === env.id)
    const issued = acceptedDecides
      .filter((decide) => log.indexOf(decide) < index)
      .reduce((max, decide) => Math.max(max, decide.payload.epoch), GENESIS_EPOCH)
    if (env.epoch > issued) return `accepted at epoch ${env.epoch}, which no anchor had issued (${issued})`
  }
  const anchorOnly = ['DECIDE', 'RECONCILE', 'CHECKPOINT', 'GRANT', 'FINALIZE']
  if (anchorOnly.includes(env.kind) && !isAnchor(params, env.sender)) {
    return `${env.kind} accepted from ${env.sender}, who is no anchor`
  }
  const rules = threadRules(acceptedDecides, params)
  switch (env.kind) {
    case 'NEED':
      return threadIdOf(env) === env.thread
        ? undefined
        : 'a NEED accepted under a thread id that is not its own'
    case 'HEARTBEAT':
    case 'YIELD':
    case 'COMMIT':
    case 'RELEASE': {
      const claim = get(env.payload.claim)
      if (env.kind === 'RELEASE' && env.payload.reason !== 'worker-failed') {
        return isAnchor(params, env.sender) ? undefined : 'a scavenging RELEASE accepted from a non-anchor'
      }
      if (claim?.kind !== 'CLAIM') return `${env.kind} accepted under ${env.payload.claim}, which is no CLAIM`
      return claim.sender === env.sender
        ? undefined
        : `${env.kind} accepted from someone else than the lease holder`
    }
    case 'ATTEST': {
      const commit = get(env.payload.commit)
      if (commit?.kind !== 'COMMIT') return 'ATTEST accepted of something that is no COMMIT'
      const task = replica.state.tasks.get(env.payload.task)
      const invalidated = task ? task.pastCommits.filter((c) => c.outcome === 'invalidated').length : 0
      const widest = committeeFor(commit.id, commit.sender, kResultOf(rules) + invalidated, rules)
      return inCommittee(widest, env.sender, rules) ? undefined : 'ATTEST accepted from outside the committee'
    }
    case 'INVALIDATE': {
      if (isAnchor(params, env.sender)) return undefined
      const challenge = get(env.payload.challenge)
      const commit = get(env.payload.commit)
      if (rules.bootstrap) return 'INVALIDATE accepted from a non-anchor in bootstrap'
      if (!isEligibleVerifier(rules, env.sender)) return 'INVALIDATE accepted from a non-verifier'
      if (challenge?.sender === env.sender) return 'INVALIDATE accepted from the challenger itself'
      if (commit?.sender === env.sender) return 'INVALIDATE accepted from the worker itself'
      const passed = log.some(
        (e) =>
          e.kind === 'ATTEST' &&
          e.sender === env.sender &&
          e.payload.commit === env.payload.commit &&
          e.payload.verdict === 'pass' &&
          !replica.state.rejected.has(e.id),
      )
      return passed ? 'INVALIDATE accepted from a verifier that passed the commit' : undefined
    }
    default:
      return undefined
  }
}

/**
 * P9 for one delivery: a refused envelope left the canonical state as it was (`hashBefore`), and an
 * accepted one had authority. `refused` is the fold's reason, if it refused.
 */
export function checkDelivery(
  peer: number,
  env: AnyEnvelope,
  replica: ThreadReplica,
  params: NetworkParams,
  outcome: { refused?: string; hashBefore?: string },
  violations: Violation[],
): void {
  const thread = replica.thread
  if (outcome.refused !== undefined) {
    if (outcome.hashBefore !== undefined && replica.freshStateHash() !== outcome.hashBefore) {
      violations.push({
        property: 'P9',
        peer,
        thread,
        message: `${env.kind} ${env.id} was refused (${outcome.refused}) but changed the state`,
      })
    }
    return
  }
  // Only what the fold accepted needs authority (a duplicate, a pending or a refused one changed nothing).
  if (replica.get(env.id) === undefined || replica.state.rejected.has(env.id)) return
  const problem = authorityProblem(env, replica, params)
  if (problem !== undefined) {
    violations.push({ property: 'P9', peer, thread, message: `${env.kind} ${env.id}: ${problem}` })
  }
}

/** What P10 needs of a run's end. */
export interface LivenessReport {
  converged: boolean
  /** Funded NEEDs of honest requesters, with whether each reached FINAL. */
  needs: readonly { need: string; final: boolean }[]
  /** How long the run was quiet (no faults) before it ended, ms of virtual time. */
  quietMs: number
}

/**
 * P10 (liveness): once the faults stopped, within the quiet period every funded NEED reached FINAL
 * and every honest replica converged to one state.
 */
export function checkLiveness(report: LivenessReport, violations: Violation[]): void {
  if (!report.converged) {
    violations.push({
      property: 'P10',
      message: `the honest replicas did not converge within ${report.quietMs} ms after the faults stopped`,
    })
  }
  for (const { need, final } of report.needs) {
    if (!final) {
      violations.push({
        property: 'P10',
        thread: need,
        message: `a funded NEED did not reach FINAL within ${report.quietMs} ms after the faults stopped`,
      })
    }
  }
}
