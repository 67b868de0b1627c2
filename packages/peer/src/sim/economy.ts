/**
 * The simulator's economy: after a run, the converged log of every thread is settled through the
 * credit ledger in a deterministic order (threads by id, envelopes in total order), and the
 * economic properties are checked:
 * - `conservation`: after every ledger operation, Σ holdings = minted − burned;
 * - `P3` (challenge safety): every FINAL result is the honest one (an invalid FINALIZE did not
 *   survive: it was challenged, invalidated and its verifiers and worker slashed), and no valid
 *   result was invalidated (frivolous challenges lose their bonds instead).
 */
import type { CapabilityRegistry } from '../agent/capabilities.ts'
import { type ArtifactStore, artifactCid } from '../core/artifacts.ts'
import { Ledger, type LedgerOp, LedgerRejectedError } from '../core/economy/ledger.ts'
import { contradictingVerifier } from '../core/economy/proofs.ts'
import {
  settleBounty,
  settleBudget,
  settleFrivolous,
  settleInvalidation,
} from '../core/economy/settlement.ts'
import { fetchTaskInputs } from '../core/thread/inputs.ts'
import type { NetworkParams } from '../core/thread/params.ts'
import type { ThreadReplica } from '../core/thread/replica.ts'
import type { CommitInfo, TaskInfo } from '../core/thread/state.ts'
import type { Cid, Did, Envelope } from '../core/types.ts'
import type { Violation } from './checkers.ts'

export const GENESIS_CREDITS = 1_000
export const VERIFIER_STAKE = 300
/** Share of stake an equivocating verifier loses, per-mille. */
export const EQUIVOCATION_SLASH_PER_MILLE = 100

export interface EconomyReport {
  operations: number
  refused: number
  minted: number
  burned: number
  slashes: number
  upheldChallenges: number
  frivolousChallenges: number
  invalidatedCommits: number
  /** Verifiers slashed for signing contradicting attestations (the proof is checked, not trusted). */
  equivocatorsSlashed: number
}

const unrelated = () => false

async function honestOutputs(
  replica: ThreadReplica,
  task: TaskInfo,
  artifacts: ArtifactStore,
  capabilities: CapabilityRegistry,
): Promise<Cid[] | undefined> {
  const inputs = await fetchTaskInputs(replica.state, task, (cid) => artifacts.get(cid))
  if (!inputs || !capabilities.has(task.spec.capability)) return undefined
  return [artifactCid(await capabilities.run(task.spec.capability, inputs))]
}

function same(a: readonly Cid[], b: readonly Cid[]): boolean {
  return a.length === b.length && a.every((ref, index) => ref === b[index])
}

