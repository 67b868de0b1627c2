/**
 * The fuzzer's own view of CBOR: a tree of data items that keeps what a strict decoder cares about
 * and a well-behaved encoder never writes — non-minimal argument widths, indefinite lengths,
 * declared lengths that lie, floats of any width, text that is not UTF-8, any tag, any simple
 * value — so that mutations can change one item, or only how it is encoded, and write the rest of
 * the input back byte for byte. The same tree also writes dag-json text (bytes as
 * `{"/":{"bytes":…}}`, CIDs as `{"/":"b…"}`), so JSON inputs are mutated by the same code.
 */
import { concatBytes } from '@noble/hashes/utils.js'
import { base32 } from 'multiformats/bases/base32'
import { base64 } from 'multiformats/bases/base64'

/** How an item's head is written: a forced argument width, an indefinite length, a false count. */
export interface Encoding {
  /** Bytes of the argument after the initial byte (0: in the initial byte). Too narrow is ignored. */
  width?: 0 | 1 | 2 | 4 | 8
  /** Strings, arrays and maps: written as indefinite-length (CBOR allows it, DAG-CBOR does not). */
  indefinite?: boolean
  /** Strings, arrays and maps: the length the head declares, whatever the content holds. */
  declared?: bigint
}

export type Item = (
  | { t: 'int'; v: bigint }
  | { t: 'bytes'; v: Uint8Array }
  /** Raw bytes of the text, UTF-8 or not. */
  | { t: 'text'; v: Uint8Array }
  | { t: 'array'; items: Item[] }
  | { t: 'map'; entries: [Item, Item][] }
  | { t: 'tag'; tag: bigint; item: Item }
  /** Simple value: 20 false, 21 true, 22 null, 23 undefined, anything else unassigned. */
  | { t: 'simple'; v: number }
  | { t: 'float'; v: number; size: 2 | 4 | 8 }
) & { enc?: Encoding }

export const MAX_UINT64 = 2n ** 64n - 1n

const utf8 = new TextEncoder()
const lossy = new TextDecoder('utf-8', { fatal: false })

export const text = (value: string): Item => ({ t: 'text', v: utf8.encode(value) })
export const int = (value: number | bigint): Item => ({ t: 'int', v: BigInt(value) })

// ---------------------------------------------------------------- encoding

class Writer {
  bytes = new Uint8Array(256)
  length = 0

  reserve(extra: number): void {
    if (this.length + extra <= this.bytes.length) return
    let size = this.bytes.length * 2
    while (size < this.length + extra) size *= 2
    const grown = new Uint8Array(size)
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
  }

  byte(value: number): void {
    this.reserve(1)
    this.bytes[this.length++] = value
  }

  write(chunk: Uint8Array): void {
    this.reserve(chunk.length)
    this.bytes.set(chunk, this.length)
    this.length += chunk.length
  }

  head(major: number, argument: bigint, enc: Encoding | undefined): void {
    const value = argument < 0n ? 0n : argument > MAX_UINT64 ? MAX_UINT64 : argument
    const minimal = value < 24n ? 0 : value < 256n ? 1 : value < 65536n ? 2 : value < 2n ** 32n ? 4 : 8
    const width = enc?.width !== undefined && enc.width >= minimal ? enc.width : minimal
    if (width === 0) {
      this.byte((major << 5) | Number(value))
      return
    }
    this.byte((major << 5) | { 1: 24, 2: 25, 4: 26, 8: 27 }[width])
    for (let shift = BigInt((width - 1) * 8); shift >= 0n; shift -= 8n)
      this.byte(Number((value >> shift) & 255n))
  }

  result(): Uint8Array {
    return this.bytes.slice(0, this.length)
  }
}

/** The bytes of a float of `size` bytes (2: IEEE half precision, rounded toward zero). */
function floatBytes(value: number, size: 2 | 4 | 8): Uint8Array {
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  if (size === 8) view.setFloat64(0, value)
  else if (size === 4) view.setFloat32(0, value)
  else view.setUint16(0, halfBits(value))
  return out
}

