import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { TEST_NET, testParams } from '../../../test-support/envelopes.ts'
import { computeEnvelopeId, decodeEnvelope, encodeEnvelope, signingBytes } from '../src/core/codec.ts'
import {
  BadSignatureError,
  CanSwarmError,
  InvalidArgumentError,
  OversizedEnvelopeError,
  SchemaViolationError,
  WrongIdError,
} from '../src/core/errors.ts'
import { genesisBody, genesisFromJson, genesisToJson, paramsFromGenesis } from '../src/core/genesis.ts'
import { LIMITS } from '../src/core/schemas.ts'
import { poolSnapshotOf } from '../src/core/thread/params.ts'
import {
  type AnyEnvelope,
  type Envelope,
  KINDS,
  type PayloadByKind,
  type UnsignedEnvelope,
} from '../src/core/types.ts'
import {
  type CryptoBackend,
  createIdentity,
  detectBackend,
  type Identity,
  publicKeyFromDid,
  verifySignature,
} from '../src/crypto/ed25519.ts'
import { signEnvelope, verifyEnvelope, verifyEnvelopes } from '../src/crypto/envelopes.ts'
import { addGenesisSignature, signGenesis, verifyGenesis } from '../src/crypto/genesis.ts'
import { signGrant, verifyGrant } from '../src/crypto/grants.ts'
import { arbEnvelopeUnsigned } from './arbitraries.ts'

/** An envelope id standing for the PROPOSE that embedded plan votes name. */
const PROPOSAL = 'bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
/** The id of a network other than {@link TEST_NET}. */
const OTHER_NET = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

const BACKENDS: CryptoBackend[] = ['webcrypto', 'noble']
const hex = (text: string) => ed.etc.hexToBytes(text)

function seed(tag: number): Uint8Array {
  return new Uint8Array(32).fill(tag)
}

async function rejection(promise: Promise<unknown>): Promise<CanSwarmError> {
  try {
    await promise
  } catch (error) {
    if (error instanceof CanSwarmError) return error
    throw new Error(`expected a CanSwarmError, got ${String(error)}`, { cause: error })
  }
  throw new Error('expected a rejection, the promise resolved')
}

/** Re-attaches the correct id to an envelope whose fields were edited. */
function reId<T extends Envelope>(env: T): T {
  const { id: _id, ...signed } = env
  return { ...signed, id: computeEnvelopeId(signed) } as T
}

const alice = await createIdentity({ seed: seed(1) })
const bob = await createIdentity({ seed: seed(2) })
const carol = await createIdentity({ seed: seed(3), backend: 'noble' })

/** A valid unsigned envelope of `kind` from `sender`. */
function unsignedOf<K extends (typeof KINDS)[number]>(
  kind: K,
  sender: Identity,
  runSeed = 1,
): UnsignedEnvelope<K> {
  return fc.sample(arbEnvelopeUnsigned(kind, { sender: sender.did }), { numRuns: 1, seed: runSeed })[0]!
}

/**
 * The arbitraries embed attestations with random signatures: replace them (in DECIDE and
 * FINALIZE) by the same attestations really signed by alice, bob and carol in turn.
 */
async function withSignedAttestations<K extends (typeof KINDS)[number]>(
  unsigned: UnsignedEnvelope<K>,
): Promise<UnsignedEnvelope<K>> {
  if (unsigned.kind !== 'DECIDE' && unsigned.kind !== 'FINALIZE') return unsigned
  const payload = unsigned.payload as PayloadByKind['DECIDE' | 'FINALIZE']
  const attestations = await Promise.all(
    payload.attestations.map((attestation, index) => {
      const voter = [alice, bob, carol][index % 3]!
      return signEnvelope({ ...attestation, sender: voter.did }, voter)
    }),
  )
  return { ...unsigned, payload: { ...payload, attestations } } as UnsignedEnvelope<K>
}

