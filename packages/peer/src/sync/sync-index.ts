/**
 * The ordered, fingerprinted set envelope sync reconciles (docs/PROTOCOL.md §8.4). Items are
 * ordered by thread, then in the thread's total order (lamport, sender, id: `compareEnvelopes`),
 * so a range of the set is a run of consecutive envelopes of consecutive threads, and a page of a
 * range is what a replica can place in order. Each item contributes SHA-256(id) to its range's
 * fingerprint: the sum of those hashes modulo 2^256 with the item count, which is independent of
 * insertion order and kept up to date in O(1) per item.
 *
 * Items sit in sorted chunks of at most {@link CHUNK_ITEMS} (an insertion moves at most a chunk);
 * the running count and sum over chunks are rebuilt lazily after a change, so a position, the item
 * at a position and the fingerprint of any range each cost O(log n + {@link CHUNK_ITEMS}).
 *
 * @example
 * ```ts
 * const index = new SyncIndex<AnyEnvelope>()
 * index.add(env)
 * const whole = index.fingerprint(0, index.size) // { count, sum }
 * ```
 */
import { sha256 } from '@noble/hashes/sha2.js'

/** What places an item in the order: an envelope has these fields. */
export interface SyncKeyed {
  readonly thread: string
  readonly lamport: number
  readonly sender: string
  readonly id: string
}

/** Order of the set: thread, then lamport, sender, id (the thread's total order). */
export function compareKeys(a: SyncKeyed, b: SyncKeyed): number {
  if (a.thread !== b.thread) return a.thread < b.thread ? -1 : 1
  if (a.lamport !== b.lamport) return a.lamport < b.lamport ? -1 : 1
  if (a.sender !== b.sender) return a.sender < b.sender ? -1 : 1
  if (a.id !== b.id) return a.id < b.id ? -1 : 1
  return 0
}

/** Fingerprint of a range: how many items, and the sum of their SHA-256(id) modulo 2^256. */
export interface Fingerprint {
  count: number
  /** 32 bytes, little-endian. */
  sum: Uint8Array
}

/** Most items per chunk (a full chunk splits in two). */
export const CHUNK_ITEMS = 256

const LIMBS = 8
const textEncoder = new TextEncoder()

/** SHA-256 of an id as eight little-endian 32-bit limbs, written at `out[offset…]`. */
function hashInto(id: string, out: Uint32Array, offset: number): void {
  const digest = sha256(textEncoder.encode(id))
  for (let limb = 0; limb < LIMBS; limb += 1) {
    const at = limb * 4
    out[offset + limb] =
      (digest[at]! | (digest[at + 1]! << 8) | (digest[at + 2]! << 16) | (digest[at + 3]! << 24)) >>> 0
  }
}

/** `into[i…] += from[j…]` modulo 2^256 (`sign` −1 subtracts). */
function addLimbs(into: Uint32Array, i: number, from: Uint32Array, j: number, sign: 1 | -1 = 1): void {
  let carry = 0
  for (let limb = 0; limb < LIMBS; limb += 1) {
    const value = into[i + limb]! + sign * from[j + limb]! + carry
    into[i + limb] = value >>> 0
    carry = value < 0 ? -1 : value > 0xffffffff ? 1 : 0
  }
}

function limbsToBytes(limbs: Uint32Array): Uint8Array {
  const bytes = new Uint8Array(LIMBS * 4)
  for (let limb = 0; limb < LIMBS; limb += 1) {
    const value = limbs[limb]!
    bytes[limb * 4] = value & 0xff
    bytes[limb * 4 + 1] = (value >>> 8) & 0xff
    bytes[limb * 4 + 2] = (value >>> 16) & 0xff
    bytes[limb * 4 + 3] = value >>> 24
  }
  return bytes
}

/** Whether two fingerprints are equal (count and sum). */
export function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  if (a.count !== b.count || a.sum.length !== b.sum.length) return false
  for (let i = 0; i < a.sum.length; i += 1) if (a.sum[i] !== b.sum[i]) return false
  return true
}

