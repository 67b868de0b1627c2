/**
 * Property checkers of the simulator (PROTOCOL.md §13). They read what the core produced — logs,
 * accepted envelopes, store histories — and judge it with rules written independently of the
 * fold, so that a bug in the core shows up as a violation rather than agreeing with itself.
 */
import type { DecideRecord } from '../core/consensus.ts'
import { committeeFor } from '../core/thread/committee.ts'
import {
  inCommittee,
  isEligibleVerifier,
  kPlanOf,
  kResultOf,
  type NetworkParams,
} from '../core/thread/params.ts'
import type { ThreadReplica } from '../core/thread/replica.ts'
import type { Envelope } from '../core/types.ts'

/**
 * Protocol properties, plus `no-agent-error` (an agent never fails with an unexpected error) and,
 * with the economy, `P3` and `conservation` (see economy.ts).
 */
export type Property = 'P1' | 'P2' | 'P3' | 'P4' | 'P5' | 'P6' | 'no-agent-error' | 'conservation'
export const CHECKED_PROPERTIES: readonly Property[] = ['P1', 'P2', 'P4', 'P5', 'P6', 'no-agent-error']
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

/** Checks one peer's replica of one thread: P1 (per epoch), P4, P5 and P6 on accepted envelopes. */
export function checkReplica(
  peer: number,
  replica: ThreadReplica,
  params: NetworkParams,
  verified: SignatureOracle,
  violations: Violation[],
): void {
  const thread = replica.thread
  const rejected = replica.state.rejected
  const accepted = replica.envelopes().filter((env) => !rejected.has(env.id))
  const report = (property: Property, message: string) => violations.push({ property, peer, thread, message })

  // P1: accepted DECIDEs agree within an epoch; the state's winner is the merge rule's choice.
  const decidedInEpoch = new Map<number, string>()
  const decides = accepted.filter((env): env is Envelope<'DECIDE'> => env.kind === 'DECIDE')
  for (const env of decides) {
    const previous = decidedInEpoch.get(env.payload.epoch)
    if (previous !== undefined && previous !== env.payload.proposal) {
      report('P1', `two DECIDEs for epoch ${env.payload.epoch}: ${previous} and ${env.payload.proposal}`)
    }
    decidedInEpoch.set(env.payload.epoch, env.payload.proposal)
  }
  if (decides.length > 0) {
    const best = decides.reduce((a, b) => {
      const pa = a.payload
      const pb = b.payload
      if (pa.epoch !== pb.epoch) return pa.epoch > pb.epoch ? a : b
      if (pa.lamport !== pb.lamport) return pa.lamport > pb.lamport ? a : b
      if (pa.decider !== pb.decider) return pa.decider < pb.decider ? a : b
      if (pa.proposal !== pb.proposal) return pa.proposal < pb.proposal ? a : b
      return a.id < b.id ? a : b
    })
    if (replica.state.winner?.proposal !== best.payload.proposal) {
      report(
        'P1',
        `winner ${replica.state.winner?.proposal} is not the merge rule's ${best.payload.proposal}`,
      )
    }
  }

  // P6: every accepted DECIDE / FINALIZE carries ≥ K distinct, eligible, correctly signed attestations.
  const kPlan = kPlanOf(params)
  for (const env of decides) {
    const planner = accepted.find(
      (e) => e.kind === 'PROPOSE' && e.payload.proposal === env.payload.proposal,
    )?.sender
    const voters = new Set<string>()
    for (const attestation of env.payload.attestations) {
      const ok =
        attestation.kind === 'ATTEST_PLAN' &&
        attestation.thread === thread &&
        (attestation as Envelope<'ATTEST_PLAN'>).payload.proposal === env.payload.proposal &&
        (attestation as Envelope<'ATTEST_PLAN'>).payload.verdict === 'accept' &&
        isEligibleVerifier(params, attestation.sender) &&
        (params.bootstrap || attestation.sender !== planner) &&
        verified(attestation)
      if (ok) voters.add(attestation.sender)
    }
    if (voters.size < kPlan)
      report('P6', `DECIDE ${env.id} has ${voters.size} valid attestations < K_plan ${kPlan}`)
  }
  const commits = new Map(
    accepted.filter((env): env is Envelope<'COMMIT'> => env.kind === 'COMMIT').map((env) => [env.id, env]),
  )
  const kResult = kResultOf(params)
  for (const env of accepted) {
    if (env.kind !== 'FINALIZE') continue
    const commit = commits.get(env.payload.commit)
    if (!commit) {
      report('P6', `FINALIZE ${env.id} accepted without its COMMIT`)
      continue
    }
    const task = replica.state.tasks.get(env.payload.task)
    const committee = committeeFor(commit.id, commit.sender, task?.kResult ?? kResult, params)
    const voters = new Set<string>()
    for (const attestation of env.payload.attestations) {
      const payload = (attestation as Envelope<'ATTEST'>).payload
      const ok =
        attestation.kind === 'ATTEST' &&
        attestation.thread === thread &&
        payload.commit === commit.id &&
        payload.verdict === 'pass' &&
        inCommittee(committee, attestation.sender, params) &&
        verified(attestation)
      if (ok) voters.add(attestation.sender)
    }
    if (voters.size < kResult) {
      report('P6', `FINALIZE ${env.id} has ${voters.size} valid attestations < K_result ${kResult}`)
    }
  }

  // P4 and P5 on leases: walk accepted lease verbs in total order.
  const claims = new Map<string, Envelope<'CLAIM'>>()
  const ended = new Set<string>()
  const winnerEpochOf = new Map<string, number>()
  for (const env of decides) {
    const epoch = winnerEpochOf.get(env.payload.proposal)
    if (epoch === undefined || env.payload.epoch < epoch)
      winnerEpochOf.set(env.payload.proposal, env.payload.epoch)
  }
  const liveByTask = new Map<string, string>()
  for (const env of accepted) {
    switch (env.kind) {
      case 'CLAIM': {
        const live = liveByTask.get(env.payload.task)
        // Every way a lease ends passes through COMMIT, YIELD or RELEASE of its claim.
        if (live !== undefined && !ended.has(live))
          report('P5', `task ${env.payload.task} has two live leases`)
        claims.set(env.id, env)
        liveByTask.set(env.payload.task, env.id)
        break
      }
      case 'HEARTBEAT':
      case 'COMMIT': {
        const claim = claims.get(env.payload.claim)
        if (!claim) report('P4', `${env.kind} ${env.id} under an unknown claim`)
        else if (ended.has(claim.id)) report('P4', `${env.kind} ${env.id} under an ended lease`)
        else if (claim.sender !== env.sender) report('P4', `${env.kind} ${env.id} not from the lease holder`)
        if (env.fence !== env.payload.claim) report('P4', `${env.kind} ${env.id} without the lease's fence`)
        const proposal = env.payload.task.slice(0, env.payload.task.lastIndexOf('/'))
        const epoch = winnerEpochOf.get(proposal)
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
