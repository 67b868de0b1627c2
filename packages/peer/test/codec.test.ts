import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  compareEnvelopes,
  computeEnvelopeId,
  decodeEnvelope,
  didFromPublicKey,
  encodeCanonical,
  encodeEnvelope,
  envelopeFromJson,
  envelopeToJson,
  hashCanonical,
  MAX_ENVELOPE_BYTES,
  publicKeyFromDid,
  sha256Hex,
  signingBytes,
  threadIdOf,
} from '../src/core/codec.ts'
import {
  CanSwarmError,
  InvalidArgumentError,
  InvariantError,
  MalformedEnvelopeError,
  OversizedEnvelopeError,
  WrongIdError,
} from '../src/core/errors.ts'
import { LamportClock } from '../src/core/lamport.ts'
import { type AnyEnvelope, type Envelope, KINDS } from '../src/core/types.ts'
import { arbCid, arbDid, arbEnvelope } from './arbitraries.ts'

/** A deep copy of `value` whose object keys are in reverse order (bytes and arrays kept). */
function reverseKeys<T>(value: T): T {
  if (value instanceof Uint8Array) return value.slice() as T
  if (Array.isArray(value)) return value.map(reverseKeys) as T
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.keys(value)
        .reverse()
        .map((key) => [key, reverseKeys((value as Record<string, unknown>)[key])]),
    ) as T
  }
  return value
}

/** Paths of the leaves (strings, numbers, byte strings) of a value. */
function leafPaths(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (typeof value === 'string' || typeof value === 'number' || value instanceof Uint8Array) return [path]
  if (Array.isArray(value)) return value.flatMap((item, index) => leafPaths(item, [...path, index]))
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([key, item]) => leafPaths(item, [...path, key]))
  }
  return []
}

/** A deep copy of `value` with the leaf at `path` changed to a different value of the same type. */
function mutateLeaf<T>(value: T, path: (string | number)[]): T {
  const copy = structuredClone(value)
  let parent: Record<string | number, unknown> = copy as Record<string | number, unknown>
  for (const part of path.slice(0, -1)) parent = parent[part] as Record<string | number, unknown>
  const key = path[path.length - 1]!
  const leaf = parent[key]
  if (typeof leaf === 'string') parent[key] = `${leaf}x`
  else if (typeof leaf === 'number') parent[key] = leaf === 0 ? 1 : leaf - 1
  else if (leaf instanceof Uint8Array) {
    const bytes = leaf.slice()
    bytes[0] = (bytes[0]! + 1) % 256
    parent[key] = bytes
  }
  return copy
}

function withoutId(env: AnyEnvelope) {
  const { id: _id, ...rest } = env
  return rest
}

