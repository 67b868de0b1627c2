/**
 * Keeping decoded envelopes small (docs/PROTOCOL.md §13). A decoded envelope is held for as long as
 * its thread is, so what it points at counts per envelope:
 * - DAG-CBOR byte strings decode as views into the input: a 64-byte signature kept the whole
 *   envelope's bytes alive, or a whole batch or sync frame. {@link compactDecoded} copies every
 *   view that is smaller than its buffer.
 * - The same short strings arrive again and again in separate copies: the network id, senders,
 *   thread ids, ids referenced by later envelopes, kinds. They are interned through a bounded,
 *   generational table ({@link Interner}): recent strings share one copy; a flood of distinct
 *   strings only turns generations over.
 */

/** Strings longer than this are never interned. */
export const INTERN_MAX_CHARS = 128
/** Strings per generation of the shared interner (two generations are kept). */
export const INTERN_GENERATION = 16_384

/** A bounded string interner: two generations of at most `generation` strings each. */
export class Interner {
  readonly #generation: number
  #young = new Map<string, string>()
  #old = new Map<string, string>()

  constructor(generation = INTERN_GENERATION) {
    this.#generation = generation
  }

  /** The shared copy of `value` (itself when new). */
  intern(value: string): string {
    if (value.length > INTERN_MAX_CHARS) return value
    const young = this.#young.get(value)
    if (young !== undefined) return young
    const old = this.#old.get(value)
    const kept = old ?? value
    if (this.#young.size >= this.#generation) {
      this.#old = this.#young
      this.#young = new Map()
    }
    this.#young.set(kept, kept)
    return kept
  }

  /** Strings held (both generations). */
  get size(): number {
    return this.#young.size + this.#old.size
  }
}

const shared = new Interner()

/** Interns `value` in the process-wide table. */
export function intern(value: string): string {
  return shared.intern(value)
}

/**
 * Makes a freshly decoded value cheap to keep, in place: byte views are copied out of their input
 * buffer, strings (values and keys' values) interned. Returns the value (a root byte view or string
 * is returned replaced). The walk is bounded by what the decoder's budget let through.
 */
export function compactDecoded<T>(value: T, interner: Interner = shared): T {
  return walk(value, interner) as T
}

function walk(value: unknown, interner: Interner): unknown {
  if (typeof value === 'string') return interner.intern(value)
  if (value instanceof Uint8Array) {
    return value.byteOffset === 0 && value.byteLength === value.buffer.byteLength ? value : value.slice()
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = walk(value[i], interner)
    return value
  }
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    const record = value as Record<string, unknown>
    for (const key of Object.keys(record)) record[key] = walk(record[key], interner)
  }
  return value
}
