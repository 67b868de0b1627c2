/**
 * What a thread's signed envelopes mean for the credit ledger (docs/PROTOCOL.md §5 steps 6–11, §9): the
 * escrows they open (the NEED's budget, each COMMIT's verify bounty, each CHALLENGE's bond) and how
 * each closes — bounties paid to the verifiers that passed a FINAL result, budgets paid to workers,
 * upheld challenges slashing the wrong verifiers and the worker, frivolous challengers losing their
 * bonds, equivocators slashed on their own contradicting ATTESTs.
 *
 * Pure and deterministic: the same envelopes, ledger and `nowMs` give the same operations, so every
 * peer derives the same ledger from the same threads (the simulator settles after a run with
 * `nowMs = Infinity`; an anchor re-derives its live ledger as time passes). Payouts for a FINAL
 * result wait for 2 × T_challenge after its FINALIZE; until then they are reported as `pending`.
 * Escrows of work still under way stay open unless `closing` says the thread is over (then they are
 * refunded).
 */
import type { NetworkParams } from '../thread/params.ts'
import type { ThreadReplica } from '../thread/replica.ts'
import type { CommitInfo } from '../thread/state.ts'
import type { Did, Envelope } from '../types.ts'
import type { AccountState, EscrowState, LedgerOp, Payout } from './ledger.ts'
import { contradictingVerifier } from './proofs.ts'
import type { Outcome } from './reputation.ts'
import { type PoolEntry, relatedParties } from './selection.ts'
import {
  type RelatedParties,
  settleBounty,
  settleBudget,
  settleFrivolous,
  settleInvalidation,
} from './settlement.ts'

/** A verify bounty above this many times the task's claimed cost (and above the floor) is a spike. */
export const BOUNTY_SPIKE_FACTOR = 10
/** Bounties up to this are never spikes, whatever the cost. */
export const BOUNTY_SPIKE_FLOOR = 10

/** Share of stake an equivocating verifier loses, per-mille. */
export const EQUIVOCATION_SLASH_PER_MILLE = 100

/** The ledger as settlement sees it: read escrows and accounts, apply an operation (false when refused). */
export interface LedgerAccess {
  escrow(id: string): Readonly<EscrowState> | undefined
  account(did: Did): Readonly<AccountState>
  apply(op: LedgerOp): boolean
}

export interface SettleThreadOptions {
  params: NetworkParams
  /** Settlement time: payouts whose challenge period ends after it are held back. */
  nowMs: number
  /** The thread is over: refund every escrow still open. @default nowMs === Infinity */
  closing?: boolean
  /** Related parties are never paid by each other's escrows. @default related by the thread's pool (relatedByPool) */
  related?: RelatedParties
}

export interface ThreadSettlementReport {
  upheldChallenges: number
  frivolousChallenges: number
  invalidatedCommits: number
  equivocatorsSlashed: number
  /** Senders of equivocation records that did not prove themselves (a bug if ever non-empty). */
  unproven: Did[]
  /** Payouts waiting for their challenge period to end. */
  pending: Payout[]
  /** The thread is decided but its requester could not fund the budget (A7): nothing is paid from it. */
  unfunded: boolean
  /** What the thread says of each party, for reputation (settled outcomes only). */
  outcomes: Outcome[]
}

/**
 * Related parties by a pool's entries (docs/PROTOCOL.md §9): one identity, or the same entity or org
 * among the pool's verifiers. A thread settles with the pool its DECIDE was taken under.
 */
export function relatedByPool(entries: readonly PoolEntry[]): RelatedParties {
  return (a, b) => a === b || (entries.length > 0 && relatedParties(a, entries).has(b))
}

/** When a decided thread's lifetime ends and when it settles for good (docs/PROTOCOL.md §9.6). */
export interface ThreadTimes {
  /** The winning DECIDE's `ts` + `threadLifetimeMs`: results finalized from then on are not paid. */
  closeMs: number
  /**
   * From this time on nothing the thread holds can change the ledger any more: its plan is done
   * and every payout finalized in time has fallen due, or its lifetime is over (and those payouts
   * fell due). Every escrow still open is refunded then.
   */
  sealMs: number
  /** Every task of the winning plan is FINAL, finalized before `closeMs` (its budget pays out). */
  done: boolean
}