interface Chunk<T> {
  items: T[]
  /** Hash limbs of `items`, in the same order. */
  hashes: Uint32Array
  sum: Uint32Array
}

function newChunk<T>(): Chunk<T> {
  return { items: [], hashes: new Uint32Array(CHUNK_ITEMS * LIMBS), sum: new Uint32Array(LIMBS) }
}

export class SyncIndex<T extends SyncKeyed> {
  #chunks: Chunk<T>[] = []
  readonly #byId = new Map<string, T>()
  /** Items before each chunk (length chunks + 1), valid unless #dirty. */
  #before: number[] = [0]
  /** Sum of hashes before each chunk ((chunks + 1) × 8 limbs), valid unless #dirty. */
  #sumBefore = new Uint32Array(LIMBS)
  #dirty = false

  get size(): number {
    return this.#byId.size
  }

  has(id: string): boolean {
    return this.#byId.has(id)
  }

  get(id: string): T | undefined {
    return this.#byId.get(id)
  }

  /** Adds an item (once; false when its id is already held). O(log n + {@link CHUNK_ITEMS}). */
  add(item: T): boolean {
    if (this.#byId.has(item.id)) return false
    this.#byId.set(item.id, item)
    const chunks = this.#chunks
    if (chunks.length === 0) chunks.push(newChunk())
    const low = this.#chunkFor(item)
    const chunk = chunks[low]!
    const at = lowerBound(chunk.items, item)
    chunk.items.splice(at, 0, item)
    chunk.hashes.copyWithin((at + 1) * LIMBS, at * LIMBS, (chunk.items.length - 1) * LIMBS)
    hashInto(item.id, chunk.hashes, at * LIMBS)
    addLimbs(chunk.sum, 0, chunk.hashes, at * LIMBS)
    if (chunk.items.length >= CHUNK_ITEMS) this.#split(low)
    this.#dirty = true
    return true
  }

  /** The first chunk whose last item sorts at or after `item` (else the last chunk). */
  #chunkFor(item: SyncKeyed): number {
    const chunks = this.#chunks
    let low = 0
    let high = chunks.length - 1
    while (low < high) {
      const mid = (low + high) >> 1
      const items = chunks[mid]!.items
      if (compareKeys(items[items.length - 1]!, item) < 0) low = mid + 1
      else high = mid
    }
    return low
  }

  /** Removes an item by id (false when not held). O(log n + {@link CHUNK_ITEMS}). */
  remove(id: string): boolean {
    const item = this.#byId.get(id)
    if (item === undefined) return false
    this.#byId.delete(id)
    const chunks = this.#chunks
    const low = this.#chunkFor(item)
    const chunk = chunks[low]!
    const at = lowerBound(chunk.items, item)
    addLimbs(chunk.sum, 0, chunk.hashes, at * LIMBS, -1)
    chunk.items.splice(at, 1)
    chunk.hashes.copyWithin(at * LIMBS, (at + 1) * LIMBS, (chunk.items.length + 1) * LIMBS)
    chunk.hashes.fill(0, chunk.items.length * LIMBS, (chunk.items.length + 1) * LIMBS)
    if (chunk.items.length === 0) chunks.splice(low, 1)
    this.#dirty = true
    return true
  }

