/**
 * The simulator's Byzantine agents: an honest {@link Agent} with decorators on what it says, so
 * no misbehaviour lives on the production path. Each decorator rewrites or doubles an envelope
 * the honest agent is about to publish (its reactions then follow the lie, as a real attacker's
 * would); the one exception, frivolous challenges, uses the agent's `challengeExpectation` seam.
 */
import { Agent, type AgentOptions } from '../agent/agent.ts'
import { artifactCid } from '../core/artifacts.ts'
import { BUILTIN_POLICY_HASH, evalDigestOf } from '../core/digest.ts'
import type { ThreadReplica } from '../core/thread/replica.ts'
import type { TaskInfo } from '../core/thread/state.ts'
import type { Cid, Envelope, Kind, PayloadByKind } from '../core/types.ts'

/** What a Byzantine agent does besides the honest protocol. */
export interface Adversary {
  /** Commit outputs that are not the capability's result. */
  corruptOutputs?: boolean
  /** Send contradicting votes (accept + reject, pass + fail) and double claims. */
  equivocate?: boolean
  /** Attest `pass` whatever the result. */
  rubberStamp?: boolean
  /** Challenge results that are right (with a made-up expectation); without it, never challenge. */
  frivolousChallenges?: boolean
}

type Extra = Parameters<Agent['publish']>[3]

/** An agent that lies as `adversary` says (see the module comment). */
export class ByzantineAgent extends Agent {
  readonly adversary: Adversary
  readonly #options: AgentOptions

  constructor(options: AgentOptions, adversary: Adversary) {
    super(options)
    this.#options = options
    this.adversary = adversary
  }

  override async publish<K extends Kind>(
    kind: K,
    thread: string,
    payload: PayloadByKind[K],
    extra: Extra = {},
  ): Promise<Envelope<K>> {
    const lie = await this.#rewrite(kind, thread, payload, extra)
    const sent = await super.publish(kind, thread, lie.payload as PayloadByKind[K], lie.extra)
    if (this.adversary.equivocate) {
      const twin = this.#twin(kind, thread, lie.payload)
      if (twin) await super.publish(kind, thread, twin as PayloadByKind[K])
    }
    return sent
  }

  /** corruptOutputs: a COMMIT names forged bytes; rubberStamp: an ATTEST passes. */
  async #rewrite(
    kind: Kind,
    thread: string,
    payload: unknown,
    extra: Extra,
  ): Promise<{ payload: unknown; extra: Extra }> {
    if (kind === 'COMMIT' && this.adversary.corruptOutputs) {
      const commit = payload as PayloadByKind['COMMIT']
      const forged = new TextEncoder().encode(`forged ${commit.claim}`)
      const cid = await this.#options.artifacts.put(forged)
      return {
        payload: {
          ...commit,
          outputs: [cid],
          telemetry: { ...commit.telemetry, outputBytes: forged.length },
        },
        extra: { ...extra, refs: [cid] },
      }
    }
    if (kind === 'ATTEST' && this.adversary.rubberStamp) {
      const attest = payload as PayloadByKind['ATTEST']
      if (attest.verdict === 'pass') return { payload, extra }
      // With policy gates the digest is the policy's (kept); without, the built-in one of `pass`.
      const evalDigest = this.#options.policy ? attest.evalDigest : this.#digest(thread, attest, 'pass')
      return { payload: { ...attest, verdict: 'pass', evalDigest }, extra: { ...extra, evalDigest } }
    }
    return { payload, extra }
  }

  /** equivocate: the envelope contradicting the one just sent, for the kinds that have one. */
  #twin(kind: Kind, thread: string, payload: unknown): unknown {
    if (kind === 'ATTEST_PLAN') return { ...(payload as PayloadByKind['ATTEST_PLAN']), verdict: 'reject' }
    if (kind === 'CLAIM') {
      const claim = payload as PayloadByKind['CLAIM']
      return { ...claim, cost: claim.cost + 1 }
    }
    if (kind === 'ATTEST') {
      const attest = payload as PayloadByKind['ATTEST']
      const other = attest.verdict === 'pass' ? 'fail' : 'pass'
      return { ...attest, verdict: other, evalDigest: this.#digest(thread, attest, other) }
    }
    return undefined
  }

  #digest(thread: string, attest: PayloadByKind['ATTEST'], verdict: 'pass' | 'fail'): string {
    const outputs = this.replica(thread)?.state.tasks.get(attest.task)?.commit?.outputs ?? []
    const policyHash = this.#options.policyHash ?? BUILTIN_POLICY_HASH
    return evalDigestOf({ commit: attest.commit, outputs }, verdict, policyHash)
  }

  protected override async challengeExpectation(
    replica: ThreadReplica,
    task: TaskInfo,
  ): Promise<Cid[] | undefined> {
    if (!this.adversary.frivolousChallenges) return undefined
    // A made-up expectation: the output of another input.
    return [artifactCid(new TextEncoder().encode(`frivolous ${task.commit?.id ?? replica.thread}`))]
  }
}