/** The times of a decided thread ({@link ThreadTimes}); undefined while it is undecided. */
export function threadTimes(replica: ThreadReplica, params: NetworkParams): ThreadTimes | undefined {
  const { winner } = replica.state
  if (winner === undefined) return undefined
  const closeMs = winner.ts + params.threadLifetimeMs
  let latestDueMs = 0
  let planned = 0
  let done = true
  for (const task of replica.state.tasks.values()) {
    for (const commit of [...task.pastCommits, ...(task.commit ? [task.commit] : [])]) {
      if (finalizedAtMs(replica, commit) < closeMs)
        latestDueMs = Math.max(latestDueMs, payoutDueMs(replica, commit, params))
    }
    if (task.proposal !== winner.proposal) continue
    planned += 1
    if (task.state !== 'FINAL' || !task.commit || finalizedAtMs(replica, task.commit) >= closeMs) done = false
  }
  done &&= planned > 0
  return { closeMs, sealMs: done ? latestDueMs : Math.max(closeMs, latestDueMs), done }
}

/** The `ts` of the FINALIZE of a commit (the anchor's clock), +∞ while it is not finalized. */
function finalizedAtMs(replica: ThreadReplica, commit: CommitInfo): number {
  const finalize = commit.finalizedBy === undefined ? undefined : replica.get(commit.finalizedBy)
  return finalize === undefined ? Number.POSITIVE_INFINITY : finalize.ts
}

/**
 * The time at which a FINAL commit's payouts fall due: its FINALIZE + 2 × T_challenge, by the
 * clock of the anchor that signed the FINALIZE (A6: never a worker's or verifier's `ts`).
 */
export function payoutDueMs(replica: ThreadReplica, commit: CommitInfo, params: NetworkParams): number {
  return finalizedAtMs(replica, commit) + 2 * params.tChallengeMs
}

function escrowOf(env: Envelope): LedgerOp | undefined {
  const escrow =
    env.kind === 'COMMIT'
      ? {
          id: `${env.id}/bounty`,
          amount: (env as Envelope<'COMMIT'>).payload.verifyBounty,
          purpose: 'verify-bounty' as const,
        }
      : env.kind === 'CHALLENGE'
        ? {
            id: `${env.id}/bond`,
            amount: (env as Envelope<'CHALLENGE'>).payload.bond,
            purpose: 'challenge-bond' as const,
          }
        : undefined
  return escrow && escrow.amount > 0 ? { op: 'escrow', from: env.sender, ...escrow } : undefined
}

/**
 * Outcomes one accepted envelope shows by itself: a lease that expired without a COMMIT (the
 * worker timed out), a worker challenging its own result (a self-challenge loop farming bonds or
 * reputation), a verify bounty far above the task's claimed cost (a bounty spike).
 */
function abuseOrTimeout(
  replica: ThreadReplica,
  env: Envelope,
  outcome: (did: Did, kind: Outcome['kind'], atMs: number) => void,
): void {
  if (env.kind === 'RELEASE') {
    const payload = (env as Envelope<'RELEASE'>).payload
    const claim = replica.get(payload.claim)
    if (payload.reason === 'lease-expired' && claim) outcome(claim.sender, 'timeout', env.ts)
  } else if (env.kind === 'CHALLENGE') {
    const challenged = replica.get((env as Envelope<'CHALLENGE'>).payload.commit)
    if (challenged?.sender === env.sender) outcome(env.sender, 'self-challenge', env.ts)
  } else if (env.kind === 'COMMIT') {
    const payload = (env as Envelope<'COMMIT'>).payload
    const claim = replica.get(payload.claim) as Envelope<'CLAIM'> | undefined
    const cost = claim?.payload.cost ?? 0
    if (payload.verifyBounty > Math.max(BOUNTY_SPIKE_FLOOR, BOUNTY_SPIKE_FACTOR * cost)) {
      outcome(env.sender, 'bounty-spike', env.ts)
    }
  }
}

