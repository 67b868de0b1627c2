/**
 * Lamport clock (docs/PROTOCOL.md §2): on send `lamport = local + 1`; on receive
 * `local = max(local, msg.lamport)`.
 *
 * @example
 * ```ts
 * const clock = new LamportClock()
 * const lamport = clock.tick()      // 1: stamp an outgoing envelope
 * clock.observe(received.lamport)   // on every accepted incoming envelope
 * ```
 */

import { InvalidArgumentError, InvariantError } from './errors.ts'

/** A Lamport clock bounded by `Number.MAX_SAFE_INTEGER` (past it the clock stops loudly). */
export class LamportClock {
  #value: number

  /**
   * @param initial - starting value, e.g. the highest lamport found when replaying a log.
   * @default 0
   * @throws {InvalidArgumentError} field `initial` unless it is a non-negative safe integer.
   */
  constructor(initial = 0) {
    if (!Number.isSafeInteger(initial) || initial < 0) {
      throw new InvalidArgumentError(
        `initial must be a non-negative safe integer, got ${String(initial)}`,
        'initial',
      )
    }
    this.#value = initial
  }

  /** The current local time (the lamport of the last envelope sent or the highest one seen). */
  get value(): number {
    return this.#value
  }

  /**
   * Advances the clock for a send and returns the lamport to stamp on the envelope (`local + 1`).
   *
   * @throws {InvariantError} when the clock would pass `Number.MAX_SAFE_INTEGER`.
   */
  tick(): number {
    if (this.#value >= Number.MAX_SAFE_INTEGER) {
      throw new InvariantError('Lamport clock reached Number.MAX_SAFE_INTEGER and cannot advance')
    }
    this.#value += 1
    return this.#value
  }

  /**
   * Merges a received lamport: `local = max(local, remote)`.
   *
   * @throws {InvalidArgumentError} field `remote` unless it is a non-negative integer.
   * @throws {InvariantError} when `remote` is past `Number.MAX_SAFE_INTEGER`.
   */
  observe(remote: number): void {
    if (typeof remote !== 'number' || !Number.isInteger(remote) || remote < 0) {
      throw new InvalidArgumentError(`remote must be a non-negative integer, got ${String(remote)}`, 'remote')
    }
    if (remote > Number.MAX_SAFE_INTEGER) {
      throw new InvariantError(`remote lamport ${remote} is past Number.MAX_SAFE_INTEGER`)
    }
    if (remote > this.#value) this.#value = remote
  }
}