describe('identities', () => {
  it('runs on WebCrypto in Node 24', async () => {
    expect(await detectBackend()).toBe('webcrypto')
    expect(alice.backend).toBe('webcrypto')
    expect(carol.backend).toBe('noble')
  })

  it.each(BACKENDS)('%s reproduces the RFC 8032 §7.1 test vectors', async (backend) => {
    const vectors = [
      {
        seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
        publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
        message: '',
        signature:
          'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
      },
      {
        seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
        publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
        message: '72',
        signature:
          '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
      },
    ]
    for (const vector of vectors) {
      const identity = await createIdentity({ seed: hex(vector.seed), backend })
      expect(identity.publicKey).toEqual(hex(vector.publicKey))
      expect(await identity.sign(hex(vector.message))).toEqual(hex(vector.signature))
      expect(
        await verifySignature(identity.publicKey, hex(vector.message), hex(vector.signature), backend),
      ).toBe(true)
    }
  })

  it('derives the same did from the same seed, a different one from another seed', async () => {
    const again = await createIdentity({ seed: seed(1), backend: 'noble' })
    expect(again.did).toBe(alice.did)
    expect(alice.did).toMatch(/^did:key:z6Mk/)
    expect(publicKeyFromDid(alice.did)).toEqual(alice.publicKey)
    expect(bob.did).not.toBe(alice.did)
  })

  it('makes random identities when no seed is given, and hands their seed back', async () => {
    const [one, two] = await Promise.all([createIdentity(), createIdentity()])
    expect(one.did).not.toBe(two.did)
    const restored = await createIdentity({ seed: one.seed })
    expect(restored.did).toBe(one.did)
  })

  it('keeps the seed out of JSON and out of reach of mutation', () => {
    expect(JSON.stringify(alice)).not.toContain('seed')
    expect(Object.keys(alice)).not.toContain('seed')
    const copy = alice.seed
    copy.fill(0)
    expect(alice.seed).toEqual(seed(1))
  })

  it('refuses seeds that are not 32 bytes', async () => {
    for (const bad of [new Uint8Array(31), new Uint8Array(33), 'seed' as unknown as Uint8Array]) {
      const error = await rejection(createIdentity({ seed: bad }))
      expect(error).toBeInstanceOf(InvalidArgumentError)
      expect(error.field).toBe('seed')
    }
    expect((await rejection(createIdentity({ backend: 'rsa' as CryptoBackend }))).field).toBe('backend')
  })
})

