/**
 * The simulator's economy: after a run, the converged log of every thread is settled through the
 * credit ledger in the ledger's own order (A7: by the anchors' DECIDE times, `deriveLedger`), and
 * the economic properties are checked:
 * - `conservation`: after every ledger operation, Σ holdings = minted − burned;
 * - `P3` (challenge safety): every FINAL result is the honest one (an invalid FINALIZE did not
 *   survive: it was challenged, invalidated and its verifiers and worker slashed), and no valid
 *   result was invalidated (frivolous challenges lose their bonds instead).
 */
import type { CapabilityRegistry } from '../agent/capabilities.ts'
import { type ArtifactStore, artifactCid } from '../core/artifacts.ts'
import { type DerivedLedger, deriveLedger, type GenesisRule } from '../core/economy/derive.ts'
import { fetchTaskInputs } from '../core/thread/inputs.ts'
import type { NetworkParams } from '../core/thread/params.ts'
import type { ThreadReplica } from '../core/thread/replica.ts'
import type { TaskInfo } from '../core/thread/state.ts'
import type { Cid, Did } from '../core/types.ts'
import type { Violation } from './checkers.ts'

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
  /** Decided threads whose requester could not fund the budget. */
  unfunded: number
}

/**
 * What the task's capability gives on the commit's inputs: those it declares (a result is judged on
 * what it was computed from), else the task's inputs in the final state.
 */
async function honestOutputs(
  replica: ThreadReplica,
  task: TaskInfo,
  artifacts: ArtifactStore,
  capabilities: CapabilityRegistry,
): Promise<Cid[] | undefined> {
  const declared = task.commit?.inputs
  const inputs = declared
    ? await fetchAll(declared, artifacts)
    : await fetchTaskInputs(replica.state, task, (cid) => artifacts.get(cid))
  if (!inputs || !capabilities.has(task.spec.capability)) return undefined
  return [artifactCid(await capabilities.run(task.spec.capability, inputs))]
}

async function fetchAll(refs: readonly Cid[], artifacts: ArtifactStore): Promise<Uint8Array[] | undefined> {
  const result: Uint8Array[] = []
  for (const ref of refs) {
    const bytes = await artifacts.get(ref)
    if (!bytes) return undefined
    result.push(bytes)
  }
  return result
}

function same(a: readonly Cid[], b: readonly Cid[]): boolean {
  return a.length === b.length && a.every((ref, index) => ref === b[index])
}

/** Settles every thread (the ledger's A7 order, `deriveLedger`) and checks P3 and conservation. */
export async function settleEconomy(input: {
  params: NetworkParams
  genesis: GenesisRule
  genesisVerifiers: readonly Did[]
  replicas: readonly ThreadReplica[]
  artifacts: ArtifactStore
  capabilities: CapabilityRegistry
  converged: boolean
  violations: Violation[]
}): Promise<EconomyReport & { ledger: DerivedLedger }> {
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
    unfunded: 0,
  }
  const derived = deriveLedger({
    replicas: input.replicas,
    params: input.params,
    nowMs: Number.POSITIVE_INFINITY,
    closing: true,
    genesis: input.genesis,
    genesisVerifiers: input.genesisVerifiers,
    onOperation: (op, applied, ledger, thread) => {
      if (applied) report.operations += 1
      else report.refused += 1
      const gap = ledger.conservationGap()
      if (gap !== 0) {
        input.violations.push({
          property: 'conservation',
          ...(thread === undefined ? {} : { thread }),
          message: `after ${op.op}: holdings differ from minted − burned by ${gap}`,
        })
      }
    },
  })
  report.slashes = derived.slashes
  report.upheldChallenges = derived.upheldChallenges
  report.frivolousChallenges = derived.frivolousChallenges
  report.unfunded = derived.unfunded.length
  // A7: nothing but the genesis allocations (and admitted faucet grants: none here) is ever minted.
  const allocated = input.genesis.allocations.reduce((sum, allocation) => sum + allocation.amount, 0)
  if (derived.ledger.supply.minted !== allocated) {
    input.violations.push({
      property: 'conservation',
      message: `minted ${derived.ledger.supply.minted} credits, but the genesis allocated ${allocated} and no grant was made`,
    })
  }
  for (const replica of input.replicas) {
    const settled = derived.threads.get(replica.thread)
    const state = replica.state
    const thread = replica.thread
    if (settled) {
      report.invalidatedCommits += settled.invalidatedCommits
      report.equivocatorsSlashed += settled.equivocatorsSlashed
      for (const sender of settled.unproven) {
        input.violations.push({
          property: 'P3',
          thread,
          message: `an equivocation record of ${sender} does not prove itself`,
        })
      }
    }
    const winner = state.winner
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
  const supply = derived.ledger.supply
  report.minted = supply.minted
  report.burned = supply.burned
  return { ...report, ledger: derived }
}