function halfBits(value: number): number {
  if (Number.isNaN(value)) return 0x7e00
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0
  const magnitude = Math.abs(value)
  if (magnitude >= 65520) return sign | 0x7c00
  // Subnormal: a multiple of 2^-24 (rounding up to 0x400 gives the smallest normal, as it should).
  if (magnitude < 2 ** -14) return sign | Math.round(magnitude / 2 ** -24)
  let exponent = Math.floor(Math.log2(magnitude))
  if (magnitude / 2 ** exponent >= 2) exponent += 1
  if (magnitude / 2 ** exponent < 1) exponent -= 1
  let fraction = Math.round((magnitude / 2 ** exponent - 1) * 1024)
  if (fraction === 1024) {
    fraction = 0
    exponent += 1
  }
  return exponent > 15 ? sign | 0x7c00 : sign | ((exponent + 15) << 10) | fraction
}

function halfValue(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1
  const exponent = (bits >> 10) & 31
  const mantissa = bits & 0x3ff
  if (exponent === 0) return sign * mantissa * 2 ** -24
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : Number.NaN
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15)
}

function writeItem(out: Writer, item: Item): void {
  const enc = item.enc
  switch (item.t) {
    case 'int':
      if (item.v >= 0n) out.head(0, item.v, enc)
      else out.head(1, -1n - item.v, enc)
      return
    case 'bytes':
    case 'text': {
      const major = item.t === 'bytes' ? 2 : 3
      if (enc?.indefinite) {
        out.byte((major << 5) | 31)
        const half = item.v.length >> 1
        for (const chunk of [item.v.subarray(0, half), item.v.subarray(half)]) {
          out.head(major, BigInt(chunk.length), undefined)
          out.write(chunk)
        }
        out.byte(0xff)
        return
      }
      out.head(major, enc?.declared ?? BigInt(item.v.length), enc)
      out.write(item.v)
      return
    }
    case 'array':
    case 'map': {
      const major = item.t === 'array' ? 4 : 5
      const count = item.t === 'array' ? item.items.length : item.entries.length
      if (enc?.indefinite) out.byte((major << 5) | 31)
      else out.head(major, enc?.declared ?? BigInt(count), enc)
      if (item.t === 'array') for (const child of item.items) writeItem(out, child)
      else
        for (const [key, value] of item.entries) {
          writeItem(out, key)
          writeItem(out, value)
        }
      if (enc?.indefinite) out.byte(0xff)
      return
    }
    case 'tag':
      out.head(6, item.tag, enc)
      writeItem(out, item.item)
      return
    case 'simple':
      if (item.v < 24 && enc?.width === undefined) out.byte(0xe0 | item.v)
      else {
        out.byte(0xf8)
        out.byte(item.v & 255)
      }
      return
    case 'float':
      out.byte({ 2: 0xf9, 4: 0xfa, 8: 0xfb }[item.size])
      out.write(floatBytes(item.v, item.size))
      return
  }
}

/** The CBOR bytes of an item, encoded as its {@link Encoding} hints say. */
export function encodeItem(item: Item): Uint8Array {
  const out = new Writer()
  writeItem(out, item)
  return out.result()
}

// ---------------------------------------------------------------- parsing

/** Deepest nesting the parser follows (deeper input is not parsed, only mutated as bytes). */
const MAX_PARSE_DEPTH = 64
/** Most items the parser builds for one input. */
const MAX_PARSE_ITEMS = 200_000

class ParseError extends Error {}

class Reader {
  position = 0
  items = 0
  readonly bytes: Uint8Array
  constructor(bytes: Uint8Array) {
    this.bytes = bytes
  }

  need(count: number): void {
    if (this.position + count > this.bytes.length) throw new ParseError('truncated')
  }

  argument(info: number): { value: bigint; width: 0 | 1 | 2 | 4 | 8 } {
    if (info < 24) return { value: BigInt(info), width: 0 }
    if (info > 27) throw new ParseError('reserved')
    const width = (1 << (info - 24)) as 1 | 2 | 4 | 8
    this.need(width)
    let value = 0n
    for (let i = 0; i < width; i += 1) value = (value << 8n) | BigInt(this.bytes[this.position + i]!)
    this.position += width
    return { value, width }
  }