describe('webcrypto and noble agree', () => {
  it('give identical signatures from the same seed, each verifying the other', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 300 }),
        async (secret, message) => {
          const web = await createIdentity({ seed: secret, backend: 'webcrypto' })
          const noble = await createIdentity({ seed: secret, backend: 'noble' })
          expect(web.did).toBe(noble.did)
          const webSig = await web.sign(message)
          const nobleSig = await noble.sign(message)
          expect(webSig).toEqual(nobleSig)
          expect(await verifySignature(web.publicKey, message, nobleSig, 'webcrypto')).toBe(true)
          expect(await verifySignature(noble.publicKey, message, webSig, 'noble')).toBe(true)
        },
      ),
      { numRuns: 40 },
    )
  })

  it('reject the same corrupted signatures and garbage keys', async () => {
    const message = new Uint8Array([1, 2, 3])
    const good = await alice.sign(message)
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({
            publicKey: fc.constant(alice.publicKey),
            sig: fc.uint8Array({ minLength: 64, maxLength: 64 }),
          }),
          fc.record({ publicKey: fc.uint8Array({ minLength: 32, maxLength: 32 }), sig: fc.constant(good) }),
          fc.tuple(fc.nat(63), fc.integer({ min: 1, max: 255 })).map(([index, flip]) => {
            const sig = good.slice()
            sig[index]! ^= flip
            return { publicKey: alice.publicKey, sig }
          }),
        ),
        async ({ publicKey, sig }) => {
          const [web, noble] = await Promise.all(
            BACKENDS.map((b) => verifySignature(publicKey, message, sig, b)),
          )
          expect(web).toBe(noble)
          expect(web).toBe(false)
        },
      ),
      { numRuns: 200 },
    )
  })

  describe('on crafted signatures where cofactored and cofactorless Ed25519 differ', () => {
    ed.hashes.sha512 ??= sha512
    const L = ed.Point.CURVE().n
    const toNumber = (bytes: Uint8Array) =>
      bytes.reduceRight((value, byte) => (value << 8n) | BigInt(byte), 0n)
    const toBytes = (value: bigint) =>
      Uint8Array.from({ length: 32 }, (_, i) => Number((value >> BigInt(8 * i)) & 255n))
    /** A point of order 8. */
    const torsion = ed.Point.fromHex('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05')
    const message = new Uint8Array([4, 5, 6])
    const { scalar, pointBytes } = ed.utils.getExtendedPublicKey(seed(9))
    const challenge = (r: Uint8Array, a: Uint8Array) =>
      ed.etc.mod(toNumber(sha512(ed.etc.concatBytes(r, a, message))), L)

    it('both reject R with a torsion component (noble alone would accept it)', async () => {
      expect(torsion.isSmallOrder() && !torsion.is0()).toBe(true)
      const r = 987654321n
      const R = ed.Point.BASE.multiply(r).add(torsion).toBytes()
      const s = ed.etc.mod(r + challenge(R, pointBytes) * scalar, L)
      const sig = ed.etc.concatBytes(R, toBytes(s))
      expect(ed.verify(sig, message, pointBytes)).toBe(true) // the divergence being guarded against
      for (const backend of BACKENDS)
        expect(await verifySignature(pointBytes, message, sig, backend)).toBe(false)
    })

    it('both reject a mixed-order key whose signature only holds cofactored', async () => {
      const mixed = ed.Point.fromBytes(pointBytes).add(torsion).toBytes()
      let checked = 0
      for (let r = 1000n; checked < 4; r++) {
        const R = ed.Point.BASE.multiply(r).toBytes()
        const k = challenge(R, mixed)
        if (k % 8n === 0n) continue
        const sig = ed.etc.concatBytes(R, toBytes(ed.etc.mod(r + k * scalar, L)))
        expect(ed.verify(sig, message, mixed)).toBe(true)
        for (const backend of BACKENDS)
          expect(await verifySignature(mixed, message, sig, backend)).toBe(false)
        checked++
      }
    })

    it('both reject every small-order public key', async () => {
      const points = [0, 1, 2, 3, 4, 5, 6, 7].map((i) =>
        i === 0 ? ed.Point.ZERO : torsion.multiply(BigInt(i)),
      )
      for (const point of points) {
        const publicKey = point.toBytes()
        const sig = ed.etc.concatBytes(ed.Point.BASE.toBytes(), toBytes(1n))
        for (const backend of BACKENDS)
          expect(await verifySignature(publicKey, message, sig, backend)).toBe(false)
      }
    })

    it('both reject S ≥ L', async () => {
      const sig = await alice.sign(message)
      const high = ed.etc.concatBytes(sig.subarray(0, 32), toBytes(toNumber(sig.subarray(32)) + L))
      for (const backend of BACKENDS) {
        expect(await verifySignature(alice.publicKey, message, sig, backend)).toBe(true)
        expect(await verifySignature(alice.publicKey, message, high, backend)).toBe(false)
      }
    })
  })

  it('verifySignature never throws on bad input, it returns false', async () => {
    const message = new Uint8Array([1])
    const sig = await alice.sign(message)
    const cases: [unknown, unknown, unknown][] = [
      [alice.publicKey.subarray(1), message, sig],
      [alice.publicKey, message, sig.subarray(1)],
      ['key', message, sig],
      [alice.publicKey, 'message', sig],
      [alice.publicKey, message, null],
      [new Uint8Array(32).fill(255), message, sig],
    ]
    for (const backend of BACKENDS) {
      for (const [publicKey, msg, signature] of cases) {
        expect(
          await verifySignature(publicKey as Uint8Array, msg as Uint8Array, signature as Uint8Array, backend),
        ).toBe(false)
      }
    }
  })
})

