/**
 * The verifier role (docs/PROTOCOL.md §5, §8): it attests plans (ATTEST_PLAN) and results
 * (ATTEST, re-executing the capability), challenges a result it finds wrong (CHALLENGE) and, as a
 * judge, invalidates a result a challenge proves wrong (INVALIDATE; an anchor judges in bootstrap).
 */
import { BUILTIN_POLICY_HASH, evalDigestOf } from '../../core/digest.ts'
import { requiredBond, violatesJsonSchema } from '../../core/economy/proofs.ts'
import { inCommittee, isEligibleVerifier } from '../../core/thread/params.ts'
import type { ThreadReplica } from '../../core/thread/replica.ts'
import { threadParams } from '../../core/thread/state.ts'
import type { Cid, Envelope } from '../../core/types.ts'
import type { RoleContext } from './context.ts'
import { sameRefs } from './context.ts'

export class VerifierRole {
  readonly #ctx: RoleContext

  constructor(ctx: RoleContext) {
    this.#ctx = ctx
  }

  async attestPlan(replica: ThreadReplica, proposal: Cid): Promise<void> {
    if (!isEligibleVerifier(this.#ctx.params, this.#ctx.did)) return
    const info = replica.state.proposals.get(proposal)
    if (!info || replica.state.planVotes.get(proposal)?.has(this.#ctx.did)) return
    if (!this.#ctx.params.bootstrap && info.planner === this.#ctx.did) return
    // A verifier weighs a bounded number of plans per NEED (the first it receives), not every bid.
    const attested = [...replica.state.planVotes.values()].filter((votes) => votes.has(this.#ctx.did)).length
    if (attested >= this.#ctx.tuning.maxPlanAttestations) return
    // A plan that names an output type other than the one a capability it knows produces would
    // make its workers' right results look wrong: not accepted.
    const mistyped = info.payload.patch.some((spec) => {
      const capability = this.#ctx.capabilities.get(spec.capability)
      return capability !== undefined && capability.manifest.produces !== spec.produces
    })
    if (mistyped) return
    if (!this.#ctx.once(replica.thread, `attest-plan:${proposal}`)) return
    const payload = { need: replica.thread, proposal, verdict: 'accept' as const }
    await this.#ctx.publish('ATTEST_PLAN', replica.thread, payload)
  }

  async attestResult(replica: ThreadReplica, taskId: string, commitId: Cid): Promise<void> {
    const task = replica.state.tasks.get(taskId)
    const commit = task?.commit
    const rules = threadParams(replica.state, this.#ctx.params)
    if (!task || commit?.id !== commitId || !inCommittee(commit.committee, this.#ctx.did, rules)) return
    // Already voted (e.g. before a restart, whose memory of what it did is gone): never vote twice.
    if (commit.votes.has(this.#ctx.did) || !this.#ctx.once(replica.thread, `attest:${commitId}`)) return
    const expected = await this.#ctx.expectedOutputs(replica, task)
    if (!expected) return
    let honest: 'pass' | 'fail' = sameRefs(expected, commit.outputs) ? 'pass' : 'fail'
    const policyHash = this.#ctx.options.policyHash ?? BUILTIN_POLICY_HASH
    const digest = (v: string) => evalDigestOf({ commit: commitId, outputs: commit.outputs }, v, policyHash)
    let evalDigest: string | undefined
    const gates = this.#ctx.options.policy
    if (gates) {
      const decision = gates.commit(replica.get(commitId) as Envelope<'COMMIT'>, {
        outputsMatch: honest === 'pass',
        measured: this.#ctx.memoOf(replica.thread).measured.get(commitId) ?? {},
        taskClass: task.spec.capability,
      })
      honest = decision.allowed ? 'pass' : 'fail'
      evalDigest = decision.evalDigest
    }
    const verdict = honest
    evalDigest ??= digest(verdict)
    await this.#ctx.publish(
      'ATTEST',
      replica.thread,
      { task: taskId, commit: commitId, verdict, evalDigest },
      { evalDigest },
    )
  }

  async challengeIfWrong(replica: ThreadReplica, taskId: string, commitId: Cid): Promise<void> {
    const task = replica.state.tasks.get(taskId)
    const commit = task?.commit
    if (!task || commit?.id !== commitId || commit.worker === this.#ctx.did) return
    const expected = await this.#ctx.challengeExpectation(replica, task)
    if (!expected || sameRefs(expected, commit.outputs)) return
    if (!this.#ctx.once(replica.thread, `challenge:${commitId}`)) return
    await this.#ctx.publish('CHALLENGE', replica.thread, {
      task: taskId,
      commit: commitId,
      proof: { type: 'output-mismatch', expected },
      bond: Math.max(this.#ctx.tuning.challengeBond, requiredBond({ type: 'output-mismatch', expected })),
    })
  }

  /**
   * Judges a challenge (A6): in bootstrap an anchor is the judge; outside it, verifiers of the pool
   * are — never of a challenge they made, of their own work, or of a result they passed.
   */
  async judgeChallenge(replica: ThreadReplica, taskId: string, commitId: Cid, challenge: Cid): Promise<void> {
    const rules = threadParams(replica.state, this.#ctx.params)
    const anchor = this.#ctx.roles.decider === true
    if (anchor ? !rules.bootstrap : rules.bootstrap || !isEligibleVerifier(rules, this.#ctx.did)) return
    const task = replica.state.tasks.get(taskId)
    const commit = task?.commit
    if (!task || commit?.id !== commitId || commit.worker === this.#ctx.did) return
    const challengeEnv = replica.get(challenge) as Envelope<'CHALLENGE'> | undefined
    if (!challengeEnv || challengeEnv.sender === this.#ctx.did) return
    if (!anchor && commit.votes.get(this.#ctx.did)?.verdict === 'pass') return
    const proof = challengeEnv.payload.proof
    // Each proof type is judged by its own bounded check; only a proof that the result itself is
    // wrong invalidates it (a contradiction between attestations is the equivocator's fault, settled
    // by slashing, not by throwing away a right result).
    let upheld = false
    if (proof.type === 'output-mismatch') {
      const expected = await this.#ctx.expectedOutputs(replica, task)
      upheld = expected !== undefined && !sameRefs(expected, commit.outputs)
    } else if (proof.type === 'schema-violation') {
      // Only the worker's fault counts: an output that violates the type the plan named and is not
      // what the capability gives on those inputs. When the capability itself gives it, the plan
      // named the wrong type (the planner's doing), and the worker's right result stands.
      const output = commit.outputs.includes(proof.output)
        ? await this.#ctx.options.artifacts.get(proof.output)
        : undefined
      if (output !== undefined && violatesJsonSchema(task.spec.produces, output)) {
        const expected = await this.#ctx.expectedOutputs(replica, task)
        upheld = expected !== undefined && !sameRefs(expected, commit.outputs)
      }
    } else if (proof.type === 'missing-artifact') {
      upheld =
        commit.outputs.includes(proof.ref) && (await this.#ctx.options.artifacts.get(proof.ref)) === undefined
    }
    if (!upheld || !this.#ctx.once(replica.thread, `invalidate:${challenge}`)) return
    await this.#ctx.publish('INVALIDATE', replica.thread, { task: taskId, commit: commitId, challenge })
  }
}
