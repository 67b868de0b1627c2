/**
 * Application-level peer reputation: what this peer has seen of each remote peer — invalid
 * envelopes, useful deliveries, ping latency — folded into one score. A peer whose score falls
 * below the threshold is disconnected and denied (by the connection gater) for a while; gossipsub's
 * own v1.1 score reads this score as its application-specific component.
 *
 * Time is injected (`now`), so the rules are testable without waiting.
 */
import { InvalidArgumentError } from '../core/errors.ts'

/** Tuning of {@link PeerReputation}. */
export interface ReputationOptions {
  /** Points lost for an invalid envelope or frame (bad signature, stale, denied by policy). @default 10 */
  invalidPenalty?: number
  /** Points gained for a valid envelope delivered first by this peer. @default 0.05 */
  deliveryReward?: number
  /** Highest score a peer can reach (so good behaviour cannot bank unlimited credit). @default 10 */
  maxScore?: number
  /** A ping slower than this costs {@link ReputationOptions.slowPingPenalty}. @default 1000 */
  slowPingMs?: number
  /** Points lost for a slow ping or a failed one. @default 1 */
  slowPingPenalty?: number
  /** Below this score the peer is disconnected and denied. @default -30 */
  disconnectThreshold?: number
  /** How long a peer stays denied after it fell below the threshold, in ms. @default 300 000 */
  denyMs?: number
  /** Peers tracked at most (the least recently seen are forgotten). @default 10 000 */
  maxPeers?: number
  /** The clock, in ms. @default Date.now */
  now?: () => number
  /** Called once when a peer falls below the threshold (the network hangs up on it). */
  onDeny?: (peer: string, score: number) => void
}

/** What {@link PeerReputation} knows of one peer. */
export interface PeerRecord {
  score: number
  invalid: number
  delivered: number
  lastRttMs: number | undefined
  /** Denied until this time (ms on the reputation clock), or 0. */
  deniedUntilMs: number
}

const DEFAULTS = {
  invalidPenalty: 10,
  deliveryReward: 0.05,
  maxScore: 10,
  slowPingMs: 1000,
  slowPingPenalty: 1,
  disconnectThreshold: -30,
  denyMs: 300_000,
  maxPeers: 10_000,
}

/** Per-peer application scores, keyed by the peer id string. */
export class PeerReputation {
  readonly options: Readonly<typeof DEFAULTS>
  #peers = new Map<string, PeerRecord>()
  #now: () => number
  #onDeny: ((peer: string, score: number) => void) | undefined

  constructor(options: ReputationOptions = {}) {
    const { now, onDeny, ...numbers } = options
    const merged = { ...DEFAULTS, ...numbers }
    for (const [key, value] of Object.entries(merged)) {
      if (!Number.isFinite(value)) throw new InvalidArgumentError(`${key} must be a finite number`, key)
    }
    if (merged.disconnectThreshold >= 0) {
      throw new InvalidArgumentError('disconnectThreshold must be negative', 'disconnectThreshold')
    }
    this.options = Object.freeze(merged)
    this.#now = now ?? Date.now
    this.#onDeny = onDeny
  }

  /** Sets (or replaces) the callback run when a peer falls below the threshold. */
  set onDeny(callback: ((peer: string, score: number) => void) | undefined) {
    this.#onDeny = callback
  }

  #record(peer: string): PeerRecord {
    let record = this.#peers.get(peer)
    if (record) {
      this.#peers.delete(peer)
    } else {
      record = { score: 0, invalid: 0, delivered: 0, lastRttMs: undefined, deniedUntilMs: 0 }
      if (this.#peers.size >= this.options.maxPeers) {
        const oldest = this.#peers.keys().next().value
        if (oldest !== undefined) this.#peers.delete(oldest)
      }
    }
    this.#peers.set(peer, record)
    return record
  }

  #adjust(peer: string, delta: number): void {
    const record = this.#record(peer)
    record.score = Math.min(this.options.maxScore, record.score + delta)
    if (record.score < this.options.disconnectThreshold && record.deniedUntilMs <= this.#now()) {
      record.deniedUntilMs = this.#now() + this.options.denyMs
      this.#onDeny?.(peer, record.score)
    }
  }

  /** The peer sent an invalid envelope or frame. */
  recordInvalid(peer: string): void {
    this.#record(peer).invalid += 1
    this.#adjust(peer, -this.options.invalidPenalty)
  }

  /** The peer was first to deliver a valid envelope. */
  recordDelivery(peer: string): void {
    this.#record(peer).delivered += 1
    this.#adjust(peer, this.options.deliveryReward)
  }

  /** A ping round trip to the peer (`undefined` when the ping failed). */
  recordPing(peer: string, rttMs: number | undefined): void {
    this.#record(peer).lastRttMs = rttMs
    if (rttMs === undefined || rttMs > this.options.slowPingMs)
      this.#adjust(peer, -this.options.slowPingPenalty)
  }

  /** The peer's score (0 for a peer never seen). */
  score(peer: string): number {
    return this.#peers.get(peer)?.score ?? 0
  }

  /** True while the peer is denied. A denial that ran out resets the score to the threshold's half. */
  isDenied(peer: string): boolean {
    const record = this.#peers.get(peer)
    if (!record || record.deniedUntilMs === 0) return false
    if (record.deniedUntilMs > this.#now()) return true
    record.deniedUntilMs = 0
    record.score = this.options.disconnectThreshold / 2
    return false
  }

  /** A copy of what is known of a peer. */
  get(peer: string): PeerRecord | undefined {
    const record = this.#peers.get(peer)
    return record ? { ...record } : undefined
  }

  /** Every tracked peer with its record. */
  snapshot(): Record<string, PeerRecord> {
    return Object.fromEntries([...this.#peers].map(([peer, record]) => [peer, { ...record }]))
  }
}