describe('signEnvelope / verifyEnvelope', () => {
  it.each(KINDS)('%s: arbitrary envelopes sign, verify, and survive the wire', async (kind) => {
    await fc.assert(
      fc.asyncProperty(arbEnvelopeUnsigned(kind, { sender: alice.did }), async (arbitrary) => {
        const unsigned = await withSignedAttestations(arbitrary)
        const env = await signEnvelope(unsigned, alice)
        expect(env.id).toBe(computeEnvelopeId(env))
        await verifyEnvelope(env)
        await verifyEnvelope(env, { backend: 'noble' })
        const received = decodeEnvelope(encodeEnvelope(env))
        expect(received).toEqual(env)
        await verifyEnvelope(received)
      }),
      { numRuns: 8 },
    )
  })

  it('signs the same unsigned envelope to the same envelope on both backends', async () => {
    const unsigned = unsignedOf('CLAIM', carol)
    const viaNoble = await signEnvelope(unsigned, carol)
    const viaWeb = await signEnvelope(unsigned, await createIdentity({ seed: seed(3), backend: 'webcrypto' }))
    expect(viaWeb).toEqual(viaNoble)
  })

  it('refuses to sign for another sender', async () => {
    const error = await rejection(signEnvelope(unsignedOf('NEED', alice), bob))
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect(error.field).toBe('sender')
  })

  it('validates before signing: an invalid payload is never signed', async () => {
    let signed = 0
    const counting: Identity = {
      did: alice.did,
      publicKey: alice.publicKey,
      sign: async (message) => {
        signed++
        return alice.sign(message)
      },
    }
    const unsigned = unsignedOf('NEED', alice) as UnsignedEnvelope<'NEED'>
    const error = await rejection(
      signEnvelope({ ...unsigned, payload: { ...unsigned.payload, budget: -1 } }, counting),
    )
    expect(error).toBeInstanceOf(SchemaViolationError)
    expect(error.field).toBe('payload.budget')
    expect(signed).toBe(0)
    await signEnvelope(unsigned, counting)
    expect(signed).toBe(1)
  })

  it('refuses an oversized payload before signing', async () => {
    const unsigned = unsignedOf('UPDATE_PLAN', alice) as UnsignedEnvelope<'UPDATE_PLAN'>
    const value = 'v'.repeat(LIMITS.maxTextChars)
    const ops = Array.from({ length: LIMITS.maxListEntries }, (_, i) => ({
      op: 'ANNOTATE' as const,
      task: `t${i}`,
      key: 'k',
      value,
    }))
    const error = await rejection(signEnvelope({ ...unsigned, payload: { ops } }, alice))
    expect(error).toBeInstanceOf(OversizedEnvelopeError)
    expect(error.field).toBe('payload')
  })

  it('signs a signed envelope again, ignoring its old sig and id', async () => {
    const env = await signEnvelope(unsignedOf('YIELD', alice), alice)
    const again = await signEnvelope({ ...env, lamport: env.lamport + 1 }, alice)
    expect(again.id).not.toBe(env.id)
    await verifyEnvelope(again)
  })

  it('a tampered payload that keeps its id fails with WrongIdError', async () => {
    const env = (await signEnvelope(unsignedOf('CLAIM', alice), alice)) as Envelope<'CLAIM'>
    const tampered = { ...env, payload: { ...env.payload, cost: env.payload.cost + 1 } }
    const error = await rejection(verifyEnvelope(tampered))
    expect(error).toBeInstanceOf(WrongIdError)
    expect(error.field).toBe('id')
  })

  it('a tampered payload with a recomputed id fails with BadSignatureError', async () => {
    const env = (await signEnvelope(unsignedOf('CLAIM', alice), alice)) as Envelope<'CLAIM'>
    const tampered = reId({ ...env, payload: { ...env.payload, cost: env.payload.cost + 1 } })
    const error = await rejection(verifyEnvelope(tampered))
    expect(error).toBeInstanceOf(BadSignatureError)
    expect(error.field).toBe('sig')
  })

  it('a signature by the wrong key fails with BadSignatureError on both backends', async () => {
    const env = await signEnvelope(unsignedOf('COMMIT', alice), alice)
    const wrongSigner = reId({ ...env, sig: await bob.sign(signingBytes(env)) })
    for (const backend of BACKENDS) {
      const error = await rejection(verifyEnvelope(wrongSigner, { backend }))
      expect(error).toBeInstanceOf(BadSignatureError)
      expect(error.field).toBe('sig')
    }
  })

  it('a forged sender fails with BadSignatureError', async () => {
    const env = await signEnvelope(unsignedOf('ATTEST', bob), bob)
    const forged = reId({ ...env, sender: alice.did })
    const error = await rejection(verifyEnvelope(forged))
    expect(error).toBeInstanceOf(BadSignatureError)
    // A sender that is no Ed25519 key at all is named as the culprit.
    const noKey = reId({ ...env, sender: 'did:key:z6Mk' })
    expect((await rejection(verifyEnvelope(noKey))).field).toBe('sender')
  })

  it('a signature is bound to its network: the same envelope moved to another net does not verify', async () => {
    const env = await signEnvelope(unsignedOf('CLAIM', alice), alice)
    const moved = reId({ ...env, net: env.net === OTHER_NET ? TEST_NET : OTHER_NET })
    expect(moved.id).not.toBe(env.id)
    const error = await rejection(verifyEnvelope(moved))
    expect(error).toBeInstanceOf(BadSignatureError)
    expect(error.field).toBe('sig')
  })

  describe('embedded attestations', () => {
    /** A DECIDE whose ATTEST_PLAN attestations are really signed; `edit` may spoil some before the DECIDE is signed. */
    async function decide(
      edit: (attestations: Envelope[]) => Envelope[] = (a) => a,
    ): Promise<Envelope<'DECIDE'>> {
      const thread = 'need-embedded'
      const base = {
        v: 2 as const,
        net: TEST_NET,
        thread,
        lamport: 5,
        ts: 0,
        refs: [],
        policy: 'p',
        epoch: 0,
      }
      const attestations: Envelope[] = []
      for (const voter of [alice, bob, carol]) {
        attestations.push(
          await signEnvelope(
            {
              ...base,
              kind: 'ATTEST_PLAN',
              sender: voter.did,
              payload: { need: thread, proposal: PROPOSAL, verdict: 'accept' },
            },
            voter,
          ),
        )
      }
      return signEnvelope(
        {
          ...base,
          kind: 'DECIDE',
          sender: alice.did,
          payload: {
            need: thread,
            proposal: PROPOSAL,
            epoch: 0,
            lamport: 5,
            kPlan: 3,
            decider: alice.did,
            attestations: edit(attestations),
            pool: poolSnapshotOf(testParams({ verifiers: [alice.did, bob.did, carol.did] })),
          },
        },
        alice,
      )
    }

    it('a DECIDE with properly signed attestations verifies', async () => {
      await verifyEnvelope(await decide())
      await verifyEnvelope(await decide(), { backend: 'noble' })
    })

    it('an attestation with a bad signature is named by its index', async () => {
      const env = await decide((list) => {
        const sig = list[1]!.sig.slice()
        sig[0]! ^= 1
        return [list[0]!, reId({ ...list[1]!, sig }), list[2]!]
      })
      const error = await rejection(verifyEnvelope(env))
      expect(error).toBeInstanceOf(BadSignatureError)
      expect(error.field).toBe('payload.attestations.1.sig')
    })

    it('an attestation with a wrong id is named by its index', async () => {
      const env = await decide((list) => [list[0]!, list[1]!, { ...list[2]!, id: list[0]!.id }])
      const error = await rejection(verifyEnvelope(env))
      expect(error).toBeInstanceOf(WrongIdError)
      expect(error.field).toBe('payload.attestations.2.id')
    })

    it('a FINALIZE verifies its ATTEST envelopes too', async () => {
      const thread = 'need-final'
      const commit = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
      const base = {
        v: 2 as const,
        net: TEST_NET,
        thread,
        lamport: 9,
        ts: 0,
        refs: [],
        policy: 'p',
        epoch: 0,
      }
      const attest = await signEnvelope(
        {
          ...base,
          kind: 'ATTEST',
          sender: bob.did,
          payload: { task: 't', commit, verdict: 'pass', evalDigest: 'd' },
        },
        bob,
      )
      const forgedAttest = reId({ ...attest, sender: carol.did })
      const finalize = await signEnvelope(
        {
          ...base,
          kind: 'FINALIZE',
          sender: alice.did,
          payload: { task: 't', commit, attestations: [attest, forgedAttest] },
        },
        alice,
      )
      const error = await rejection(verifyEnvelope(finalize))
      expect(error).toBeInstanceOf(BadSignatureError)
      expect(error.field).toBe('payload.attestations.1.sig')
    })
  })
})

