/**
 * Decoded envelopes are cheap to keep: no byte view into the frame they came in (a signature kept a
 * whole batch alive), DECIDEs under one pool share one frozen pool object, and the interner that
 * shares repeated strings stays within two generations whatever it is fed.
 */
import { decode, encode } from '@ipld/dag-cbor'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decidedOpening } from '../../../test-support/decided-thread.ts'
import { makeIdentities, testParams } from '../../../test-support/envelopes.ts'
import { decodeEnvelope, encodeEnvelope } from '../src/core/codec.ts'
import { compactDecoded, Interner } from '../src/core/compact.ts'
import { poolSnapshotOf } from '../src/core/thread/params.ts'
import type { Envelope } from '../src/core/types.ts'

const pool = await makeIdentities(3, 40)
const [vA, vB, vC] = pool.map((identity) => identity.did) as [string, string, string]

async function decideUnder(verifiers: string[], tag: number): Promise<Envelope<'DECIDE'>> {
  const [requester, planner, verifier, decider] = await makeIdentities(4, tag)
  const params = testParams({ anchors: [decider!.did], verifiers })
  const opening = await decidedOpening({
    requester: requester!,
    planner: planner!,
    verifier: verifier!,
    decider: decider!,
    params,
    requires: ['sha256'],
    inputs: [],
    produces: 'out',
    budget: 1,
    price: 1,
    patch: [{ name: 'a', capability: 'sha256', inputs: [], produces: 'out' }],
  })
  expect(opening.decide.payload.pool).toEqual(poolSnapshotOf(params))
  return opening.decide
}

describe('decoded envelopes', () => {
  it('hold no view into the frame they were read from', async () => {
    const decide = await decideUnder([vA], 41)
    const bytes = encodeEnvelope(decide)
    // The envelope in the middle of a larger frame, as a batch or sync response carries it.
    const frame = Buffer.alloc(bytes.length + 10_000)
    frame.set(bytes, 5_000)
    const decoded = decodeEnvelope(frame.subarray(5_000, 5_000 + bytes.length))
    expect(decoded.sig.byteLength).toBe(64)
    expect(decoded.sig.buffer.byteLength).toBe(64)
    expect(decoded).toEqual(decodeEnvelope(bytes))
    expect(decoded.id).toBe(decide.id)
  })

  it('share one frozen pool among DECIDEs under equal pools, and not across different ones', async () => {
    const a = await decideUnder([vA, vB], 42)
    const b = await decideUnder([vA, vB], 43)
    const c = await decideUnder([vA, vC], 44)
    const [da, db, dc] = [a, b, c].map((env) => decodeEnvelope(encodeEnvelope(env)) as Envelope<'DECIDE'>)
    expect(da!.payload.pool).toBe(db!.payload.pool)
    expect(Object.isFrozen(da!.payload.pool)).toBe(true)
    expect(dc!.payload.pool).not.toBe(da!.payload.pool)
    expect(dc!.payload.pool.verifiers).toContain(vC)
    // Shared, the envelopes still encode to the bytes that were signed.
    expect(encodeEnvelope(db!)).toEqual(encodeEnvelope(b))
  })
})

describe('compactDecoded', () => {
  it('copies byte views out of their buffers and keeps the value equal', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.uint8Array({ minLength: 1, maxLength: 50 }), (json, extra) => {
        // Byte strings as views into a larger frame (what a decoder that does not copy returns).
        const frame = new Uint8Array(extra.length + 9)
        frame.set(extra, 4)
        const view = () => frame.subarray(4, 4 + extra.length)
        const decoded = { json: decode(encode(json)) as unknown, bytes: view(), nested: [{ inner: view() }] }
        // What the codec makes of the value (DAG-CBOR writes -0 as the integer 0).
        const canonical = decode(encode(json)) as unknown
        const compacted = compactDecoded(decoded)
        expect(compacted).toEqual({ json: canonical, bytes: extra, nested: [{ inner: extra }] })
        expect(compacted.bytes.buffer.byteLength).toBe(extra.length)
        expect(compacted.nested[0]!.inner.buffer.byteLength).toBe(extra.length)
      }),
    )
  })
})

describe('Interner', () => {
  it('returns an equal string and never holds more than two generations', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 200 }), { maxLength: 400 }),
        fc.integer({ min: 1, max: 50 }),
        (strings, generation) => {
          const interner = new Interner(generation)
          for (const value of strings) {
            expect(interner.intern(value)).toBe(value)
            expect(interner.size).toBeLessThanOrEqual(2 * generation)
          }
        },
      ),
    )
  })
})