describe('encodeEnvelope / decodeEnvelope', () => {
  it.each(KINDS)('round-trips arbitrary %s envelopes, id included', (kind) => {
    fc.assert(
      fc.property(arbEnvelope(kind), (env) => {
        const bytes = encodeEnvelope(env)
        const decoded = decodeEnvelope(bytes)
        expect(decoded).toEqual(env)
        expect(decoded.id).toBe(env.id)
        expect(encodeEnvelope(decoded)).toEqual(bytes)
      }),
      { numRuns: 40 },
    )
  })

  it('is deterministic: same value, same bytes, whatever the key order of the input', () => {
    fc.assert(
      fc.property(arbEnvelope(), (env) => {
        const reordered = reverseKeys(env)
        expect(Object.keys(reordered)).not.toEqual(Object.keys(env))
        expect(encodeEnvelope(reordered)).toEqual(encodeEnvelope(env))
        expect(signingBytes(reordered)).toEqual(signingBytes(env))
        expect(computeEnvelopeId(withoutId(reordered))).toBe(env.id)
        expect(envelopeToJson(reordered)).toBe(envelopeToJson(env))
      }),
      { numRuns: 100 },
    )
  })

  it('wire bytes carry no id, and the id is the CID of the wire bytes', () => {
    fc.assert(
      fc.property(arbEnvelope(), (env) => {
        const decoded = dagCbor.decode(encodeEnvelope(env)) as Record<string, unknown>
        expect(Object.hasOwn(decoded, 'id')).toBe(false)
        expect(env.id).toMatch(/^bafyrei[a-z2-7]{52}$/)
      }),
      { numRuns: 30 },
    )
  })

  it('changes the id when any field or payload leaf changes', () => {
    fc.assert(
      fc.property(
        arbEnvelope().chain((env) =>
          fc.tuple(fc.constant(env), fc.constantFrom(...leafPaths(withoutId(env)))),
        ),
        ([env, path]) => {
          const mutated = mutateLeaf(withoutId(env), path)
          expect(computeEnvelopeId(mutated)).not.toBe(env.id)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('signingBytes ignores id and sig, and omits undefined optional fields', () => {
    fc.assert(
      fc.property(arbEnvelope(), (env) => {
        const { sig: _sig, id: _id, ...unsigned } = env
        expect(signingBytes(env)).toEqual(signingBytes(unsigned))
        const withUndefined = { ...unsigned, evalDigest: undefined, fence: undefined }
        const { evalDigest: _e, fence: _f, ...bare } = unsigned
        expect(signingBytes(withUndefined as never)).toEqual(signingBytes(bare))
      }),
      { numRuns: 30 },
    )
  })

  it('rejects oversized bytes before decoding them', () => {
    const error = catchError(() => decodeEnvelope(new Uint8Array(MAX_ENVELOPE_BYTES + 1)))
    expect(error).toBeInstanceOf(OversizedEnvelopeError)
    expect(error.field).toBe('envelope')
  })

  it('rejects bytes that are not DAG-CBOR, not a map, or not canonical', () => {
    expect(catchError(() => decodeEnvelope(Uint8Array.of(0xff, 0x00)))).toBeInstanceOf(MalformedEnvelopeError)
    expect(catchError(() => decodeEnvelope(dagCbor.encode([1, 2])))).toBeInstanceOf(MalformedEnvelopeError)
    const env = fc.sample(arbEnvelope('CLAIM'), { numRuns: 1, seed: 7 })[0]!
    const wire = dagCbor.decode(encodeEnvelope(env)) as Record<string, unknown>
    // Same map, entries in reverse canonical order: DAG-CBOR that is not canonical.
    const entries = Object.keys(wire).reverse()
    const parts: Uint8Array[] = [Uint8Array.of(0xa0 + entries.length)]
    for (const key of entries) parts.push(dagCbor.encode(key), dagCbor.encode(wire[key]))
    const error = catchError(() => decodeEnvelope(concat(parts)))
    expect(error).toBeInstanceOf(MalformedEnvelopeError)
    expect(error.message).toContain('not the canonical DAG-CBOR encoding')
    // A trailing byte after the envelope.
    expect(catchError(() => decodeEnvelope(concat([encodeEnvelope(env), Uint8Array.of(0)])))).toBeInstanceOf(
      MalformedEnvelopeError,
    )
  })

  it('rejects a wire form that carries an id', () => {
    const env = fc.sample(arbEnvelope('YIELD'), { numRuns: 1, seed: 3 })[0]!
    const error = catchError(() => decodeEnvelope(dagCbor.encode({ ...withoutId(env), id: env.id })))
    expect(error).toBeInstanceOf(MalformedEnvelopeError)
    expect(error.field).toBe('id')
  })

  it('never throws anything but a CanSwarmError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeEnvelope(bytes)
        } catch (error) {
          expect(error).toBeInstanceOf(CanSwarmError)
        }
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          decodeEnvelope(dagCbor.encode(value))
        } catch (error) {
          expect(error).toBeInstanceOf(CanSwarmError)
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('threadIdOf (A1)', () => {
  const arbNeed = arbEnvelope('NEED') as fc.Arbitrary<Envelope<'NEED'>>

  it('is a dag-cbor CID that ignores the thread and payload.need fields it is written into', () => {
    fc.assert(
      fc.property(arbNeed, fc.string({ maxLength: 20 }), (need, other) => {
        const id = threadIdOf(need)
        expect(id).toMatch(/^bafyrei[a-z2-7]{52}$/)
        expect(threadIdOf({ ...need, thread: other, payload: { ...need.payload, need: other } })).toBe(id)
        // The same NEED, filled in with its own id, keeps it.
        expect(threadIdOf({ ...need, thread: id, payload: { ...need.payload, need: id } })).toBe(id)
      }),
      { numRuns: 50 },
    )
  })

  it('changes with every other signed field: sender, ts, net, lamport, epoch and each payload leaf', () => {
    fc.assert(
      fc.property(
        arbNeed.chain((need) => {
          const { id: _id, sig: _sig, thread: _thread, ...fields } = need
          const { need: _need, ...payload } = fields.payload
          const paths = leafPaths({ ...fields, payload }).filter((path) => path.length > 0)
          return fc.tuple(fc.constant(need), fc.constantFrom(...paths))
        }),
        ([need, path]) => {
          const mutated = mutateLeaf(need, path)
          expect(threadIdOf(mutated)).not.toBe(threadIdOf(need))
        },
      ),
      { numRuns: 200 },
    )
  })

  it('differs from the NEED envelope id (the id covers the signature, the thread id does not)', () => {
    fc.assert(
      fc.property(arbNeed, (need) => {
        expect(threadIdOf(need)).not.toBe(need.id)
        const resigned: Envelope<'NEED'> = { ...need, sig: need.sig.map((byte) => byte ^ 1) }
        expect(threadIdOf(resigned)).toBe(threadIdOf(need))
      }),
      { numRuns: 20 },
    )
  })
})

describe('envelopeToJson / envelopeFromJson', () => {
  it.each(KINDS)('round-trips arbitrary %s envelopes', (kind) => {
    fc.assert(
      fc.property(arbEnvelope(kind), (env) => {
        const text = envelopeToJson(env)
        expect(envelopeFromJson(text)).toEqual(env)
        expect(envelopeToJson(envelopeFromJson(text))).toBe(text)
      }),
      { numRuns: 25 },
    )
  })

  it('writes bytes as {"/":{"bytes":…}} with sorted keys', () => {
    const env = fc.sample(arbEnvelope('HEARTBEAT'), { numRuns: 1, seed: 11 })[0]!
    const text = envelopeToJson(env)
    expect(text).toContain('"sig":{"/":{"bytes":"')
    const keys = Object.keys(JSON.parse(text))
    expect(keys).toEqual([...keys].sort())
  })

  it('accepts text without an id and computes it', () => {
    const env = fc.sample(arbEnvelope('NEED'), { numRuns: 1, seed: 5 })[0]!
    const parsed = JSON.parse(envelopeToJson(env))
    delete parsed.id
    expect(envelopeFromJson(JSON.stringify(parsed)).id).toBe(env.id)
  })

  it('rejects a tampered payload that keeps its old id with WrongIdError', () => {
    const env = fc.sample(arbEnvelope('CLAIM'), { numRuns: 1, seed: 9 })[0] as AnyEnvelope & { kind: 'CLAIM' }
    const parsed = JSON.parse(envelopeToJson(env))
    parsed.payload.cost += 1
    const error = catchError(() => envelopeFromJson(JSON.stringify(parsed)))
    expect(error).toBeInstanceOf(WrongIdError)
    expect(error.field).toBe('id')
    expect((error as WrongIdError).actual).toBe(env.id)
  })

  it('rejects text that is not dag-json, and oversized text', () => {
    expect(catchError(() => envelopeFromJson('{"v":'))).toBeInstanceOf(MalformedEnvelopeError)
    expect(catchError(() => envelopeFromJson('"just a string"'))).toBeInstanceOf(MalformedEnvelopeError)
    expect(catchError(() => envelopeFromJson(' '.repeat(3 * MAX_ENVELOPE_BYTES + 1)))).toBeInstanceOf(
      OversizedEnvelopeError,
    )
  })

  it('refuses text over its structure budget before parsing it, in linear time (found by the fuzzer)', () => {
    // The reference dag-json decoder took ~40 MB of heap and ~0.3 s for a megabyte of `1,` or a
    // 3 MB string; these are refused or read in a few milliseconds now.
    const numbers = `[${'1,'.repeat(1_000_000)}1]`
    const tooMany = catchError(() => envelopeFromJson(numbers))
    expect(tooMany).toBeInstanceOf(MalformedEnvelopeError)
    expect(tooMany.message).toMatch(/more than 100000 values/)
    const keys = `{${Array.from({ length: 20_000 }, (_, i) => `"k${i}":0`).join(',')}}`
    expect(catchError(() => envelopeFromJson(keys)).message).toMatch(/more than 16384 object keys/)
    expect(catchError(() => envelopeFromJson(`${'['.repeat(30)}${']'.repeat(30)}`)).message).toMatch(
      /nesting deeper than 24/,
    )
    const started = performance.now()
    const long = JSON.stringify({ v: 1, payload: 'x'.repeat(3 * 1024 * 1024) })
    expect(catchError(() => envelopeFromJson(long))).toBeInstanceOf(CanSwarmError)
    expect(performance.now() - started).toBeLessThan(1000)
  })

  it('reads dag-json as the reference decoder does, and refuses what it refuses', () => {
    const env = fc.sample(arbEnvelope('COMMIT'), { numRuns: 1, seed: 3 })[0]!
    const text = envelopeToJson(env)
    expect(envelopeFromJson(text)).toEqual(dagJson.decode(new TextEncoder().encode(text)))
    const parsed = JSON.parse(text)
    const duplicate = text.replace('{', `{"kind":${JSON.stringify(parsed.kind)},`)
    expect(catchError(() => envelopeFromJson(duplicate)).message).toMatch(/repeats a key/)
    expect(() => dagJson.decode(new TextEncoder().encode(duplicate))).toThrow()
    const badBytes = text.replace('"sig":{"/":{"bytes":"', '"sig":{"/":{"bytes":"!')
    expect(catchError(() => envelopeFromJson(badBytes))).toBeInstanceOf(MalformedEnvelopeError)
    const infinite = text.replace(/"lamport":\d+/, '"lamport":1e999')
    expect(catchError(() => envelopeFromJson(infinite))).toBeInstanceOf(MalformedEnvelopeError)
  })
})

describe('compareEnvelopes', () => {
  const arbKey = fc.record({
    lamport: fc.integer({ min: 1, max: 4 }),
    sender: fc.constantFrom('did:key:z6MkA', 'did:key:z6Mka', 'did:key:z6MkB'),
    id: fc.constantFrom('bafy1', 'bafy2', 'bafyZ'),
  })
  const sign = (n: number) => Math.sign(n) + 0

  it('is antisymmetric and reflexive', () => {
    fc.assert(
      fc.property(arbKey, arbKey, (a, b) => {
        expect(sign(compareEnvelopes(a, b)) + sign(compareEnvelopes(b, a))).toBe(0)
        expect(compareEnvelopes(a, a)).toBe(0)
        if (compareEnvelopes(a, b) === 0) expect(a).toEqual(b)
      }),
    )
  })

  it('is transitive', () => {
    fc.assert(
      fc.property(arbKey, arbKey, arbKey, (a, b, c) => {
        if (compareEnvelopes(a, b) <= 0 && compareEnvelopes(b, c) <= 0) {
          expect(compareEnvelopes(a, c)).toBeLessThanOrEqual(0)
        }
      }),
      { numRuns: 500 },
    )
  })

  it('orders by lamport, then sender, then id, by code units (not locale)', () => {
    const base = { lamport: 2, sender: 'did:key:z6Mka', id: 'bafyb' }
    expect(compareEnvelopes({ ...base, lamport: 1, sender: 'did:key:z6Mkz' }, base)).toBeLessThan(0)
    expect(compareEnvelopes({ ...base, sender: 'did:key:z6MkZ' }, base)).toBeLessThan(0) // 'Z' < 'a'
    expect(compareEnvelopes({ ...base, id: 'bafya' }, base)).toBeLessThan(0)
    expect(compareEnvelopes({ ...base, lamport: 10 }, { ...base, lamport: 9 })).toBeGreaterThan(0)
  })

  it('sorts every permutation of a set to the same order', () => {
    fc.assert(
      fc.property(fc.uniqueArray(arbKey, { selector: (k) => `${k.lamport}|${k.sender}|${k.id}` }), (keys) => {
        const sorted = [...keys].sort(compareEnvelopes)
        expect([...keys].reverse().sort(compareEnvelopes)).toEqual(sorted)
      }),
    )
  })
})

describe('hashes and canonical encoding', () => {
  it('sha256Hex matches the FIPS 180-2 vector', () => {
    expect(sha256Hex(new TextEncoder().encode('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    )
  })

  it('hashCanonical ignores key order and sees every value change', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(hashCanonical(reverseKeys(value))).toBe(hashCanonical(value))
      }),
    )
    expect(hashCanonical({ a: 1 })).not.toBe(hashCanonical({ a: 2 }))
    expect(hashCanonical({ a: 1 })).toMatch(/^[0-9a-f]{64}$/)
  })

  it('encodeCanonical refuses what DAG-CBOR cannot hold, with a typed error', () => {
    for (const value of [undefined, { a: undefined }, Number.NaN, 1 / 0, () => 1]) {
      const error = catchError(() => encodeCanonical(value))
      expect(error).toBeInstanceOf(InvalidArgumentError)
      expect(error.field).toBe('value')
    }
    expect(encodeCanonical(-0)).toEqual(encodeCanonical(0))
  })
})

describe('did:key', () => {
  it('round-trips public keys', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (publicKey) => {
        const did = didFromPublicKey(publicKey)
        expect(did).toMatch(/^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]{44}$/)
        expect(publicKeyFromDid(did)).toEqual(publicKey)
      }),
    )
  })

  it('rejects what is not the did:key of an Ed25519 key', () => {
    const secp256k1 = 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme'
    for (const bad of ['', 'did:web:example.com', 'did:key:z6Mk0OIl', secp256k1, 'did:key:z6Mk', 42]) {
      const error = catchError(() => publicKeyFromDid(bad as string))
      expect(error).toBeInstanceOf(InvalidArgumentError)
      expect(error.field).toBe('did')
    }
    expect(catchError(() => didFromPublicKey(new Uint8Array(31))).field).toBe('publicKey')
  })

  it('arbitraries produce valid dids and CIDs', () => {
    fc.assert(
      fc.property(arbDid, arbCid, (did, cid) => did.startsWith('did:key:z6Mk') && cid.startsWith('b')),
    )
  })
})

describe('LamportClock', () => {
  it('ticks local + 1 on send and takes the max on receive', () => {
    const clock = new LamportClock()
    expect(clock.value).toBe(0)
    expect(clock.tick()).toBe(1)
    expect(clock.tick()).toBe(2)
    clock.observe(10)
    expect(clock.value).toBe(10)
    clock.observe(3)
    expect(clock.value).toBe(10)
    expect(clock.tick()).toBe(11)
  })

  it('a sent lamport is above every lamport observed before (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant('tick' as const), fc.nat(1_000_000))), (steps) => {
        const clock = new LamportClock()
        let highest = 0
        for (const step of steps) {
          if (step === 'tick') {
            const sent = clock.tick()
            expect(sent).toBe(highest + 1)
            highest = sent
          } else {
            clock.observe(step)
            highest = Math.max(highest, step)
            expect(clock.value).toBe(highest)
          }
        }
      }),
    )
  })

  it('stops loudly at Number.MAX_SAFE_INTEGER and refuses bad input', () => {
    const clock = new LamportClock(Number.MAX_SAFE_INTEGER - 1)
    expect(clock.tick()).toBe(Number.MAX_SAFE_INTEGER)
    expect(() => clock.tick()).toThrow(InvariantError)
    expect(() => new LamportClock().observe(Number.MAX_SAFE_INTEGER + 2)).toThrow(InvariantError)
    for (const bad of [-1, 1.5, Number.NaN, '3' as unknown as number]) {
      expect(catchError(() => new LamportClock().observe(bad)).field).toBe('remote')
    }
    expect(catchError(() => new LamportClock(-1)).field).toBe('initial')
  })
})

function catchError(body: () => unknown): CanSwarmError {
  try {
    body()
  } catch (error) {
    if (error instanceof CanSwarmError) return error
    throw new Error(`expected a CanSwarmError, got ${String(error)}`)
  }
  throw new Error('expected an error, none was thrown')
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}
