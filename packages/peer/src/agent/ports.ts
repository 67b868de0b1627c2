/**
 * What an agent needs from its surroundings, as small interfaces: the simulator, Node and the
 * browser each provide their own. Nothing here touches sockets, disks or real time.
 */
import type { AnyEnvelope } from '../core/types.ts'

/** A clock and timers. Times are milliseconds on this clock. */
export interface AgentClock {
  now(): number
  /** Calls `callback` once at (or after) `atMs`. Returns a function that cancels it. */
  setTimer(atMs: number, callback: () => Promise<void> | void): () => void
}

/** Randomness (seeded in the simulator). */
export interface AgentRandom {
  /** A number in [0, 1). */
  next(): number
}

/** Where an agent hands the envelopes it publishes (gossip bus, simulated network). */
export interface EnvelopeSink {
  publish(env: AnyEnvelope): void
}

/** A seeded pseudo-random generator (mulberry32): small, fast, identical in every runtime. */
export class SeededRandom implements AgentRandom {
  #state: number

  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }

  /** An integer in [low, high). */
  int(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low))
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p
  }

  /** A child generator with its own stream. */
  fork(): SeededRandom {
    return new SeededRandom(Math.floor(this.next() * 4_294_967_296))
  }
}