  item(depth: number): Item {
    if (depth > MAX_PARSE_DEPTH) throw new ParseError('too deep')
    this.items += 1
    if (this.items > MAX_PARSE_ITEMS) throw new ParseError('too many items')
    this.need(1)
    const initial = this.bytes[this.position++]!
    const major = initial >> 5
    const info = initial & 31
    if (info === 31) return this.indefinite(major, depth)
    if (major === 7) return this.simple(info)
    const { value, width } = this.argument(info)
    const minimal = value < 24n ? 0 : value < 256n ? 1 : value < 65536n ? 2 : value < 2n ** 32n ? 4 : 8
    const enc: Encoding | undefined = width === minimal ? undefined : { width }
    const withEnc = <T extends Item>(item: T): T => (enc ? { ...item, enc } : item)
    switch (major) {
      case 0:
        return withEnc({ t: 'int', v: value })
      case 1:
        return withEnc({ t: 'int', v: -1n - value })
      case 2:
      case 3: {
        if (value > BigInt(this.bytes.length - this.position)) throw new ParseError('long string')
        const length = Number(value)
        const v = this.bytes.slice(this.position, this.position + length)
        this.position += length
        return withEnc(major === 2 ? { t: 'bytes', v } : { t: 'text', v })
      }
      case 4:
      case 5: {
        if (value > BigInt(this.bytes.length - this.position)) throw new ParseError('long container')
        const count = Number(value)
        if (major === 4) {
          const items: Item[] = []
          for (let i = 0; i < count; i += 1) items.push(this.item(depth + 1))
          return withEnc({ t: 'array', items })
        }
        const entries: [Item, Item][] = []
        for (let i = 0; i < count; i += 1) entries.push([this.item(depth + 1), this.item(depth + 1)])
        return withEnc({ t: 'map', entries })
      }
      default:
        return withEnc({ t: 'tag', tag: value, item: this.item(depth + 1) })
    }
  }

  indefinite(major: number, depth: number): Item {
    const enc: Encoding = { indefinite: true }
    const atBreak = (): boolean => {
      this.need(1)
      if (this.bytes[this.position] !== 0xff) return false
      this.position += 1
      return true
    }
    if (major === 2 || major === 3) {
      const parts: Uint8Array[] = []
      while (!atBreak()) {
        const chunk = this.item(depth + 1)
        if (chunk.t !== (major === 2 ? 'bytes' : 'text')) throw new ParseError('bad chunk')
        parts.push(chunk.v)
      }
      const v = concatBytes(...parts)
      return major === 2 ? { t: 'bytes', v, enc } : { t: 'text', v, enc }
    }
    if (major === 4) {
      const items: Item[] = []
      while (!atBreak()) items.push(this.item(depth + 1))
      return { t: 'array', items, enc }
    }
    if (major === 5) {
      const entries: [Item, Item][] = []
      while (!atBreak()) entries.push([this.item(depth + 1), this.item(depth + 1)])
      return { t: 'map', entries, enc }
    }
    throw new ParseError('indefinite scalar')
  }

  simple(info: number): Item {
    if (info < 24) return { t: 'simple', v: info }
    if (info === 24) {
      this.need(1)
      return { t: 'simple', v: this.bytes[this.position++]!, enc: { width: 1 } }
    }
    if (info > 27) throw new ParseError('reserved')
    const size = (1 << (info - 24)) as 2 | 4 | 8
    this.need(size)
    const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.position, size)
    const v = size === 8 ? view.getFloat64(0) : size === 4 ? view.getFloat32(0) : halfValue(view.getUint16(0))
    this.position += size
    return { t: 'float', v, size }
  }
}

/** The item tree of `bytes` when they are exactly one CBOR item (any CBOR, not only DAG-CBOR). */
export function parseItem(bytes: Uint8Array): Item | undefined {
  const reader = new Reader(bytes)
  try {
    const item = reader.item(0)
    return reader.position === bytes.length ? item : undefined
  } catch (error) {
    if (error instanceof ParseError || error instanceof RangeError) return undefined
    throw error
  }
}

// ---------------------------------------------------------------- JSON

