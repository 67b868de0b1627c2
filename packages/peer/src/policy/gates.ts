/**
 * The three policy gates of docs/PROTOCOL.md §10, around one {@link PolicyEngine}:
 * - preflight: a sender evaluates every envelope before publishing it (decisions cached by the
 *   input document, which is derived from the envelope's content);
 * - ingress: a receiver evaluates every envelope before its core sees it, after checking that the
 *   envelope was evaluated under a capsule this peer knows and trusts;
 * - commit: a verifier evaluates a COMMIT's claimed telemetry against its own measurement.
 * Every decision is counted; denials are counted per gate and per rule.
 *
 * @example
 * ```ts
 * const gates = new PolicyGates({ engine: accepted.engine, capsule: accepted.hash, trusted: registry })
 * const decision = gates.ingress(env)
 * if (!decision.allowed) drop(env, explainDecision(decision))
 * ```
 */

import type { ArtifactStore } from '../core/artifacts.ts'
import { evalDigestOf } from '../core/digest.ts'
import {
  type CanSwarmError,
  type GasExceededError,
  PolicyDeniedError,
  type PolicyReason,
  UnknownCapsuleError,
} from '../core/errors.ts'
import type { Envelope, UnsignedEnvelope } from '../core/types.ts'
import type { PolicyDecision, PolicyEngine } from './engine.ts'
import { type CommitCheck, commitInput, envelopeInput, type PolicyGate } from './input.ts'

/** Which capsules a peer accepts envelopes from (a {@link CapsuleRegistry} fits). */
export interface CapsuleTrust {
  has(hash: string): boolean
}

/** Options of {@link PolicyGates}. */
export interface PolicyGatesOptions {
  /** The engine of the capsule this peer evaluates under. */
  engine: PolicyEngine
  /** Hash of that capsule: written into the `policy` field of everything this peer publishes. */
  capsule: string
  /** Capsules accepted at ingress. @default only `capsule` */
  trusted?: CapsuleTrust
  /** Preflight decisions kept. @default 4096 */
  preflightCacheEntries?: number
  /** (thread, sender) message counters kept; the oldest are forgotten beyond. @default 65 536 */
  maxCounters?: number
  /**
   * Called once per unknown capsule hash met at ingress, e.g. to fetch and verify it
   * ({@link fetchUnknownCapsules}); envelopes under it are denied until it is trusted. @default none
   */
  onUnknownCapsule?: (hash: string) => void
  /** Unknown capsule hashes remembered (each reported once). @default 1024 */
  maxUnknownCapsules?: number
}

/** Counters of one gate. */
export interface GateStats {
  evaluations: number
  denials: number
  gasUsed: number
}

/** What the gates did so far. */
export interface PolicyStats {
  preflight: GateStats & { cacheHits: number }
  ingress: GateStats
  commit: GateStats
  /** Denials per rule (`kind-allowed`, `capsule-unknown`, `gas-limit`, …), all gates together. */
  denialsByRule: Record<string, number>
}

/** A one-line explanation of a decision: `allowed`, or each denying rule with its field. */
export function explainDecision(decision: PolicyDecision): string {
  if (decision.allowed) return 'allowed'
  return `denied by ${decision.reasons.map((r) => `${r.rule} (${r.field})`).join(', ') || 'default deny'}`
}

/** The typed error of a denial: {@link GasExceededError}, {@link UnknownCapsuleError} or {@link PolicyDeniedError}. */
export function denialError(
  gate: PolicyGate,
  decision: PolicyDecision,
  capsule = '',
): CanSwarmError | undefined {
  if (decision.allowed) return undefined
  if (decision.gasExceeded) return decision.gasExceeded
  if (decision.reasons.some((r) => r.rule === CAPSULE_RULE)) return new UnknownCapsuleError(capsule)
  return new PolicyDeniedError(gate, decision.reasons)
}

/** Rule id of the host-side check that an envelope's capsule is known and trusted. */
export const CAPSULE_RULE = 'capsule-unknown'

const emptyStats = (): GateStats => ({ evaluations: 0, denials: 0, gasUsed: 0 })

