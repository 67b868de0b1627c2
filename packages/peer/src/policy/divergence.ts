/**
 * Divergence detection (docs/PROTOCOL.md §10): verifiers of one COMMIT evaluate the same commit-gate
 * input, so under the same capsule their ATTESTs must carry the same eval digest. Feed every ATTEST
 * to a {@link DivergenceDetector}; it reports each (commit, capsule) whose verifiers disagree, with
 * the verifiers behind each digest — a verifier running a tampered policy (a different policy hash
 * behind the same capsule hash) or a different decision stands out at once.
 */
import type { AnyEnvelope, Cid, Did } from '../core/types.ts'

/** Verifiers of one COMMIT under one capsule whose eval digests differ. */
export interface Divergence {
  commit: Cid
  /** The capsule hash the verifiers claimed (`policy` field of their ATTESTs). */
  capsule: string
  /** Each distinct digest with the verifiers that sent it, largest group first. */
  digests: { evalDigest: string; verifiers: Did[] }[]
}

/** Options of {@link DivergenceDetector}. */
export interface DivergenceDetectorOptions {
  /** Most (commit, capsule) groups tracked; the oldest are forgotten beyond. @default 10 000 */
  maxGroups?: number
}

/** Collects ATTEST eval digests and reports disagreements. */
export class DivergenceDetector {
  #groups = new Map<string, { commit: Cid; capsule: string; digests: Map<string, Set<Did>> }>()
  #maxGroups: number

  constructor(options: DivergenceDetectorOptions = {}) {
    this.#maxGroups = options.maxGroups ?? 10_000
  }

  /**
   * Records an envelope (anything but ATTEST is ignored). Returns the divergence of its group when
   * this envelope makes or extends one.
   */
  observe(env: AnyEnvelope): Divergence | undefined {
    if (env.kind !== 'ATTEST') return undefined
    const { commit, evalDigest } = env.payload
    const key = `${commit}\u0000${env.policy}`
    let group = this.#groups.get(key)
    if (!group) {
      if (this.#groups.size >= this.#maxGroups) this.#groups.delete(this.#groups.keys().next().value!)
      group = { commit, capsule: env.policy, digests: new Map() }
      this.#groups.set(key, group)
    }
    const verifiers = group.digests.get(evalDigest) ?? new Set<Did>()
    verifiers.add(env.sender)
    group.digests.set(evalDigest, verifiers)
    return group.digests.size > 1 ? report(group) : undefined
  }

  /** Every divergence seen so far, sorted by commit. */
  divergences(): Divergence[] {
    return [...this.#groups.values()]
      .filter((group) => group.digests.size > 1)
      .map(report)
      .sort((a, b) => (a.commit < b.commit ? -1 : a.commit > b.commit ? 1 : 0))
  }
}

function report(group: { commit: Cid; capsule: string; digests: Map<string, Set<Did>> }): Divergence {
  return {
    commit: group.commit,
    capsule: group.capsule,
    digests: [...group.digests]
      .map(([evalDigest, verifiers]) => ({ evalDigest, verifiers: [...verifiers].sort() }))
      .sort((a, b) => b.verifiers.length - a.verifiers.length || (a.evalDigest < b.evalDigest ? -1 : 1)),
  }
}