/** Applies to `ledger` everything one thread implies by `options.nowMs`; returns what happened. */
export function settleThread(
  replica: ThreadReplica,
  ledger: LedgerAccess,
  options: SettleThreadOptions,
): ThreadSettlementReport {
  const { params, nowMs } = options
  const times = threadTimes(replica, params)
  // A thread past its seal is over whatever the caller says: what is still open is refunded.
  const closing =
    (options.closing ?? nowMs === Number.POSITIVE_INFINITY) || (times !== undefined && nowMs >= times.sealMs)
  // Results finalized after the thread's lifetime are not paid (as if never finalized).
  const closeMs = times?.closeMs ?? Number.POSITIVE_INFINITY
  const inTime = (commit: CommitInfo) => finalizedAtMs(replica, commit) < closeMs
  const related = options.related ?? relatedByPool(replica.state.winner?.pool.entries ?? [])
  const state = replica.state
  const thread = replica.thread
  const report: ThreadSettlementReport = {
    upheldChallenges: 0,
    frivolousChallenges: 0,
    invalidatedCommits: 0,
    equivocatorsSlashed: 0,
    unproven: [],
    pending: [],
    unfunded: false,
    outcomes: [],
  }
  // An outcome dated by a sender's `ts` is never later than now: a future date would keep its
  // points from decaying (and open a reputation period per distinct future date).
  const outcome = (did: Did, kind: Outcome['kind'], atMs: number) =>
    report.outcomes.push({ did, kind, atMs: Math.min(atMs, nowMs) })
  const open = new Set<string>()
  // A7: the budget is escrowed when the NEED is decided; an unfunded NEED pays nobody.
  if (state.winner && state.need && state.need.budget > 0) {
    const budget: LedgerOp = {
      op: 'escrow',
      id: `${thread}/budget`,
      from: state.need.requester,
      amount: state.need.budget,
      purpose: 'need-budget',
    }
    if (ledger.apply(budget)) open.add(budget.id)
    else report.unfunded = true
  }
  for (const env of replica.envelopes()) {
    if (state.rejected.has(env.id)) continue
    const op = escrowOf(env)
    if (op?.op === 'escrow' && ledger.apply(op)) open.add(op.id)
    abuseOrTimeout(replica, env, outcome)
  }
  const refund = (id: string) => {
    const held = ledger.escrow(id)
    if (held) ledger.apply({ op: 'release', id, payouts: [], burn: 0, refund: held.amount })
  }
  const release = (op: LedgerOp, dueMs: number) => {
    if (dueMs <= nowMs) ledger.apply(op)
    else if (op.op === 'release') report.pending.push(...op.payouts)
  }
  let latestDueMs = 0
  for (const task of [...state.tasks.values()].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const commits: CommitInfo[] = [...task.pastCommits, ...(task.commit ? [task.commit] : [])]
    for (const commit of commits) {
      const bountyId = `${commit.id}/bounty`
      const bounty = ledger.escrow(bountyId)?.amount ?? 0
      const passVoters = [...commit.votes].filter(([, v]) => v.verdict === 'pass').map(([did]) => did)
      const failVoters = [...commit.votes].filter(([, v]) => v.verdict === 'fail').map(([did]) => did)
      const challenges = [...commit.challenges]
      if (commit.outcome === 'invalidated') {
        report.invalidatedCommits += 1
        const [upheld, voters] = [...commit.invalidations].sort(
          (a, b) => b[1].size - a[1].size || (a[0] < b[0] ? -1 : 1),
        )[0]!
        const challenger = commit.challenges.get(upheld)!.challenger
        report.upheldChallenges += 1
        const atMs = replica.get(upheld)?.ts ?? 0
        outcome(commit.worker, 'invalidated', atMs)
        outcome(challenger, 'upheld-challenge', atMs)
        for (const did of passVoters) outcome(did, 'wrong-attestation', atMs)
        for (const did of failVoters) outcome(did, 'honest-attestation', atMs)
        const ops = settleInvalidation({
          commit: commit.id,
          challenge: upheld,
          challenger,
          bond: ledger.escrow(`${upheld}/bond`)?.amount ?? 0,
          funded: ledger.escrow(`${upheld}/bond`) !== undefined,
          bounty,
          worker: { did: commit.worker, staked: ledger.account(commit.worker).staked },
          wrongVerifiers: passVoters.map((did) => ({ did, staked: ledger.account(did).staked })),
          honestVerifiers: [...new Set([...failVoters, ...voters])].filter((did) => did !== challenger),
          bootstrap: state.winner?.pool.bootstrap ?? params.bootstrap,
        })
        for (const op of ops) {
          if (op.op === 'release' && !ledger.escrow(op.id)) continue
          ledger.apply(op)
        }
        for (const [id] of challenges) if (id !== upheld) refund(`${id}/bond`)
      } else if (commit.outcome === 'rejected') {
        if (bounty > 0)
          ledger.apply(
            settleBounty({
              commit: commit.id,
              worker: commit.worker,
              bounty,
              passVoters: failVoters,
              related,
            }),
          )
        for (const [id] of challenges) refund(`${id}/bond`)
      } else if (commit.finalizedBy !== undefined && inTime(commit)) {
        const dueMs = payoutDueMs(replica, commit, params)
        latestDueMs = Math.max(latestDueMs, dueMs)
        if (dueMs <= nowMs) {
          const atMs = replica.get(commit.finalizedBy)?.ts ?? 0
          outcome(commit.worker, 'finalized', atMs)
          for (const did of passVoters) outcome(did, 'honest-attestation', atMs)
          for (const did of failVoters) outcome(did, 'wrong-attestation', atMs)
        }
        if (bounty > 0)
          release(
            settleBounty({ commit: commit.id, worker: commit.worker, bounty, passVoters, related }),
            dueMs,
          )
        for (const [id] of challenges) {
          const bond = ledger.escrow(`${id}/bond`)?.amount ?? 0
          if (bond > 0 && dueMs <= nowMs) {
            report.frivolousChallenges += 1
            outcome(commit.challenges.get(id)!.challenger, 'frivolous-challenge', replica.get(id)?.ts ?? 0)
            ledger.apply(settleFrivolous({ challenge: id, bond, worker: commit.worker }))
          }
        }
      } else if (closing) {
        refund(bountyId)
        for (const [id] of challenges) refund(`${id}/bond`)
      }
    }
  }
  // Equivocation: two signed ATTESTs with opposite verdicts are their own proof; the signer loses
  // a share of its stake (burned), whatever became of the commit.
  for (const equivocation of state.equivocations) {
    if (equivocation.kind !== 'ATTEST') continue
    const proof = { type: 'contradicting-attestations' as const, attestations: [...equivocation.envelopes] }
    const guilty = contradictingVerifier(proof, equivocation.subject, (id) => replica.get(id))
    if (guilty === undefined) {
      report.unproven.push(equivocation.sender)
      continue
    }
    const amount = Math.floor((ledger.account(guilty).staked * EQUIVOCATION_SLASH_PER_MILLE) / 1000)
    if (
      amount > 0 &&
      ledger.apply({
        op: 'slash',
        account: guilty,
        amount,
        payouts: [],
        reason: `equivocated on ${equivocation.subject}`,
      })
    ) {
      report.equivocatorsSlashed += 1
    }
  }
  // The budget: paid out when the winning plan is done, refunded when the thread closes otherwise.
  const winner = state.winner
  const need = state.need
  if (need && ledger.escrow(`${thread}/budget`)) {
    const planned = winner
      ? [...state.tasks.values()].filter((task) => task.proposal === winner.proposal)
      : []
    const done = times?.done ?? false
    if (done || closing) {
      const payments = done
        ? planned.map((task) => {
            const claim = replica.get(task.commit!.claim) as Envelope<'CLAIM'> | undefined
            return { worker: task.commit!.worker, cost: claim?.payload.cost ?? 0 }
          })
        : []
      const price = winner ? state.proposals.get(winner.proposal)?.payload.price : undefined
      release(
        settleBudget({
          need: thread,
          requester: need.requester,
          escrowed: need.budget,
          payments,
          related,
          ...(price === undefined ? {} : { price }),
        }),
        done ? latestDueMs : Number.NEGATIVE_INFINITY,
      )
    }
  }
  if (closing) for (const id of open) if (ledger.escrow(id)) refund(id)
  return report
}
