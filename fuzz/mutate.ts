/**
 * Input generation: a seeded PRNG and a structure-aware mutator. Each input starts from one valid
 * seed; most are mutated at the level of data items (see cbor.ts: an integer becomes an extreme, a
 * string huge, empty or not UTF-8, an array or map loses, repeats or gains items, nests deep, a
 * key is dropped or repeated, a value changes type, a head lies about its length or widens its
 * argument, a byte string holding CBOR is mutated inside), the rest at the level of bytes (bit
 * flips, truncation, splices of two seeds, length-header bombs, repeated chunks).
 *
 * Every input is a function of (run seed, target, input index) alone, so a crash is reproduced
 * from those three numbers without replaying the inputs before it.
 */
import { concatBytes } from '@noble/hashes/utils.js'
import { encodeItem, type Item, int, itemFromJson, itemToJson, MAX_UINT64, parseItem } from './cbor.ts'

// ---------------------------------------------------------------- PRNG

/** 32-bit FNV-1a of a string (to fold a target's name into its inputs' seeds). */
export function hashName(name: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < name.length; i += 1) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0
  return hash
}

/** A small, fast PRNG (sfc32) whose state is mixed from any number of 32-bit words. */
export class Rng {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor(...words: number[]) {
    let h = 0x9e3779b9
    const mix = (value: number): number => {
      h = Math.imul(h ^ (value >>> 0), 0x85ebca6b) >>> 0
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0
      h = (h ^ (h >>> 16)) >>> 0
      return h
    }
    for (const word of words) mix(word)
    this.#a = mix(1)
    this.#b = mix(2)
    this.#c = mix(3)
    this.#d = mix(4)
    for (let i = 0; i < 12; i += 1) this.next()
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0
    this.#d = (this.#d + 1) >>> 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) >>> 0
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0
    this.#c = (this.#c + t) >>> 0
    return t
  }

  /** A uniform integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.next() / 2 ** 32) * n)
  }

  chance(p: number): boolean {
    return this.next() / 2 ** 32 < p
  }

  pick<T>(list: readonly T[]): T {
    return list[this.below(list.length)]!
  }

  /** Picks an index by weight. */
  weighted(weights: readonly number[]): number {
    let total = 0
    for (const weight of weights) total += weight
    let roll = (this.next() / 2 ** 32) * total
    for (let i = 0; i < weights.length; i += 1) {
      roll -= weights[i]!
      if (roll < 0) return i
    }
    return weights.length - 1
  }

  bytes(count: number): Uint8Array {
    const out = new Uint8Array(count)
    for (let i = 0; i < count; i += 1) out[i] = this.next() & 255
    return out
  }
}

// ---------------------------------------------------------------- codecs

/** How a target's inputs map to item trees and back. `write` may throw: the input is then mutated as bytes. */
export interface Codec {
  parse(bytes: Uint8Array): Item | undefined
  write(item: Item): Uint8Array
}

export const cborCodec: Codec = { parse: parseItem, write: encodeItem }

const utf8 = new TextEncoder()
const utf8Lossy = new TextDecoder('utf-8', { fatal: false })

/** JSON text (UTF-8 bytes) as item trees; written back dag-json style (see {@link itemToJson}). */
export const jsonCodec: Codec = {
  parse(bytes) {
    try {
      return itemFromJson(JSON.parse(utf8Lossy.decode(bytes)))
    } catch {
      return undefined
    }
  },
  write: (item) => utf8.encode(itemToJson(item)),
}

// ---------------------------------------------------------------- dictionaries

/** Integers at the edges of every width, of JavaScript's safe range and of signedness. */
const INTERESTING_INTS: readonly bigint[] = [
  0n,
  1n,
  -1n,
  23n,
  24n,
  255n,
  256n,
  65_535n,
  65_536n,
  2n ** 31n - 1n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n,
  MAX_UINT64,
  -(2n ** 31n),
  -(2n ** 53n) - 1n,
  -(2n ** 63n),
  -MAX_UINT64 - 1n,
]

