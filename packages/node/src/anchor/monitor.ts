/**
 * The bootstrap monitor (docs/PROTOCOL.md §7): counts the verifiers of the pool that were active
 * recently (an ATTEST or ATTEST_PLAN seen within `activeWindowMs`) and feeds the count to the
 * pure `observeVerifiers` rule: bootstrap mode (K = 1) while fewer than 10 are active, left after
 * ≥ 10 for 24 consecutive hours. It reports the mode and the K values that the live count implies.
 *
 * Incremental: attached to an agent, it hears of each envelope once, when the agent places it
 * (restored ones included), and keeps the last attestation time of each attester (the most recent
 * {@link MAX_ATTESTERS}); a report costs O(pool), whatever the number of envelopes held.
 *
 * Switching K changes which DECIDEs and FINALIZEs are valid, so every peer must switch at the same
 * point of the log: the monitor recommends; the switch itself is a parameter change the anchors
 * publish with a new epoch (not automatic yet).
 */
import type { Agent, AnyEnvelope, NetworkParams } from '@can-swarm/peer'
import {
  type BootstrapState,
  INITIAL_BOOTSTRAP_STATE,
  kPlanFor,
  kResultFor,
  observeVerifiers,
} from '@can-swarm/peer'

/** Attesters whose last attestation time is kept (least recently seen forgotten first). */
export const MAX_ATTESTERS = 65_536

export interface MonitorReport {
  activeVerifiers: number
  poolSize: number
  /** What the live count implies. */
  recommended: { bootstrap: boolean; kPlan: number; kResult: number; aboveSinceMs: number | null }
  /** What the network runs with now (its shared parameters). */
  current: { bootstrap: boolean }
}

export class BootstrapMonitor {
  readonly params: NetworkParams
  readonly activeWindowMs: number
  /** Attester → last attestation time; least recently seen first. */
  #lastSeen = new Map<string, number>()
  #state: BootstrapState = INITIAL_BOOTSTRAP_STATE
  #pool: Set<string>
  #examined = 0

  constructor(params: NetworkParams, options: { activeWindowMs?: number } = {}) {
    this.params = params
    this.activeWindowMs = options.activeWindowMs ?? 10 * 60_000
    this.#pool = new Set(params.verifiers)
  }

  /** The verifiers the monitor counts (the pool adopted now). */
  setPool(verifiers: readonly string[]): void {
    this.#pool = new Set(verifiers)
  }

  /** Envelopes the monitor has looked at, ever (its work: one step per envelope placed). */
  get examined(): number {
    return this.#examined
  }

  /** Records that `did` was seen at work (an attestation) at `atMs`. */
  seen(did: string, atMs: number): void {
    const at = Math.max(atMs, this.#lastSeen.get(did) ?? 0)
    this.#lastSeen.delete(did)
    this.#lastSeen.set(did, at)
    if (this.#lastSeen.size > MAX_ATTESTERS) this.#lastSeen.delete(this.#lastSeen.keys().next().value!)
  }

  /** Hears of one envelope placed into a thread, received at `atMs`. */
  placed(env: AnyEnvelope, atMs: number): void {
    this.#examined += 1
    if (env.kind === 'ATTEST' || env.kind === 'ATTEST_PLAN') this.seen(env.sender, atMs)
  }

  /**
   * Hears of every envelope `agent` places from now on (attach before restoring its log, so that
   * restored attestations count). Returns the function that detaches it.
   */
  attach(agent: Agent): () => void {
    return agent.observe((env) =>
      this.placed(env, agent.replica(env.thread)?.receivedAt(env.id) ?? Date.now()),
    )
  }

  /** Advances the monitor to `nowMs` and reports. */
  observe(nowMs: number): MonitorReport {
    let active = 0
    for (const did of this.#pool) {
      const at = this.#lastSeen.get(did)
      if (at !== undefined && nowMs - at <= this.activeWindowMs) active += 1
    }
    this.#state = observeVerifiers(this.#state, active, nowMs, this.params.quorum)
    const bootstrap = this.#state.bootstrap
    return {
      activeVerifiers: active,
      poolSize: this.#pool.size,
      recommended: {
        bootstrap,
        kPlan: kPlanFor(active, bootstrap, this.params.quorum),
        kResult: kResultFor(active, bootstrap, this.params.quorum),
        aboveSinceMs: this.#state.aboveSinceMs ?? null,
      },
      current: { bootstrap: this.params.bootstrap },
    }
  }
}