/** The preflight, ingress and commit gates of one peer. */
export class PolicyGates {
  readonly engine: PolicyEngine
  /** Hash of the capsule this peer evaluates under. */
  readonly capsule: string
  #trusted: CapsuleTrust
  #cache = new Map<string, PolicyDecision>()
  #cacheEntries: number
  #counters = new Map<string, number>()
  #maxCounters: number
  #stats = {
    preflight: { ...emptyStats(), cacheHits: 0 },
    ingress: emptyStats(),
    commit: emptyStats(),
  }
  #denialsByRule = new Map<string, number>()
  #onUnknownCapsule: ((hash: string) => void) | undefined
  #unknown = new Set<string>()
  #maxUnknown: number

  constructor(options: PolicyGatesOptions) {
    this.engine = options.engine
    this.capsule = options.capsule
    const own = options.capsule
    this.#trusted = options.trusted ?? { has: (hash) => hash === own }
    this.#cacheEntries = options.preflightCacheEntries ?? 4096
    this.#maxCounters = options.maxCounters ?? 65_536
    this.#onUnknownCapsule = options.onUnknownCapsule
    this.#maxUnknown = options.maxUnknownCapsules ?? 1024
  }

  /** Preflight: evaluates an envelope about to be published (cached by its input document). */
  preflight(env: UnsignedEnvelope): PolicyDecision {
    const input = envelopeInput(env, 'preflight')
    const key = JSON.stringify(input)
    const cached = this.#cache.get(key)
    if (cached) {
      this.#stats.preflight.cacheHits += 1
      this.#count('preflight', cached)
      return cached
    }
    const decision = this.engine.evaluate(input)
    if (this.#cache.size >= this.#cacheEntries) this.#cache.delete(this.#cache.keys().next().value!)
    this.#cache.set(key, decision)
    this.#count('preflight', decision)
    return decision
  }

  /**
   * Ingress: evaluates a received envelope. An envelope evaluated under a capsule this peer does
   * not know or trust is denied by rule `capsule-unknown` (field `policy`) without running the policy.
   */
  ingress(env: Envelope, context: { taskClass?: string } = {}): PolicyDecision {
    const messages = this.#bump(env.thread, env.sender)
    const input = envelopeInput(env, 'ingress', { messages, ...context })
    let decision: PolicyDecision
    if (!this.#trusted.has(env.policy)) {
      this.#reportUnknown(env.policy)
      const answer = { allowed: false, reasons: [{ rule: CAPSULE_RULE, field: 'policy' }], gasUsed: 0 }
      decision = {
        ...answer,
        evalDigest: evalDigestOf(input, answer, this.engine.policyHash),
        policyHash: this.engine.policyHash,
      }
    } else {
      decision = this.engine.evaluate(input)
    }
    this.#count('ingress', decision)
    return decision
  }

  /** Commit gate: evaluates a COMMIT against the verifier's re-execution. */
  commit(env: Envelope<'COMMIT'>, check: CommitCheck): PolicyDecision {
    const decision = this.engine.evaluate(commitInput(env, check))
    this.#count('commit', decision)
    return decision
  }

  /** Counters so far (a copy). */
  stats(): PolicyStats {
    return {
      preflight: { ...this.#stats.preflight },
      ingress: { ...this.#stats.ingress },
      commit: { ...this.#stats.commit },
      denialsByRule: Object.fromEntries([...this.#denialsByRule].sort(([a], [b]) => (a < b ? -1 : 1))),
    }
  }

  /** Throws the typed error of a denial (see {@link denialError}); returns the decision when allowed. */
  enforce(gate: PolicyGate, decision: PolicyDecision, capsule = ''): PolicyDecision {
    const error = denialError(gate, decision, capsule)
    if (error) throw error
    return decision
  }

  #reportUnknown(hash: string): void {
    if (!this.#onUnknownCapsule || this.#unknown.has(hash)) return
    if (this.#unknown.size >= this.#maxUnknown) this.#unknown.delete(this.#unknown.values().next().value!)
    this.#unknown.add(hash)
    this.#onUnknownCapsule(hash)
  }

  #bump(thread: string, sender: string): number {
    const key = `${thread}\u0000${sender}`
    const count = (this.#counters.get(key) ?? 0) + 1
    this.#counters.delete(key)
    if (this.#counters.size >= this.#maxCounters) this.#counters.delete(this.#counters.keys().next().value!)
    this.#counters.set(key, count)
    return count
  }

  #count(gate: PolicyGate, decision: PolicyDecision): void {
    const stats = this.#stats[gate]
    stats.evaluations += 1
    stats.gasUsed += decision.gasUsed
    if (decision.allowed) return
    stats.denials += 1
    for (const reason of decision.reasons as PolicyReason[])
      this.#denialsByRule.set(reason.rule, (this.#denialsByRule.get(reason.rule) ?? 0) + 1)
  }
}

/**
 * An `onUnknownCapsule` handler that fetches the capsule from an artifact store and accepts it into
 * the registry (signature, trusted author, conformance run locally). Failures go to `onError`; the
 * capsule then stays unknown and its envelopes stay denied.
 *
 * @example
 * ```ts
 * const gates = new PolicyGates({ engine, capsule, trusted: registry,
 *   onUnknownCapsule: fetchUnknownCapsules(registry, artifacts, { onError: console.warn }) })
 * ```
 */
export function fetchUnknownCapsules(
  registry: {
    fetch(hash: string, store: ArtifactStore, options?: { signal?: AbortSignal }): Promise<unknown>
  },
  store: ArtifactStore,
  options: {
    onError?: (error: unknown) => void
    onAccepted?: (hash: string) => void
    signal?: AbortSignal
  } = {},
): (hash: string) => void {
  return (hash) => {
    registry.fetch(hash, store, options.signal ? { signal: options.signal } : {}).then(
      () => options.onAccepted?.(hash),
      (error: unknown) => options.onError?.(error),
    )
  }
}