const INTERESTING_FLOATS = [0, -0, 0.5, 1.5, Number.NaN, Infinity, -Infinity, 1e308, 5e-324, 2 ** 53, -1]

/** Byte sequences that are not UTF-8: a lone continuation, an overlong NUL, a surrogate, 0xff. */
const BAD_UTF8: readonly Uint8Array[] = [
  Uint8Array.of(0x80),
  Uint8Array.of(0xc0, 0x80),
  Uint8Array.of(0xed, 0xa0, 0x80),
  Uint8Array.of(0xff),
  Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
  Uint8Array.of(0xe2, 0x82),
]

const ODD_TEXTS = [
  '',
  '\u0000',
  '\ufeff',
  '\u202e',
  '🦀',
  '../../etc/passwd',
  '%00',
  '%E0%A4%A',
  'a'.repeat(300),
]

/** Heads that declare far more than any input holds (bytes, text, array, map; 4- and 8-byte widths). */
const LENGTH_BOMBS: readonly Uint8Array[] = [
  Uint8Array.of(0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
  Uint8Array.of(0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
  Uint8Array.of(0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00),
  Uint8Array.of(0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
  Uint8Array.of(0x5a, 0xff, 0xff, 0xff, 0xff),
  Uint8Array.of(0x9a, 0x7f, 0xff, 0xff, 0xff),
  Uint8Array.of(0xba, 0x00, 0x10, 0x00, 0x00),
  Uint8Array.of(0x9f),
  Uint8Array.of(0xbf),
  Uint8Array.of(0x5f),
  Uint8Array.of(0xd8, 0x2a),
  Uint8Array.of(0xfb, 0x7f, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00),
]

/** Fragments of JSON that change its structure when spliced in. */
const JSON_TOKENS: readonly Uint8Array[] = [
  '{',
  '}',
  '[',
  ']',
  '"',
  '\\',
  ':',
  ',',
  '{"/":',
  '{"/":{"bytes":"',
  '"\\ud800"',
  '1e999',
  '-0',
  '99999999999999999999',
  'null',
  '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[',
  '{"id":"x",',
  '\u0000',
].map((token) => utf8.encode(token))

const INTERESTING_BYTES = [
  0x00, 0x01, 0x17, 0x18, 0x1b, 0x1f, 0x3f, 0x40, 0x5f, 0x7f, 0x80, 0x9f, 0xbf, 0xf7, 0xff,
]

/** Sizes of long strings and counts of repeats: the decoders' limits sit between them. Huge ones are rarer. */
const LONG_SIZES = [24, 65, 129, 257, 1025, 4097]
const HUGE_SIZES = [65_537, 1_048_577]
const REPEATS = [2, 3, 17, 65]
const HUGE_REPEATS = [257, 513, 1025]

/** Most bytes of copies one repeat mutation adds. */
const MAX_REPEATED_BYTES = 256 * 1024

const longSize = (rng: Rng): number => (rng.chance(0.1) ? rng.pick(HUGE_SIZES) : rng.pick(LONG_SIZES))
const repeats = (rng: Rng): number => (rng.chance(0.15) ? rng.pick(HUGE_REPEATS) : rng.pick(REPEATS))

/** What the seeds of one target hold, to splice into mutants: subtrees, texts, byte strings, keys. */
interface Dictionary {
  items: Item[]
  texts: Item[]
  bytes: Item[]
  keys: Item[]
}

const DICTIONARY_CAP = 4000

function gather(root: Item, into: Dictionary): void {
  const stack: Item[] = [root]
  while (stack.length > 0) {
    const item = stack.pop()!
    if (into.items.length < DICTIONARY_CAP) into.items.push(item)
    if (item.t === 'text' && into.texts.length < DICTIONARY_CAP) into.texts.push(item)
    else if (item.t === 'bytes' && into.bytes.length < DICTIONARY_CAP) into.bytes.push(item)
    else if (item.t === 'array') stack.push(...item.items)
    else if (item.t === 'tag') stack.push(item.item)
    else if (item.t === 'map')
      for (const [key, value] of item.entries) {
        if (into.keys.length < DICTIONARY_CAP) into.keys.push(key)
        stack.push(value)
      }
  }
}

// ---------------------------------------------------------------- tree paths

/**
 * A path from the root to an item: array index, map entry × 2 (+1 for the value), 0 for a tag's
 * content.
 */
type Path = readonly number[]

function children(item: Item): Item[] {
  if (item.t === 'array') return item.items
  if (item.t === 'map') return item.entries.flat()
  if (item.t === 'tag') return [item.item]
  return []
}

/** `size` bytes of `chunk` repeated (nothing for an empty chunk). */
function repeated(chunk: Uint8Array, size: number): Uint8Array {
  if (chunk.length === 0) return chunk
  const out = new Uint8Array(size)
  out.set(chunk.subarray(0, size))
  for (let filled = Math.min(chunk.length, size); filled < size; filled *= 2)
    out.copyWithin(filled, 0, filled)
  return out
}

/** Flips one random bit of a non-empty array. */
function flipBit(bytes: Uint8Array, rng: Rng): void {
  const at = rng.below(bytes.length)
  bytes[at] = bytes[at]! ^ (1 << rng.below(8))
}

/** Items in each subtree (trees are never changed in place, so the count of an item object holds). */
const sizes = new WeakMap<Item, number>()

function sizeOf(item: Item): number {
  let size = sizes.get(item)
  if (size === undefined) {
    size = 1
    for (const child of children(item)) size += sizeOf(child)
    sizes.set(item, size)
  }
  return size
}

/** A uniformly random item of the tree and its path. */
function randomItem(root: Item, rng: Rng): { path: Path; item: Item } {
  let rank = rng.below(sizeOf(root))
  const path: number[] = []
  let item = root
  while (rank > 0) {
    rank -= 1
    const list = children(item)
    for (let index = 0; index < list.length; index += 1) {
      const size = sizeOf(list[index]!)
      if (rank < size) {
        path.push(index)
        item = list[index]!
        break
      }
      rank -= size
    }
  }
  return { path, item }
}

/** A copy of `root` with the item at `path` replaced (copying only along the path). */
function replaceAt(root: Item, path: Path, next: Item, depth = 0): Item {
  if (depth === path.length) return next
  const index = path[depth]!
  if (root.t === 'array') {
    const items = root.items.slice()
    items[index] = replaceAt(items[index]!, path, next, depth + 1)
    return { ...root, items }
  }
  if (root.t === 'map') {
    const entries = root.entries.slice()
    const entry = entries[index >> 1]!.slice() as [Item, Item]
    entry[index & 1] = replaceAt(entry[index & 1]!, path, next, depth + 1)
    entries[index >> 1] = entry
    return { ...root, entries }
  }
  if (root.t === 'tag') return { ...root, item: replaceAt(root.item, path, next, depth + 1) }
  return root
}

// ---------------------------------------------------------------- the mutator

/** Largest input the mutator hands out (the biggest limits decoders enforce are below it). */
const MAX_INPUT_BYTES = 17 * 1024 * 1024

export class Mutator {
  readonly seeds: readonly Uint8Array[]
  readonly #codec: Codec
  readonly #trees: (Item | undefined)[]
  readonly #dictionary: Dictionary = { items: [], texts: [], bytes: [], keys: [] }
  readonly #json: boolean

  constructor(seeds: readonly Uint8Array[], codec: Codec = cborCodec) {
    if (seeds.length === 0) throw new Error('a fuzz target needs at least one seed')
    this.seeds = seeds
    this.#codec = codec
    this.#json = codec === jsonCodec
    this.#trees = seeds.map((seed) => codec.parse(seed))
    for (const tree of this.#trees) if (tree) gather(tree, this.#dictionary)
  }

  /** Input `index` of a run: the seeds themselves first, then mutants. */
  input(rng: Rng, index: number): Uint8Array {
    if (index < this.seeds.length) return this.seeds[index]!
    const which = rng.below(this.seeds.length)
    const tree = this.#trees[which]
    let bytes = this.seeds[which]!
    if (tree && rng.chance(0.8)) {
      let mutated = tree
      const rounds = rng.chance(0.5) ? 1 : 2 + rng.below(4)
      for (let round = 0; round < rounds; round += 1) mutated = this.mutateTree(mutated, rng)
      try {
        bytes = this.#codec.write(mutated)
      } catch {
        bytes = this.mutateBytes(bytes, rng)
      }
      if (rng.chance(0.15)) bytes = this.mutateBytes(bytes, rng)
    } else {
      const rounds = 1 + rng.below(3)
      for (let round = 0; round < rounds; round += 1) bytes = this.mutateBytes(bytes, rng)
    }
    return bytes.length > MAX_INPUT_BYTES ? bytes.subarray(0, MAX_INPUT_BYTES) : bytes
  }

  /** One structural mutation somewhere in the tree. */
  mutateTree(root: Item, rng: Rng): Item {
    const { path, item } = randomItem(root, rng)
    return replaceAt(root, path, this.mutateItem(item, rng, path.length))
  }

  mutateItem(item: Item, rng: Rng, depth: number): Item {
    switch (rng.weighted([6, 2, 2, 1.5, 0.6])) {
      case 0:
        return this.#specific(item, rng, depth)
      case 1:
        return this.#dictionaryItem(rng) ?? this.#scalar(rng)
      case 2:
        return this.#scalar(rng)
      case 3:
        return this.#reencode(item, rng)
      default:
        return this.#wrap(item, rng)
    }
  }

  #dictionaryItem(rng: Rng): Item | undefined {
    const { items } = this.#dictionary
    return items.length > 0 ? rng.pick(items) : undefined
  }

  /** A scalar (or empty container) of a random type. */
  #scalar(rng: Rng): Item {
    switch (rng.below(9)) {
      case 0:
        return int(rng.pick(INTERESTING_INTS))
      case 1:
        return { t: 'float', v: rng.pick(INTERESTING_FLOATS), size: rng.pick([2, 4, 8] as const) }
      case 2:
        return { t: 'text', v: utf8.encode(rng.pick(ODD_TEXTS)) }
      case 3:
        return { t: 'bytes', v: rng.bytes(rng.pick([0, 1, 32, 64])) }
      case 4:
        return { t: 'simple', v: rng.pick([20, 21, 22, 23, 0, 19, 24, 255]) }
      case 5:
        return { t: 'array', items: [] }
      case 6:
        return { t: 'map', entries: [] }
      case 7:
        return { t: 'tag', tag: 42n, item: { t: 'bytes', v: rng.bytes(rng.pick([0, 1, 37])) } }
      default:
        return this.#dictionary.texts.length > 0 ? rng.pick(this.#dictionary.texts) : int(rng.next())
    }
  }

  /** The same item, encoded otherwise: a wider argument, an indefinite length, or a false length. */
  #reencode(item: Item, rng: Rng): Item {
    const sized = item.t === 'bytes' || item.t === 'text' || item.t === 'array' || item.t === 'map'
    const roll = rng.below(sized ? 3 : 1)
    if (roll === 0) return { ...item, enc: { ...item.enc, width: rng.pick([1, 2, 4, 8] as const) } }
    if (roll === 1) return { ...item, enc: { indefinite: true } }
    const length =
      item.t === 'array'
        ? item.items.length
        : item.t === 'map'
          ? item.entries.length
          : item.t === 'bytes' || item.t === 'text'
            ? item.v.length
            : 0
    const declared = rng.pick([
      BigInt(length) + 1n,
      BigInt(Math.max(0, length - 1)),
      0n,
      2n ** 32n,
      MAX_UINT64,
    ])
    return { ...item, enc: { declared } } as Item
  }

  /** The item inside something: an array (1, 2, or hundreds deep), a map, a tag. */
  #wrap(item: Item, rng: Rng): Item {
    switch (rng.below(4)) {
      case 0: {
        let wrapped = item
        const depth = rng.pick([1, 2, 20, 33, 200])
        for (let i = 0; i < depth; i += 1) wrapped = { t: 'array', items: [wrapped] }
        return wrapped
      }
      case 1:
        return { t: 'map', entries: [[this.#key(rng), item]] }
      case 2:
        return { t: 'tag', tag: rng.pick([42n, 0n, 1n, 24n, 55799n, MAX_UINT64]), item }
      default:
        return item.t === 'tag' ? item.item : { t: 'array', items: [item, item] }
    }
  }

  #key(rng: Rng): Item {
    const { keys } = this.#dictionary
    if (keys.length > 0 && rng.chance(0.7)) return rng.pick(keys)
    return rng.chance(0.5)
      ? { t: 'text', v: utf8.encode(rng.pick(['id', 'x', '', '/', '__proto__'])) }
      : int(0)
  }

  /** A mutation that fits the item's type. */
  #specific(item: Item, rng: Rng, depth: number): Item {
    switch (item.t) {
      case 'int': {
        const roll = rng.below(4)
        if (roll === 0) return int(item.v + 1n)
        if (roll === 1) return int(item.v - 1n)
        if (roll === 2) return { t: 'float', v: Number(item.v), size: rng.pick([2, 4, 8] as const) }
        return int(rng.pick(INTERESTING_INTS))
      }
      case 'float':
        return rng.chance(0.5)
          ? { t: 'float', v: rng.pick(INTERESTING_FLOATS), size: item.size }
          : { t: 'float', v: item.v, size: rng.pick([2, 4, 8] as const) }
      case 'simple':
        return { t: 'simple', v: rng.pick([20, 21, 22, 23, 0, 24, 31, 255]) }
      case 'text':
      case 'bytes':
        return this.#string(item, rng, depth)
      case 'array':
        return this.#array(item, rng)
      case 'map':
        return this.#map(item, rng)
      case 'tag':
        return rng.chance(0.5)
          ? item.item
          : { ...item, tag: rng.pick([0n, 1n, 37n, 41n, 43n, item.tag + 1n, MAX_UINT64]) }
    }
  }

  #string(item: Item & { t: 'text' | 'bytes' }, rng: Rng, depth: number): Item {
    const v = item.v
    const withBytes = (bytes: Uint8Array): Item => ({ t: item.t, v: bytes })
    switch (rng.below(item.t === 'bytes' ? 9 : 8)) {
      case 0:
        return withBytes(new Uint8Array(0))
      case 1: {
        const size = longSize(rng)
        return withBytes(repeated(v.length > 0 ? v : Uint8Array.of(0x61), size))
      }
      case 2: {
        const at = rng.below(v.length + 1)
        return withBytes(concatBytes(v.subarray(0, at), rng.pick(BAD_UTF8), v.subarray(at)))
      }
      case 3:
        return withBytes(v.subarray(0, rng.below(v.length + 1)))
      case 4: {
        const out = v.slice()
        if (out.length > 0) flipBit(out, rng)
        return withBytes(out)
      }
      case 5: {
        const { texts, bytes } = this.#dictionary
        const pool = item.t === 'text' ? texts : bytes
        return pool.length > 0 ? rng.pick(pool) : withBytes(rng.bytes(8))
      }
      case 6:
        return withBytes(concatBytes(v, rng.pick(ODD_TEXTS.map((t) => utf8.encode(t)))))
      case 7:
        return { t: item.t === 'text' ? 'bytes' : 'text', v }
      default: {
        // Bytes that hold CBOR (an envelope inside a frame or a request): mutate inside them.
        const inner = depth < 8 ? parseItem(v) : undefined
        if (!inner) return withBytes(this.mutateBytes(v, rng))
        return withBytes(encodeItem(this.mutateTree(inner, rng)))
      }
    }
  }

  #array(item: Item & { t: 'array' }, rng: Rng): Item {
    const items = item.items
    const at = rng.below(items.length)
    switch (rng.below(7)) {
      case 0:
        return { t: 'array', items: items.filter((_, index) => index !== at) }
      case 1:
        return { t: 'array', items: items.length > 0 ? [...items, items[at]!] : [this.#scalar(rng)] }
      case 2: {
        // Hundreds of copies test count limits; of a small item, so that a mutant is not megabytes
        // of valid envelopes (whose decoding is honest work, linear in their number).
        const copies = repeats(rng)
        let unit = items.length > 0 ? items[at]! : this.#scalar(rng)
        if (copies * encodeItem(unit).length > MAX_REPEATED_BYTES) unit = this.#scalar(rng)
        return { t: 'array', items: [...items, ...Array.from({ length: copies }, () => unit)] }
      }
      case 3:
        return { t: 'array', items: items.slice().reverse() }
      case 4:
        return { t: 'array', items: [] }
      case 5: {
        const out = items.slice()
        out.splice(at, 0, this.#dictionaryItem(rng) ?? this.#scalar(rng))
        return { t: 'array', items: out }
      }
      default:
        return { t: 'map', entries: items.map((child, index) => [int(index), child]) }
    }
  }

  #map(item: Item & { t: 'map' }, rng: Rng): Item {
    const entries = item.entries
    const at = rng.below(entries.length)
    switch (rng.below(7)) {
      case 0:
        return { t: 'map', entries: entries.filter((_, index) => index !== at) }
      case 1:
        return { t: 'map', entries: entries.length > 0 ? [...entries, entries[at]!] : [] }
      case 2:
        return {
          t: 'map',
          entries: [...entries, [this.#key(rng), this.#dictionaryItem(rng) ?? this.#scalar(rng)]],
        }
      case 3: {
        if (entries.length === 0) return item
        const out = entries.slice()
        out[at] = [this.#key(rng), entries[at]![1]]
        return { t: 'map', entries: out }
      }
      case 4:
        return { t: 'map', entries: entries.slice().reverse() }
      case 5:
        return { t: 'array', items: entries.flat() }
      default: {
        const copies = repeats(rng)
        const extra = Array.from({ length: copies }, (_, index): [Item, Item] => [int(index), int(index)])
        return { t: 'map', entries: [...entries, ...extra] }
      }
    }
  }

  /** One byte-level mutation. */
  mutateBytes(bytes: Uint8Array, rng: Rng): Uint8Array {
    const length = bytes.length
    const at = rng.below(length + 1)
    const other = rng.pick(this.seeds)
    switch (rng.below(this.#json ? 12 : 11)) {
      case 0: {
        const out = bytes.slice()
        const flips = 1 + rng.below(4)
        for (let i = 0; i < flips && length > 0; i += 1) flipBit(out, rng)
        return out
      }
      case 1: {
        const out = bytes.slice()
        if (length > 0) out[rng.below(length)] = rng.pick(INTERESTING_BYTES)
        return out
      }
      case 2:
        return bytes.subarray(0, at)
      case 3:
        return concatBytes(bytes.subarray(0, at), bytes.subarray(Math.min(length, at + 1 + rng.below(16))))
      case 4: {
        const chunk = bytes.subarray(at, at + 1 + rng.below(64))
        return concatBytes(
          bytes.subarray(0, at),
          repeated(chunk, chunk.length * repeats(rng)),
          bytes.subarray(at),
        )
      }
      case 5:
        return concatBytes(bytes.subarray(0, at), rng.bytes(1 + rng.below(16)), bytes.subarray(at))
      case 6:
        return concatBytes(bytes.subarray(0, at), rng.pick(LENGTH_BOMBS), bytes.subarray(at))
      case 7:
        return concatBytes(bytes.subarray(0, at), other.subarray(rng.below(other.length + 1)))
      case 8: {
        const from = rng.below(other.length + 1)
        const chunk = other.subarray(from, from + 1 + rng.below(32))
        const out = bytes.slice()
        out.set(chunk.subarray(0, Math.max(0, length - at)), Math.min(at, length))
        return out
      }
      case 9:
        return concatBytes(bytes, rng.bytes(1 + rng.below(8)))
      case 10:
        return concatBytes(
          bytes.subarray(0, at),
          Uint8Array.of(rng.next() & 255),
          bytes.subarray(Math.min(length, at + 1)),
        )
      default: {
        const token = rng.pick(JSON_TOKENS)
        const copies = rng.chance(0.1) ? rng.pick([1000, 100_000]) : 1
        return concatBytes(bytes.subarray(0, at), repeated(token, token.length * copies), bytes.subarray(at))
      }
    }
  }
}