/** The item tree of a JSON value (as `JSON.parse` returns it). */
export function itemFromJson(value: unknown): Item {
  if (value === null) return { t: 'simple', v: 22 }
  if (typeof value === 'boolean') return { t: 'simple', v: value ? 21 : 20 }
  if (typeof value === 'number')
    return Number.isSafeInteger(value) ? int(value) : { t: 'float', v: value, size: 8 }
  if (typeof value === 'string') return text(value)
  if (Array.isArray(value)) return { t: 'array', items: value.map(itemFromJson) }
  return {
    t: 'map',
    entries: Object.entries(value as Record<string, unknown>).map(([key, v]) => [text(key), itemFromJson(v)]),
  }
}

function jsonNumber(value: number): string {
  if (Object.is(value, -0)) return '-0'
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity) return '1e999'
  if (value === -Infinity) return '-1e999'
  return String(value)
}

function jsonKey(item: Item): string {
  return item.t === 'text' ? JSON.stringify(lossy.decode(item.v)) : JSON.stringify(itemToJson(item))
}

/**
 * The JSON text of an item tree, dag-json style: bytes as `{"/":{"bytes":"<base64>"}}`, tag 42
 * (a CID) as `{"/":"b…"}`, other tags as their content, undefined and unassigned simple values as
 * `null`. Keys are written in the tree's order, duplicates included.
 */
export function itemToJson(item: Item): string {
  switch (item.t) {
    case 'int':
      return item.v.toString()
    case 'float':
      return jsonNumber(item.v)
    case 'text':
      return JSON.stringify(lossy.decode(item.v))
    case 'bytes':
      return `{"/":{"bytes":${JSON.stringify(base64.baseEncode(item.v))}}}`
    case 'tag':
      if (item.tag === 42n && item.item.t === 'bytes')
        return `{"/":${JSON.stringify(base32.encode(item.item.v.subarray(1)))}}`
      return itemToJson(item.item)
    case 'simple':
      return item.v === 20 ? 'false' : item.v === 21 ? 'true' : 'null'
    case 'array':
      return `[${item.items.map(itemToJson).join(',')}]`
    case 'map':
      return `{${item.entries.map(([key, value]) => `${jsonKey(key)}:${itemToJson(value)}`).join(',')}}`
  }
}

// ---------------------------------------------------------------- JavaScript values

/** The item tree of a decoded JavaScript value (what a library's decoder returns). */
export function itemFromValue(value: unknown): Item {
  if (value === null) return { t: 'simple', v: 22 }
  if (value === undefined) return { t: 'simple', v: 23 }
  if (typeof value === 'boolean') return { t: 'simple', v: value ? 21 : 20 }
  if (typeof value === 'bigint') return int(value)
  if (typeof value === 'number')
    return Number.isSafeInteger(value) ? int(value) : { t: 'float', v: value, size: 8 }
  if (typeof value === 'string') return text(value)
  if (value instanceof Uint8Array) return { t: 'bytes', v: value }
  if (Array.isArray(value)) return { t: 'array', items: value.map(itemFromValue) }
  return {
    t: 'map',
    entries: Object.entries(value as Record<string, unknown>).map(([key, v]) => [
      text(key),
      itemFromValue(v),
    ]),
  }
}

/** A JavaScript value of an item tree (integers beyond 2^53 as bigint, text decoded lossily). */
export function itemToValue(item: Item): unknown {
  switch (item.t) {
    case 'int':
      return item.v >= BigInt(Number.MIN_SAFE_INTEGER) && item.v <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(item.v)
        : item.v
    case 'float':
      return item.v
    case 'text':
      return lossy.decode(item.v)
    case 'bytes':
      return item.v
    case 'tag':
      return itemToValue(item.item)
    case 'simple':
      return item.v === 20 ? false : item.v === 21 ? true : item.v === 22 ? null : undefined
    case 'array':
      return item.items.map(itemToValue)
    case 'map':
      return Object.fromEntries(
        item.entries.map(([key, value]) => [
          key.t === 'text' ? lossy.decode(key.v) : String(itemToValue(key)),
          itemToValue(value),
        ]),
      )
  }
}
