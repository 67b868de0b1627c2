/**
 * The pre-decode budget: every well-formed DAG-CBOR value within the budget passes, and decode
 * bombs, lies about lengths, truncations, nesting and non-DAG-CBOR framing are refused with a typed
 * error before any value is built — at every decoder the wire reaches.
 */
import * as dagCbor from '@ipld/dag-cbor'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkCborBudget, ENVELOPE_CBOR_BUDGET } from '../src/core/cbor-budget.ts'
import { decodeEnvelope } from '../src/core/codec.ts'
import { MalformedEnvelopeError } from '../src/core/errors.ts'
import { decodeRequest } from '../src/decide/protocol.ts'
import { decodeFrame } from '../src/net/frame.ts'
import { decodeSyncRequest, decodeSyncResponse } from '../src/sync/protocol.ts'

const wide = { maxItems: 1_000_000, maxDepth: 64 }

/** DAG-CBOR-encodable values: integers, strings, bytes, booleans, null, lists and maps of them. */
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.integer(),
    fc.string(),
    fc.uint8Array({ maxLength: 40 }),
    fc.boolean(),
    fc.constant(null),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
  ),
  node: fc.oneof(
    { depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 6 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('node'), { maxKeys: 6 }),
  ),
})).node

/** Counts the data items of a value as CBOR does (a map entry is two items). */
function itemsOf(v: unknown): number {
  if (Array.isArray(v)) return 1 + v.reduce((sum: number, item) => sum + itemsOf(item), 0)
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return 1 + Object.values(v).reduce((sum: number, item) => sum + 1 + itemsOf(item), 0)
  }
  return 1
}

describe('checkCborBudget', () => {
  it('passes every DAG-CBOR value within the budget and refuses it one item short', () => {
    fc.assert(
      fc.property(value, (v) => {
        const bytes = dagCbor.encode(v)
        checkCborBudget(bytes, wide, 'x')
        const items = itemsOf(v)
        checkCborBudget(bytes, { maxItems: items, maxDepth: 64 }, 'x')
        expect(() => checkCborBudget(bytes, { maxItems: items - 1, maxDepth: 64 }, 'x')).toThrow(
          MalformedEnvelopeError,
        )
      }),
      { numRuns: 300 },
    )
  })

  it('refuses every truncation and any trailing byte of a valid encoding', () => {
    fc.assert(
      fc.property(value, fc.nat(), (v, cut) => {
        const bytes = dagCbor.encode(v)
        const at = cut % bytes.length
        expect(() => checkCborBudget(bytes.subarray(0, at), wide, 'x')).toThrow(MalformedEnvelopeError)
        const longer = new Uint8Array(bytes.length + 1)
        longer.set(bytes)
        expect(() => checkCborBudget(longer, wide, 'x')).toThrow(/after the item/)
      }),
      { numRuns: 300 },
    )
  })

  it('refuses decode bombs before they are built', () => {
    // A megabyte of empty maps in one array: a million objects if decoded.
    const count = 1_048_576
    const bomb = new Uint8Array(5 + count)
    bomb.set([0x9a, 0x00, 0x10, 0x00, 0x00]) // array of 2^20 items
    bomb.fill(0xa0, 5) // each an empty map
    expect(() => checkCborBudget(bomb, ENVELOPE_CBOR_BUDGET, 'envelope')).toThrow(
      /more than 100000 data items/,
    )
    expect(() => decodeEnvelope(bomb)).toThrow(MalformedEnvelopeError)
    // Deep nesting: [[[[…]]]].
    const deep = new Uint8Array(200).fill(0x81)
    deep[199] = 0xf6
    expect(() => checkCborBudget(deep, ENVELOPE_CBOR_BUDGET, 'envelope')).toThrow(/nesting deeper/)
    // A declared length the input cannot hold.
    expect(() => checkCborBudget(Uint8Array.from([0x9b, 0xff, 0, 0, 0, 0, 0, 0, 0]), wide, 'x')).toThrow(
      /declares more items/,
    )
    expect(() => checkCborBudget(Uint8Array.from([0x5a, 0xff, 0xff, 0xff, 0xff, 1]), wide, 'x')).toThrow(
      /longer than the input/,
    )
    // Framing DAG-CBOR forbids.
    expect(() => checkCborBudget(Uint8Array.from([0x9f, 0xff]), wide, 'x')).toThrow(/indefinite/)
    expect(() => checkCborBudget(Uint8Array.from([0xf7]), wide, 'x')).toThrow(/simple value/)
    expect(() => checkCborBudget(Uint8Array.from([0x1c]), wide, 'x')).toThrow(/reserved/)
  })

  it('guards every wire decoder', () => {
    const maps = (n: number) => {
      const bytes = new Uint8Array(5 + n)
      bytes.set([0x9a, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255])
      bytes.fill(0xa0, 5)
      return bytes
    }
    expect(() => decodeFrame(maps(300_000))).toThrow(MalformedEnvelopeError)
    expect(() => decodeRequest(maps(300_000))).toThrow(MalformedEnvelopeError)
    expect(() => decodeSyncRequest(maps(300_000))).toThrow(MalformedEnvelopeError)
    expect(() => decodeSyncResponse(maps(300_000))).toThrow(MalformedEnvelopeError)
    // A map of the right shape whose list holds maps instead of byte strings: refused by shape after.
    expect(() => decodeRequest(dagCbor.encode({ need: 'a', proposal: 'b', envelopes: [{}, {}] }))).toThrow(
      MalformedEnvelopeError,
    )
  })
})