/** Settles every thread and checks P3 and conservation. */
export async function settleEconomy(input: {
  peers: readonly Did[]
  params: NetworkParams
  replicas: readonly ThreadReplica[]
  artifacts: ArtifactStore
  capabilities: CapabilityRegistry
  converged: boolean
  violations: Violation[]
}): Promise<EconomyReport> {
  const ledger = new Ledger()
  const report: EconomyReport = {
    operations: 0,
    refused: 0,
    minted: 0,
    burned: 0,
    slashes: 0,
    upheldChallenges: 0,
    frivolousChallenges: 0,
    invalidatedCommits: 0,
    equivocatorsSlashed: 0,
  }
  let clock = 0
  const apply = (op: LedgerOp, thread?: string): boolean => {
    clock += 1
    try {
      ledger.apply(op, clock)
      report.operations += 1
      if (op.op === 'slash') report.slashes += 1
      return true
    } catch (error) {
      if (!(error instanceof LedgerRejectedError)) throw error
      report.refused += 1
      return false
    } finally {
      const gap = ledger.conservationGap()
      if (gap !== 0) {
        input.violations.push({
          property: 'conservation',
          ...(thread === undefined ? {} : { thread }),
          message: `after ${op.op}: holdings differ from minted − burned by ${gap}`,
        })
      }
    }
  }
  for (const did of input.peers) apply({ op: 'mint', to: did, amount: GENESIS_CREDITS, reason: 'genesis' })
  for (const did of input.params.verifiers) apply({ op: 'stake', account: did, amount: VERIFIER_STAKE })

  for (const replica of [...input.replicas].sort((a, b) => (a.thread < b.thread ? -1 : 1))) {
    const state = replica.state
    const thread = replica.thread
    const open = new Set<string>()
    // Escrows, in total order.
    for (const env of replica.envelopes()) {
      if (state.rejected.has(env.id)) continue
      let op: LedgerOp | undefined
      const escrow =
        env.kind === 'NEED'
          ? { id: `${thread}/budget`, amount: env.payload.budget, purpose: 'need-budget' as const }
          : env.kind === 'COMMIT'
            ? { id: `${env.id}/bounty`, amount: env.payload.verifyBounty, purpose: 'verify-bounty' as const }
            : env.kind === 'CHALLENGE'
              ? { id: `${env.id}/bond`, amount: env.payload.bond, purpose: 'challenge-bond' as const }
              : undefined
      if (escrow && escrow.amount > 0) op = { op: 'escrow', from: env.sender, ...escrow }
      if (op?.op === 'escrow' && apply(op, thread)) open.add(op.id)
    }
    const refund = (id: string) => {
      const held = ledger.escrow(id)
      if (held) apply({ op: 'release', id, payouts: [], burn: 0, refund: held.amount }, thread)
    }
    // Settlements, task by task.
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
          const ops = settleInvalidation({
            commit: commit.id,
            challenge: upheld,
            challenger,
            bond: ledger.escrow(`${upheld}/bond`)?.amount ?? 0,
            bounty,
            worker: { did: commit.worker, staked: ledger.account(commit.worker).staked },
            wrongVerifiers: passVoters.map((did) => ({ did, staked: ledger.account(did).staked })),
            honestVerifiers: [...new Set([...failVoters, ...voters])].filter((did) => did !== challenger),
            bootstrap: input.params.bootstrap,
          })
          for (const op of ops) {
            if (op.op === 'release' && !ledger.escrow(op.id)) continue
            apply(op, thread)
          }
          for (const [id] of challenges) if (id !== upheld) refund(`${id}/bond`)
        } else if (commit.outcome === 'rejected') {
          if (bounty > 0)
            apply(
              settleBounty({
                commit: commit.id,
                worker: commit.worker,
                bounty,
                passVoters: failVoters,
                related: unrelated,
              }),
              thread,
            )
          for (const [id] of challenges) refund(`${id}/bond`)
        } else if (commit.finalizedBy !== undefined) {
          if (bounty > 0)
            apply(
              settleBounty({
                commit: commit.id,
                worker: commit.worker,
                bounty,
                passVoters,
                related: unrelated,
              }),
              thread,
            )
          for (const [id] of challenges) {
            const bond = ledger.escrow(`${id}/bond`)?.amount ?? 0
            if (bond > 0) {
              report.frivolousChallenges += 1
              apply(settleFrivolous({ challenge: id, bond, worker: commit.worker }), thread)
            }
          }
        } else {
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
        input.violations.push({
          property: 'P3',
          thread,
          message: `an equivocation record of ${equivocation.sender} does not prove itself`,
        })
        continue
      }
      const staked = ledger.account(guilty).staked
      const amount = Math.floor((staked * EQUIVOCATION_SLASH_PER_MILLE) / 1000)
      if (
        amount > 0 &&
        apply(
          {
            op: 'slash',
            account: guilty,
            amount,
            payouts: [],
            reason: `equivocated on ${equivocation.subject}`,
          },
          thread,
        )
      ) {
        report.equivocatorsSlashed += 1
      }
    }
    // The budget: paid out when the winning plan is done, refunded otherwise.
    const winner = state.winner
    const need = state.need
    if (need && ledger.escrow(`${thread}/budget`)) {
      const planned = winner
        ? [...state.tasks.values()].filter((task) => task.proposal === winner.proposal)
        : []
      const done = planned.length > 0 && planned.every((task) => task.state === 'FINAL' && task.commit)
      const payments = done
        ? planned.map((task) => {
            const claim = replica.get(task.commit!.claim) as Envelope<'CLAIM'> | undefined
            return { worker: task.commit!.worker, cost: claim?.payload.cost ?? 0 }
          })
        : []
      apply(
        settleBudget({
          need: thread,
          requester: need.requester,
          escrowed: need.budget,
          payments,
          related: unrelated,
        }),
        thread,
      )
    }
    for (const id of open) if (ledger.escrow(id)) refund(id)

    // P3: FINAL results are the honest ones; invalidated ones were wrong.
    if (!winner) continue
    for (const task of state.tasks.values()) {
      if (task.proposal !== winner.proposal) continue
      for (const commit of task.pastCommits.filter((c) => c.outcome === 'invalidated')) {
        const expected = await honestOutputs(
          replica,
          { ...task, commit },
          input.artifacts,
          input.capabilities,
        )
        if (expected && same(expected, commit.outputs)) {
          input.violations.push({
            property: 'P3',
            thread,
            message: `a valid result of ${task.id} was invalidated`,
          })
        }
      }
      if (input.converged && task.state === 'FINAL' && task.commit) {
        const expected = await honestOutputs(replica, task, input.artifacts, input.capabilities)
        if (expected && !same(expected, task.commit.outputs)) {
          input.violations.push({
            property: 'P3',
            thread,
            message: `an invalid FINALIZE of ${task.id} survived`,
          })
        }
      }
    }
  }
  const supply = ledger.supply
  report.minted = supply.minted
  report.burned = supply.burned
  return report
}