describe('verifyEnvelopes', () => {
  async function batch(): Promise<{ envs: AnyEnvelope[]; expected: (string | undefined)[] }> {
    const envs: AnyEnvelope[] = []
    const expected: (string | undefined)[] = []
    for (let i = 0; i < 120; i++) {
      const signer = [alice, bob, carol][i % 3]!
      const unsigned = await withSignedAttestations(unsignedOf(KINDS[i % KINDS.length]!, signer, i))
      const env = (await signEnvelope(unsigned, signer)) as AnyEnvelope
      if (i % 7 === 3) {
        envs.push({ ...env, lamport: env.lamport + 1 } as AnyEnvelope)
        expected.push('WRONG_ID')
      } else if (i % 11 === 5) {
        envs.push(reId({ ...env, sig: new Uint8Array(64) }) as AnyEnvelope)
        expected.push('BAD_SIGNATURE')
      } else {
        envs.push(env)
        expected.push(undefined)
      }
    }
    return { envs, expected }
  }

  it('returns one result per envelope, in input order, whatever the concurrency', async () => {
    const { envs, expected } = await batch()
    for (const options of [
      {},
      { concurrency: 1 },
      { concurrency: 7 },
      { concurrency: 500, backend: 'noble' as const },
    ]) {
      const results = await verifyEnvelopes(envs, options)
      expect(results.map((error) => error?.code)).toEqual(expected)
    }
    expect(await verifyEnvelopes([])).toEqual([])
  })

  it('refuses a bad concurrency and honours an aborted signal', async () => {
    const { envs } = await batch()
    for (const concurrency of [0, -1, 1.5, 5000]) {
      expect((await rejection(verifyEnvelopes(envs, { concurrency }))).field).toBe('concurrency')
    }
    const controller = new AbortController()
    controller.abort(new Error('stop'))
    await expect(verifyEnvelopes(envs, { signal: controller.signal })).rejects.toThrow('stop')
  })
})

