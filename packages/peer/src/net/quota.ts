/**
 * Quotas (docs/PROTOCOL.md §13): token buckets per key (a remote peer, an envelope's sender) and
 * in-flight byte budgets shared by a whole process. Every structure here is bounded: a limiter
 * tracks at most `maxKeys` keys, forgetting the least recently charged first, so an attacker
 * cycling through fresh keys costs memory up to that bound and no more.
 *
 * Time is injected (`now`, in ms), so the rules are testable without waiting.
 *
 * @example
 * ```ts
 * const perPeer = new RateLimiter({ perSecond: 50, burst: 100 })
 * if (!perPeer.take(peerId)) return refuse('rate')
 * ```
 */
import { InvalidArgumentError } from '../core/errors.ts'

/** A sustained rate and the burst allowed above it. */
export interface RateBudget {
  /** Tokens added per second. */
  perSecond: number
  /** Most tokens held (the largest burst). */
  burst: number
}

/** Options of a {@link RateLimiter}. */
export interface RateLimiterOptions extends RateBudget {
  /** Keys tracked at most; beyond it the least recently charged is forgotten. @default 10 000 */
  maxKeys?: number
  /** The clock, in ms. @default Date.now */
  now?: () => number
}

/** Default of {@link RateLimiterOptions.maxKeys}. */
export const DEFAULT_MAX_RATE_KEYS = 10_000

/** Checks a rate budget, throwing an {@link InvalidArgumentError} naming `field` when it is unusable. */
export function checkRateBudget(budget: RateBudget, field: string): void {
  if (!(Number.isFinite(budget.perSecond) && budget.perSecond > 0))
    throw new InvalidArgumentError(`${field}.perSecond must be a positive number`, field)
  if (!(Number.isFinite(budget.burst) && budget.burst >= 1))
    throw new InvalidArgumentError(`${field}.burst must be at least 1`, field)
}

/** Token buckets, one per key, refilled lazily on use. */
export class RateLimiter {
  readonly budget: Readonly<RateBudget>
  readonly #maxKeys: number
  readonly #now: () => number
  /** Per key: tokens left and when they were counted. Map order is least recently charged first. */
  #buckets = new Map<string, { tokens: number; atMs: number }>()

  constructor(options: RateLimiterOptions) {
    checkRateBudget(options, 'budget')
    this.budget = Object.freeze({ perSecond: options.perSecond, burst: options.burst })
    this.#maxKeys = options.maxKeys ?? DEFAULT_MAX_RATE_KEYS
    if (!(Number.isInteger(this.#maxKeys) && this.#maxKeys >= 1))
      throw new InvalidArgumentError('maxKeys must be a positive integer', 'maxKeys')
    this.#now = options.now ?? Date.now
  }

  /** Tokens `key` holds now. */
  available(key: string): number {
    const bucket = this.#buckets.get(key)
    if (!bucket) return this.budget.burst
    const elapsedMs = Math.max(0, this.#now() - bucket.atMs)
    return Math.min(this.budget.burst, bucket.tokens + (elapsedMs * this.budget.perSecond) / 1000)
  }

  /** Takes `amount` tokens from `key` if it holds them; returns whether it did (nothing is taken otherwise). */
  take(key: string, amount = 1): boolean {
    const tokens = this.available(key)
    if (tokens < amount) return false
    this.#buckets.delete(key)
    this.#buckets.set(key, { tokens: tokens - amount, atMs: this.#now() })
    if (this.#buckets.size > this.#maxKeys) {
      const oldest = this.#buckets.keys().next().value
      if (oldest !== undefined) this.#buckets.delete(oldest)
    }
    return true
  }

  /** How long, in ms, until `key` holds `amount` tokens (0 when it does now). */
  waitMs(key: string, amount = 1): number {
    const missing = Math.min(amount, this.budget.burst) - this.available(key)
    return missing <= 0 ? 0 : Math.ceil((missing * 1000) / this.budget.perSecond)
  }

  /** Keys tracked now. */
  get size(): number {
    return this.#buckets.size
  }
}

/** A count of bytes in flight shared by many requests; a request that does not fit is refused, never queued. */
export class ByteBudget {
  readonly limitBytes: number
  #used = 0

  constructor(limitBytes: number) {
    if (!(Number.isInteger(limitBytes) && limitBytes > 0))
      throw new InvalidArgumentError('limitBytes must be a positive integer', 'limitBytes')
    this.limitBytes = limitBytes
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used
  }

  /**
   * Reserves `bytes` if they fit; returns the function that gives them back (idempotent), or
   * `undefined` when they do not fit.
   */
  tryAcquire(bytes: number): (() => void) | undefined {
    if (bytes < 0 || this.#used + bytes > this.limitBytes) return undefined
    this.#used += bytes
    let released = false
    return () => {
      if (released) return
      released = true
      this.#used -= bytes
    }
  }
}