  #split(index: number): void {
    const chunk = this.#chunks[index]!
    const half = chunk.items.length >> 1
    const right = newChunk<T>()
    right.items = chunk.items.splice(half)
    right.hashes.set(chunk.hashes.subarray(half * LIMBS, (half + right.items.length) * LIMBS))
    for (let i = 0; i < right.items.length; i += 1) {
      addLimbs(right.sum, 0, right.hashes, i * LIMBS)
      addLimbs(chunk.sum, 0, right.hashes, i * LIMBS, -1)
    }
    this.#chunks.splice(index + 1, 0, right)
  }

  #refresh(): void {
    if (!this.#dirty) return
    const chunks = this.#chunks
    this.#before = new Array<number>(chunks.length + 1)
    this.#before[0] = 0
    this.#sumBefore = new Uint32Array((chunks.length + 1) * LIMBS)
    for (let c = 0; c < chunks.length; c += 1) {
      this.#before[c + 1] = this.#before[c]! + chunks[c]!.items.length
      this.#sumBefore.set(this.#sumBefore.subarray(c * LIMBS, (c + 1) * LIMBS), (c + 1) * LIMBS)
      addLimbs(this.#sumBefore, (c + 1) * LIMBS, chunks[c]!.sum, 0)
    }
    this.#dirty = false
  }

  /** The chunk holding position `position` (< size) and the offset in it. */
  #locate(position: number): [chunk: number, offset: number] {
    this.#refresh()
    let low = 0
    let high = this.#chunks.length - 1
    while (low < high) {
      const mid = (low + high + 1) >> 1
      if (this.#before[mid]! <= position) low = mid
      else high = mid - 1
    }
    return [low, position - this.#before[low]!]
  }

  /** How many items sort before `key` (`null`: 0, or the size when `end`). */
  position(key: SyncKeyed | null, end = false): number {
    if (key === null) return end ? this.size : 0
    this.#refresh()
    const chunks = this.#chunks
    let low = 0
    let high = chunks.length
    while (low < high) {
      const mid = (low + high) >> 1
      const items = chunks[mid]!.items
      if (compareKeys(items[items.length - 1]!, key) < 0) low = mid + 1
      else high = mid
    }
    if (low === chunks.length) return this.size
    return this.#before[low]! + lowerBound(chunks[low]!.items, key)
  }

  /** The item at `position` (0 ≤ position < size). */
  at(position: number): T {
    const [chunk, offset] = this.#locate(position)
    return this.#chunks[chunk]!.items[offset]!
  }

  /** Items at positions `from` (inclusive) to `to` (exclusive), in order. */
  *slice(from: number, to: number): Generator<T> {
    if (from >= to) return
    let [chunk, offset] = this.#locate(from)
    for (let position = from; position < to; position += 1) {
      const items = this.#chunks[chunk]!.items
      if (offset >= items.length) {
        chunk += 1
        offset = 0
      }
      yield this.#chunks[chunk]!.items[offset]!
      offset += 1
    }
  }

  /** Fingerprint of the items at positions `from` (inclusive) to `to` (exclusive). */
  fingerprint(from: number, to: number): Fingerprint {
    const sum = new Uint32Array(LIMBS)
    if (from >= to) return { count: 0, sum: limbsToBytes(sum) }
    const [first, firstOffset] = this.#locate(from)
    const [last, lastOffset] = to >= this.size ? [this.#chunks.length, 0] : this.#locate(to)
    const chunks = this.#chunks
    if (first === last) {
      for (let i = firstOffset; i < lastOffset; i += 1) addLimbs(sum, 0, chunks[first]!.hashes, i * LIMBS)
    } else {
      // The rest of the first chunk, the whole chunks between, the start of the last one.
      sum.set(chunks[first]!.sum)
      for (let i = 0; i < firstOffset; i += 1) addLimbs(sum, 0, chunks[first]!.hashes, i * LIMBS, -1)
      addLimbs(sum, 0, this.#sumBefore, last * LIMBS)
      addLimbs(sum, 0, this.#sumBefore, (first + 1) * LIMBS, -1)
      for (let i = 0; i < lastOffset; i += 1) addLimbs(sum, 0, chunks[last]!.hashes, i * LIMBS)
    }
    return { count: to - from, sum: limbsToBytes(sum) }
  }
}

function lowerBound<T extends SyncKeyed>(items: readonly T[], key: SyncKeyed): number {
  let low = 0
  let high = items.length
  while (low < high) {
    const mid = (low + high) >> 1
    if (compareKeys(items[mid]!, key) < 0) low = mid + 1
    else high = mid
  }
  return low
}