describe('network genesis', () => {
  const body = () =>
    genesisBody({
      name: 'test',
      createdMs: 1_000,
      anchors: [bob.did, alice.did],
      pool: { bootstrap: true, verifiers: [carol.did] },
      economy: { allocations: [{ did: carol.did, amount: 500 }] },
    })

  it('is signed by every anchor, verifies, and round-trips through its JSON', async () => {
    const genesis = await signGenesis(body(), [alice, bob])
    expect(genesis.body.anchors).toEqual([alice.did, bob.did].sort())
    expect(await verifyGenesis(genesis)).toEqual(genesis)
    const read = genesisFromJson(genesisToJson(genesis))
    expect(read).toEqual(genesis)
    await verifyGenesis(read)
    const params = paramsFromGenesis(read)
    expect(params).toMatchObject({
      network: genesis.id,
      bootstrap: true,
      poolEpoch: 0,
      poolSnapshotMs: 1_000,
    })
    expect(params.anchors).toEqual(genesis.body.anchors)
    expect(params.verifiers).toEqual([carol.did])
  })

  it('the network id is the hash of the body: any change makes another network', async () => {
    const genesis = await signGenesis(body(), [alice, bob])
    const other = await signGenesis(
      genesisBody({ ...body(), economy: { allocations: [{ did: carol.did, amount: 501 }] } }),
      [alice, bob],
    )
    expect(other.id).not.toBe(genesis.id)
    // A body edited under the old id is refused, in JSON and when verified.
    const edited = { ...genesis, body: { ...genesis.body, name: 'edited' } }
    expect((await rejection(verifyGenesis(edited))).field).toBe('id')
    const text = genesisToJson(genesis).replace('"name":"test"', '"name":"edited"')
    expect(() => genesisFromJson(text)).toThrow(/not the hash of its body/)
    // The anchors' signatures of one network do not carry over to another.
    const carried = { ...other, signatures: genesis.signatures }
    expect(await rejection(verifyGenesis(carried))).toBeInstanceOf(BadSignatureError)
  })

  it('reads its JSON within a structure budget (found by the fuzzer: 400 KB of text took 18 MB of heap)', async () => {
    const genesis = await signGenesis(body(), [alice, bob])
    const text = genesisToJson(genesis)
    const bloated = text.replace('"name":"test"', `"name":"test","pad":[${'0,'.repeat(300_000)}0]`)
    expect(() => genesisFromJson(bloated)).toThrow(/more than 200000 values/)
    const deep = text.replace('"name":"test"', `"name":"test","pad":${'['.repeat(9)}${']'.repeat(9)}`)
    expect(() => genesisFromJson(deep)).toThrow(/nesting deeper than 8/)
    expect(() => genesisFromJson(text.replace('{"body":{', '{"body":{"v":1,'))).toThrow(/repeats a key/)
  })

  it('needs a valid signature of every anchor and of nobody else', async () => {
    const partial = await signGenesis(body(), [alice])
    const missing = await rejection(verifyGenesis(partial))
    expect(missing).toBeInstanceOf(BadSignatureError)
    expect(missing.message).toContain(bob.did)
    const complete = await addGenesisSignature(partial, bob)
    await verifyGenesis(complete)
    expect(await rejection(addGenesisSignature(complete, carol))).toBeInstanceOf(InvalidArgumentError)
    const stranger = {
      ...complete,
      signatures: [...complete.signatures, { did: carol.did, sig: new Uint8Array(64) }],
    }
    expect((await rejection(verifyGenesis(stranger))).message).toContain('not an anchor')
    const swapped = {
      ...complete,
      signatures: complete.signatures.map((entry) => ({ did: entry.did, sig: complete.signatures[0]!.sig })),
    }
    expect(await rejection(verifyGenesis(swapped))).toBeInstanceOf(BadSignatureError)
  })
})

