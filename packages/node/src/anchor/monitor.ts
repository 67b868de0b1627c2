/**
 * The bootstrap monitor (docs/PROTOCOL.md §7): counts the verifiers of the pool that were active
 * recently (an ATTEST or ATTEST_PLAN seen within `activeWindowMs`) and feeds the count to the
 * pure `observeVerifiers` rule: bootstrap mode (K = 1) while fewer than 10 are active, left after
 * ≥ 10 for 24 consecutive hours. It reports the mode and the K values that the live count implies.
 *
 * Switching K changes which DECIDEs and FINALIZEs are valid, so every peer must switch at the same
 * point of the log: the monitor recommends; the switch itself is a parameter change the anchors
 * publish with a new epoch (not automatic yet).
 */
import type { Agent } from '../../../peer/src/agent/agent.ts'
import {
  type BootstrapState,
  INITIAL_BOOTSTRAP_STATE,
  kPlanFor,
  kResultFor,
  observeVerifiers,
} from '../../../peer/src/core/consensus.ts'
import type { NetworkParams } from '../../../peer/src/core/thread/params.ts'

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
  #lastSeen = new Map<string, number>()
  #state: BootstrapState = INITIAL_BOOTSTRAP_STATE
  #pool: Set<string>

  constructor(params: NetworkParams, options: { activeWindowMs?: number } = {}) {
    this.params = params
    this.activeWindowMs = options.activeWindowMs ?? 10 * 60_000
    this.#pool = new Set(params.verifiers)
  }

  /** The verifiers the monitor counts (the pool adopted now). */
  setPool(verifiers: readonly string[]): void {
    this.#pool = new Set(verifiers)
    for (const did of [...this.#lastSeen.keys()]) if (!this.#pool.has(did)) this.#lastSeen.delete(did)
  }

  /** Records that a verifier of the pool was seen at work. */
  seen(did: string, atMs: number): void {
    if (this.#pool.has(did)) this.#lastSeen.set(did, Math.max(atMs, this.#lastSeen.get(did) ?? 0))
  }

  /** Scans an agent's threads for attestations (cheap enough to run every few seconds). */
  scan(agent: Agent, atMs: number): void {
    for (const thread of agent.threads()) {
      const replica = agent.replica(thread)!
      for (const env of replica.envelopes()) {
        if (env.kind === 'ATTEST' || env.kind === 'ATTEST_PLAN')
          this.seen(env.sender, replica.receivedAt(env.id) ?? atMs)
      }
    }
  }

  /** Advances the monitor to `nowMs` and reports. */
  observe(nowMs: number): MonitorReport {
    let active = 0
    for (const at of this.#lastSeen.values()) if (nowMs - at <= this.activeWindowMs) active += 1
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
