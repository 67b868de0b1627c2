/**
 * The soak's honest canary: one peer (requester, planner, worker and the network's genesis verifier
 * at once) posting small NEEDs at a steady rate, at most `maxInFlight` open at a time, and timing
 * each one from the moment it is posted to the DECIDE it sees and to every task of the winning plan
 * FINAL. A tick that finds `maxInFlight` NEEDs still open posts nothing and is counted as skipped:
 * the canary fell behind.
 */
import type { Agent, Peer } from '@can-swarm/peer'
import { requestCredits } from '@can-swarm/peer'

/** Whether every task of a thread's winning plan is FINAL (false while undecided). */
export function isThreadFinal(agent: Agent, thread: string): boolean {
  const state = agent.replica(thread)?.state
  const winner = state?.winner
  if (!state || !winner) return false
  const tasks = [...state.tasks.values()].filter((task) => task.proposal === winner.proposal)
  return tasks.length > 0 && tasks.every((task) => task.state === 'FINAL')
}

/** The value at percentile `p` (0–100) of `values`, NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

export interface CanaryOptions {
  /** NEEDs posted per second. @default 2 */
  perSecond?: number
  /** Most NEEDs open (posted, not yet FINAL) at once. @default 8 */
  maxInFlight?: number
  /** Credits each NEED offers. @default 5 */
  budget?: number
}

export interface CanaryStats {
  posted: number
  decided: number
  finalized: number
  /** Posts that failed (out of credits until payouts fall due, or an error). */
  postErrors: number
  /** Ticks that posted nothing because `maxInFlight` NEEDs were open. */
  skipped: number
  /** Per NEED decided: ms from its post to the DECIDE the canary saw. */
  decideMs: number[]
  /** Per NEED finalized: ms from its post to every task of its plan FINAL. */
  finalMs: number[]
  /** NEEDs still open, with their age in ms. */
  open: Array<{ need: string; ageMs: number; decided: boolean }>
}

/** Most DECIDEs of threads not (yet) known as the canary's that are remembered. */
const MAX_EARLY = 1024

export class Canary {
  readonly peer: Peer
  readonly #anchorUrl: string
  readonly #perSecond: number
  readonly #maxInFlight: number
  readonly #budget: number
  /** Open NEEDs: posted at (performance.now()), decided at. */
  readonly #open = new Map<string, { postedAt: number; decidedAt?: number }>()
  /** DECIDEs seen before the post that made their thread resolved. */
  readonly #early = new Map<string, number>()
  readonly #stats: Omit<CanaryStats, 'open'> = {
    posted: 0,
    decided: 0,
    finalized: 0,
    postErrors: 0,
    skipped: 0,
    decideMs: [],
    finalMs: [],
  }
  #posting = false
  #lastCreditAsk = 0
  #timers: ReturnType<typeof setInterval>[] = []
  #unobserve: (() => void) | undefined

  constructor(peer: Peer, anchorUrl: string, options: CanaryOptions = {}) {
    this.peer = peer
    this.#anchorUrl = anchorUrl
    this.#perSecond = options.perSecond ?? 2
    this.#maxInFlight = options.maxInFlight ?? 8
    this.#budget = options.budget ?? 5
  }

  /** Starts posting (and watching for DECIDEs and FINALs). */
  start(): void {
    this.#unobserve = this.peer.agent.observe((env) => {
      if (env.kind === 'DECIDE') this.#decided(env.thread, performance.now())
      else if (env.kind === 'FINALIZE' && this.#open.has(env.thread))
        setImmediate(() => this.#checkFinal(env.thread))
    })
    this.#timers.push(setInterval(() => this.#tick(), 1000 / this.#perSecond))
    // A FINAL reached without a FINALIZE observed (it cannot, but the figure must not hang on it).
    this.#timers.push(
      setInterval(() => {
        for (const need of this.#open.keys()) this.#checkFinal(need)
      }, 250),
    )
  }

  /** Stops posting; NEEDs already open are still followed until {@link close}. */
  stopPosting(): void {
    clearInterval(this.#timers.shift())
  }

  /** Waits until every open NEED is FINAL or `timeoutMs` has passed; true when none is left open. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (this.#open.size > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100))
    return this.#open.size === 0
  }

  close(): void {
    for (const timer of this.#timers.splice(0)) clearInterval(timer)
    this.#unobserve?.()
  }

  stats(): CanaryStats {
    const now = performance.now()
    return {
      ...this.#stats,
      decideMs: [...this.#stats.decideMs],
      finalMs: [...this.#stats.finalMs],
      open: [...this.#open].map(([need, entry]) => ({
        need,
        ageMs: Math.round(now - entry.postedAt),
        decided: entry.decidedAt !== undefined,
      })),
    }
  }

  #tick(): void {
    if (this.#posting) return
    if (this.#open.size >= this.#maxInFlight) {
      this.#stats.skipped += 1
      return
    }
    this.#posting = true
    const postedAt = performance.now()
    const index = this.#stats.posted + this.#stats.postErrors
    this.peer
      .post({
        requires: ['sha256'],
        inputs: [new TextEncoder().encode(`soak canary ${index} ${Date.now()}`)],
        budget: this.#budget,
        bidWindowMs: 50,
      })
      .then((need) => {
        this.#stats.posted += 1
        this.#open.set(need, { postedAt })
        const early = this.#early.get(need)
        if (early !== undefined) {
          this.#early.delete(need)
          this.#decided(need, early)
        }
        this.#checkFinal(need)
      })
      .catch(() => {
        // Out of credits until payouts fall due: ask the faucet again, now and then.
        this.#stats.postErrors += 1
        if (Date.now() - this.#lastCreditAsk > 5_000) {
          this.#lastCreditAsk = Date.now()
          void requestCredits(this.#anchorUrl, this.peer.did, { signal: AbortSignal.timeout(5_000) }).catch(
            () => undefined,
          )
        }
      })
      .finally(() => {
        this.#posting = false
      })
  }

  #decided(thread: string, at: number): void {
    const entry = this.#open.get(thread)
    if (!entry) {
      if (this.#early.size >= MAX_EARLY) this.#early.delete(this.#early.keys().next().value!)
      this.#early.set(thread, at)
      return
    }
    if (entry.decidedAt !== undefined) return
    entry.decidedAt = at
    this.#stats.decided += 1
    this.#stats.decideMs.push(at - entry.postedAt)
  }

  #checkFinal(need: string): void {
    const entry = this.#open.get(need)
    if (!entry || !isThreadFinal(this.peer.agent, need)) return
    const now = performance.now()
    if (entry.decidedAt === undefined) this.#decided(need, now)
    this.#open.delete(need)
    this.#stats.finalized += 1
    this.#stats.finalMs.push(now - entry.postedAt)
  }
}