describe('faucet grants', () => {
  const network = { network: TEST_NET, anchors: [alice.did] }

  it('an anchor signs a grant of its network; it verifies after a trip through JSON', async () => {
    const grant = await signGrant(alice, { net: TEST_NET, to: carol.did, amount: 1000, atMs: 5 })
    expect(grant).toMatchObject({ v: 1, anchor: alice.did, to: carol.did, amount: 1000 })
    expect(await verifyGrant(JSON.parse(JSON.stringify(grant)), network)).toEqual(grant)
  })

  it('refuses a grant of another network, by a non-anchor, or edited after signing', async () => {
    const grant = await signGrant(alice, { net: TEST_NET, to: carol.did, amount: 1000, atMs: 5 })
    const foreign = await signGrant(alice, { net: OTHER_NET, to: carol.did, amount: 1000, atMs: 5 })
    expect((await rejection(verifyGrant(foreign, network))).field).toBe('net')
    const byBob = await signGrant(bob, { net: TEST_NET, to: bob.did, amount: 1000, atMs: 5 })
    const notAnchor = await rejection(verifyGrant(byBob, network))
    expect(notAnchor).toBeInstanceOf(BadSignatureError)
    expect(notAnchor.field).toBe('anchor')
    // Claiming an anchor signed it, or raising the amount, breaks the signature.
    expect((await rejection(verifyGrant({ ...byBob, anchor: alice.did }, network))).field).toBe('sig')
    expect((await rejection(verifyGrant({ ...grant, amount: 1001 }, network))).field).toBe('sig')
    expect(
      (await rejection(verifyGrant({ ...grant, net: OTHER_NET }, { ...network, network: OTHER_NET }))).field,
    ).toBe('sig')
    expect(await rejection(verifyGrant({ ...grant, amount: 0 }, network))).toBeInstanceOf(
      SchemaViolationError,
    )
    expect(await rejection(verifyGrant({ ...grant, extra: 1 }, network))).toBeInstanceOf(SchemaViolationError)
  })
})
