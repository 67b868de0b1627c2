import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { computeEnvelopeId, decodeEnvelope, encodeEnvelope, MAX_PAYLOAD_BYTES } from '../src/core/codec.ts'
import {
  CanSwarmError,
  MalformedEnvelopeError,
  OversizedEnvelopeError,
  SchemaViolationError,
  StaleEpochError,
  UnknownKindError,
  UnsupportedVersionError,
} from '../src/core/errors.ts'
import {
  checkEpoch,
  LIMITS,
  validateEnvelope,
  validatePayload,
  validateUnsignedEnvelope,
} from '../src/core/schemas.ts'
import {
  type AnyEnvelope,
  type Envelope,
  KINDS,
  type Kind,
  MAX_EPOCH,
  MAX_LAMPORT,
} from '../src/core/types.ts'
import { arbCid, arbDid, arbEnvelope, arbEnvelopeUnsigned } from './arbitraries.ts'

/** One valid envelope of `kind`, the same on every run. */
function sample(kind: Kind): AnyEnvelope {
  return fc.sample(arbEnvelope(kind), { numRuns: 1, seed: 42 })[0]!
}

// biome-ignore lint/suspicious/noExplicitAny: tests reach into payloads of every kind
type Loose = any

const CID = fc.sample(arbCid, { numRuns: 1, seed: 1 })[0]!
const SECP256K1_DID = 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme'
/** Two distinct Ed25519 did:keys in sorted order. */
const SORTED_DIDS = [...new Set(fc.sample(arbDid, { numRuns: 2, seed: 5 }))].sort()

/** A valid pool entry of `did`. */
function entryOf(did: string) {
  return {
    did,
    stake: 1,
    reputationPerMille: 500,
    lastActiveMs: 0,
    entity: did,
    org: 'o',
    asn: 'AS1',
    region: 'r',
  }
}

function catchError(body: () => unknown): CanSwarmError {
  try {
    body()
  } catch (error) {
    if (error instanceof CanSwarmError) return error
    throw new Error(`expected a CanSwarmError, got ${String(error)}`, { cause: error })
  }
  throw new Error('expected an error, none was thrown')
}

describe('validateEnvelope accepts valid envelopes', () => {
  it.each(KINDS)('%s: arbitrary valid envelopes validate to an equal copy', (kind) => {
    fc.assert(
      fc.property(arbEnvelope(kind), (env) => {
        const validated = validateEnvelope(env)
        expect(validated).toEqual(env)
        expect(validated).not.toBe(env)
      }),
      { numRuns: 40 },
    )
  })

  it('computes the id when the value carries none', () => {
    fc.assert(
      fc.property(arbEnvelope(), (env) => {
        const { id, ...rest } = env
        expect(validateEnvelope(rest).id).toBe(id)
      }),
      { numRuns: 30 },
    )
  })

  it('validateUnsignedEnvelope accepts arbitrary unsigned envelopes', () => {
    fc.assert(
      fc.property(arbEnvelopeUnsigned(), (unsigned) => {
        expect(validateUnsignedEnvelope(unsigned)).toEqual(unsigned)
      }),
      { numRuns: 200 },
    )
  })

  it('validatePayload accepts every kind of valid payload', () => {
    for (const kind of KINDS) {
      const env = sample(kind)
      expect(validatePayload(kind, env.payload)).toEqual(env.payload)
    }
  })
})

/** A case: which kind, how to break a valid envelope, the error class and field expected. */
type Case = [kind: Kind, what: string, mutate: (env: Loose) => void, field: string]

const payloadCases: Case[] = [
  ['NEED', 'negative budget', (e) => (e.payload.budget = -1), 'payload.budget'],
  ['NEED', 'need other than the thread', (e) => (e.payload.need = `${e.thread}-other`), 'payload.need'],
  ['NEED', 'input that is not a CID', (e) => (e.payload.inputs = ['not-a-cid']), 'payload.inputs.0'],
  ['NEED', 'fractional deadline', (e) => (e.payload.deadlineMs = 1.5), 'payload.deadlineMs'],
  ['NEED', 'epoch past MAX_EPOCH', (e) => (e.payload.epoch = MAX_EPOCH + 1), 'payload.epoch'],
  [
    'PROPOSE',
    'a proposal id of its own (A2: the envelope id names it)',
    (e) => (e.payload.proposal = 'p1'),
    'payload.proposal',
  ],
  ['PROPOSE', 'bad task name', (e) => (e.payload.patch[0].name = 'Bad Name'), 'payload.patch.0.name'],
  [
    'PROPOSE',
    'duplicate task names',
    (e) => (e.payload.patch = [e.payload.patch[0], { ...e.payload.patch[0] }]),
    'payload.patch.1.name',
  ],
  ['PROPOSE', 'empty patch', (e) => (e.payload.patch = []), 'payload.patch'],
  [
    'PROPOSE',
    'bad task input',
    (e) => (e.payload.patch[0].inputs = ['task:Bad']),
    'payload.patch.0.inputs.0',
  ],
  ['PROPOSE', 'price past MAX_SAFE_INTEGER', (e) => (e.payload.price = 2 ** 53), 'payload.price'],
  ['ATTEST_PLAN', 'unknown verdict', (e) => (e.payload.verdict = 'maybe'), 'payload.verdict'],
  [
    'ATTEST_PLAN',
    'proposal that is not an envelope id',
    (e) => (e.payload.proposal = 'p1'),
    'payload.proposal',
  ],
  ['DECIDE', 'proposal that is not an envelope id', (e) => (e.payload.proposal = 'p1'), 'payload.proposal'],
  ['DECIDE', 'epoch past MAX_EPOCH', (e) => (e.payload.epoch = MAX_EPOCH + 1), 'payload.epoch'],
  ['DECIDE', 'lamport past MAX_LAMPORT', (e) => (e.payload.lamport = MAX_LAMPORT + 1), 'payload.lamport'],
  ['DECIDE', 'no pool', (e) => delete e.payload.pool, 'payload.pool'],
  [
    'DECIDE',
    'pool verifiers out of order',
    (e) => (e.payload.pool = { ...e.payload.pool, verifiers: [SORTED_DIDS[1], SORTED_DIDS[0]], entries: [] }),
    'payload.pool.verifiers.1',
  ],
  [
    'DECIDE',
    'pool verifier twice',
    (e) => (e.payload.pool = { ...e.payload.pool, verifiers: [SORTED_DIDS[0], SORTED_DIDS[0]], entries: [] }),
    'payload.pool.verifiers.1',
  ],
  [
    'DECIDE',
    'pool entry of a non-verifier',
    (e) =>
      (e.payload.pool = {
        ...e.payload.pool,
        verifiers: [SORTED_DIDS[0]],
        entries: [entryOf(SORTED_DIDS[1]!)],
      }),
    'payload.pool.entries.0.did',
  ],
  [
    'DECIDE',
    'pool entry reputation over 1000‰',
    (e) =>
      (e.payload.pool = {
        ...e.payload.pool,
        verifiers: [SORTED_DIDS[0]],
        entries: [{ ...entryOf(SORTED_DIDS[0]!), reputationPerMille: 1001 }],
      }),
    'payload.pool.entries.0.reputationPerMille',
  ],
  [
    'DECIDE',
    'attestation of another network',
    (e) => (e.payload.attestations[0].net = CID),
    'payload.attestations.0.net',
  ],
  ['DECIDE', 'kPlan of 0', (e) => (e.payload.kPlan = 0), 'payload.kPlan'],
  ['DECIDE', 'decider not a did:key', (e) => (e.payload.decider = SECP256K1_DID), 'payload.decider'],
  [
    'DECIDE',
    'embedded envelope of the wrong kind',
    (e) => (e.payload.attestations[0].kind = 'ATTEST'),
    'payload.attestations.0.kind',
  ],
  [
    'DECIDE',
    'attestation about another proposal',
    (e) => (e.payload.attestations[0].payload.proposal = `${e.payload.proposal}-other`),
    'payload.attestations.0.payload.proposal',
  ],
  [
    'DECIDE',
    'attestation of another thread',
    (e) => {
      e.payload.attestations[0].thread = `${e.thread}-other`
      e.payload.attestations[0].payload.need = `${e.thread}-other`
    },
    'payload.attestations.0.thread',
  ],
  [
    'DECIDE',
    'attestation without id',
    (e) => delete e.payload.attestations[0].id,
    'payload.attestations.0.id',
  ],
  [
    'DECIDE',
    'attestation with a short signature',
    (e) => (e.payload.attestations[0].sig = new Uint8Array(63)),
    'payload.attestations.0.sig',
  ],
  [
    'DECIDE',
    'more than 64 attestations',
    (e) => (e.payload.attestations = Array(65).fill(e.payload.attestations[0])),
    'payload.attestations',
  ],
  ['DECIDE', 'no attestations', (e) => (e.payload.attestations = []), 'payload.attestations'],
  [
    'UPDATE_PLAN',
    'unknown task state',
    (e) => (e.payload.ops = [{ op: 'STATE', task: 't', state: 'DONE', epoch: 0 }]),
    'payload.ops.0.state',
  ],
  ['UPDATE_PLAN', 'unknown op', (e) => (e.payload.ops = [{ op: 'DELETE', task: 't' }]), 'payload.ops.0.op'],
  [
    'UPDATE_PLAN',
    'more than 256 ops',
    (e) => (e.payload.ops = Array(257).fill({ op: 'LINK', parent: 'a', child: 'b' })),
    'payload.ops',
  ],
  [
    'RECONCILE',
    'thread other than the envelope',
    (e) => (e.payload.thread = `${e.thread}x`),
    'payload.thread',
  ],
  [
    'RECONCILE',
    'orphaned proposal that is not an envelope id',
    (e) => (e.payload.orphaned = ['p1']),
    'payload.orphaned.0',
  ],
  ['CLAIM', 'lease of 0 ms', (e) => (e.payload.leaseTtlMs = 0), 'payload.leaseTtlMs'],
  ['GRANT', 'lease of 0 ms', (e) => (e.payload.leaseTtlMs = 0), 'payload.leaseTtlMs'],
  ['GRANT', 'claim that is not an envelope id', (e) => (e.payload.claim = 'c1'), 'payload.claim'],
  ['GRANT', 'missing claim', (e) => delete e.payload.claim, 'payload.claim'],
  ['CLAIM', 'cost as a string', (e) => (e.payload.cost = '5'), 'payload.cost'],
  ['CLAIM', 'task id over 256 chars', (e) => (e.payload.task = 'x'.repeat(257)), 'payload.task'],
  ['HEARTBEAT', 'progress over 1000', (e) => (e.payload.progress = 1001), 'payload.progress'],
  [
    'YIELD',
    'CIDv0 claim',
    (e) => (e.payload.claim = 'QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG'),
    'payload.claim',
  ],
  ['YIELD', 'unknown payload field', (e) => (e.payload.extra = 1), 'payload.extra'],
  ['RELEASE', 'unknown reason', (e) => (e.payload.reason = 'bored'), 'payload.reason'],
  ['COMMIT', 'negative telemetry', (e) => (e.payload.telemetry.cpuMs = -1), 'payload.telemetry.cpuMs'],
  ['COMMIT', 'missing telemetry field', (e) => delete e.payload.telemetry.wallMs, 'payload.telemetry.wallMs'],
  [
    'COMMIT',
    'declared input that is not a CID',
    (e) => (e.payload.inputs = ['task:count']),
    'payload.inputs.0',
  ],
  ['ATTEST', 'empty evalDigest', (e) => (e.payload.evalDigest = ''), 'payload.evalDigest'],
  [
    'FINALIZE',
    'attestation of another commit',
    (e) => (e.payload.attestations[0].payload.commit = CID),
    'payload.attestations.0.payload.commit',
  ],
  [
    'FINALIZE',
    'attestation of another thread',
    (e) => (e.payload.attestations[0].thread = `${e.thread}-other`),
    'payload.attestations.0.thread',
  ],
  [
    'FINALIZE',
    'attestation of another network',
    (e) => (e.payload.attestations[0].net = CID),
    'payload.attestations.0.net',
  ],
  [
    'FINALIZE',
    'ATTEST_PLAN instead of ATTEST',
    (e) => (e.payload.attestations[0].kind = 'ATTEST_PLAN'),
    'payload.attestations.0.kind',
  ],
  [
    'CHALLENGE',
    'contradiction with one attestation',
    (e) => (e.payload.proof = { type: 'contradicting-attestations', attestations: [CID] }),
    'payload.proof.attestations',
  ],
  ['CHALLENGE', 'unknown proof type', (e) => (e.payload.proof = { type: 'vibes' }), 'payload.proof.type'],
  ['INVALIDATE', 'missing challenge', (e) => delete e.payload.challenge, 'payload.challenge'],
  ['CHECKPOINT', 'secp256k1 signer', (e) => (e.payload.signers = [SECP256K1_DID]), 'payload.signers.0'],
  ['CHECKPOINT', 'no signers', (e) => (e.payload.signers = []), 'payload.signers'],
  ['CHECKPOINT', 'epoch past MAX_EPOCH', (e) => (e.payload.epoch = MAX_EPOCH + 1), 'payload.epoch'],
]

const headerCases: [what: string, mutate: (env: Loose) => void, field: string][] = [
  ['sender not an Ed25519 did:key', (e) => (e.sender = SECP256K1_DID), 'sender'],
  ['lamport 0', (e) => (e.lamport = 0), 'lamport'],
  ['lamport past MAX_LAMPORT (A4)', (e) => (e.lamport = MAX_LAMPORT + 1), 'lamport'],
  ['lamport at MAX_SAFE_INTEGER (A4)', (e) => (e.lamport = Number.MAX_SAFE_INTEGER), 'lamport'],
  ['negative epoch', (e) => (e.epoch = -1), 'epoch'],
  ['epoch past MAX_EPOCH (A4)', (e) => (e.epoch = MAX_EPOCH + 1), 'epoch'],
  ['no network id', (e) => delete e.net, 'net'],
  ['network id that is not a CID', (e) => (e.net = 'can-swarm'), 'net'],
  ['float ts', (e) => (e.ts = 0.5), 'ts'],
  ['signature of 63 bytes', (e) => (e.sig = new Uint8Array(63)), 'sig'],
  ['signature as an array', (e) => (e.sig = Array(64).fill(0)), 'sig'],
  ['257 refs', (e) => (e.refs = Array(257).fill(CID)), 'refs'],
  ['ref that is not a CID', (e) => (e.refs = [CID, 'x']), 'refs.1'],
  ['lone surrogate in thread', (e) => (e.thread = 'need-\ud800'), 'thread'],
  ['empty policy', (e) => (e.policy = ''), 'policy'],
  ['explicit undefined evalDigest', (e) => (e.evalDigest = undefined), 'evalDigest'],
  ['unknown field', (e) => (e.extra = 1), 'extra'],
  ['id that is not a CID', (e) => (e.id = 'bafy'), 'id'],
]

describe('each kind rejects a bad field, naming it', () => {
  it.each(payloadCases)('%s: %s', (kind, _what, mutate, field) => {
    const env = structuredClone(sample(kind)) as Loose
    mutate(env)
    const error = catchError(() => validateEnvelope(env))
    expect(error).toBeInstanceOf(SchemaViolationError)
    expect(error.field).toBe(field)
    expect(error.message).toContain(field)
  })

  it('covers every kind', () => {
    expect(new Set(payloadCases.map(([kind]) => kind))).toEqual(new Set(KINDS))
  })

  it.each(headerCases)('header: %s', (_what, mutate, field) => {
    const env = structuredClone(sample('CLAIM')) as Loose
    mutate(env)
    const error = catchError(() => validateEnvelope(env))
    expect(error).toBeInstanceOf(MalformedEnvelopeError)
    expect(error.field).toBe(field)
  })

  it('validatePayload names payload fields the same way', () => {
    const payload = structuredClone(sample('NEED').payload) as Loose
    payload.bidWindowMs = -5
    const error = catchError(() => validatePayload('NEED', payload))
    expect(error).toBeInstanceOf(SchemaViolationError)
    expect(error.field).toBe('payload.bidWindowMs')
    expect(catchError(() => validatePayload('NEED', null)).field).toBe('payload')
    expect(catchError(() => validatePayload('NOPE' as Kind, {}))).toBeInstanceOf(UnknownKindError)
  })

  it('rejects an unknown version and an unknown kind with their own errors', () => {
    const env = structuredClone(sample('NEED')) as Loose
    // Version 1 (before the network id and content-addressed proposals) is refused, as is a future one.
    for (const v of [1, 3]) {
      const version = catchError(() => validateEnvelope({ ...env, v }))
      expect(version).toBeInstanceOf(UnsupportedVersionError)
      expect(version.code).toBe('UNSUPPORTED_VERSION')
      expect(version.field).toBe('v')
    }
    const kind = catchError(() => validateEnvelope({ ...env, kind: 'GOSSIP' }))
    expect(kind).toBeInstanceOf(UnknownKindError)
    expect(kind.code).toBe('UNKNOWN_KIND')
    expect(kind.field).toBe('kind')
    expect(catchError(() => validateEnvelope({ ...env, v: '1' })).field).toBe('v')
    expect(catchError(() => validateEnvelope({ ...env, kind: 7 }))).toBeInstanceOf(MalformedEnvelopeError)
    const { payload: _payload, ...withoutPayload } = env
    const missing = catchError(() => validateEnvelope(withoutPayload))
    expect(missing).toBeInstanceOf(SchemaViolationError)
    expect(missing.field).toBe('payload')
  })
})

describe('validateEnvelope on hostile input', () => {
  const anything = fc.anything({
    withBigInt: true,
    withBoxedValues: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withTypedArray: true,
    withSparseArray: true,
    withNullPrototype: true,
    withObjectString: true,
    withUnicodeString: true,
  })

  function expectOnlyCanSwarmErrors(body: () => unknown): void {
    try {
      body()
    } catch (error) {
      if (!(error instanceof CanSwarmError)) throw error
    }
  }

  it('never throws anything but a CanSwarmError, whatever the value', () => {
    fc.assert(
      fc.property(anything, (value) => expectOnlyCanSwarmErrors(() => validateEnvelope(value))),
      {
        numRuns: 1000,
      },
    )
  })

  it('never throws anything but a CanSwarmError when one field of a valid envelope is replaced', () => {
    const fields = [
      'v',
      'net',
      'kind',
      'thread',
      'sender',
      'lamport',
      'ts',
      'payload',
      'refs',
      'policy',
      'evalDigest',
    ]
    fc.assert(
      fc.property(
        arbEnvelope(),
        fc.constantFrom(...fields, 'epoch', 'fence', 'sig', 'id'),
        anything,
        (env, field, value) => {
          expectOnlyCanSwarmErrors(() => validateEnvelope({ ...env, [field]: value }))
          expectOnlyCanSwarmErrors(() =>
            validateEnvelope({ ...env, payload: { ...env.payload, [field]: value } }),
          )
        },
      ),
      { numRuns: 500 },
    )
  })

  it('validatePayload never throws anything but a CanSwarmError', () => {
    fc.assert(
      fc.property(fc.constantFrom(...KINDS), anything, (kind, value) =>
        expectOnlyCanSwarmErrors(() => validatePayload(kind, value)),
      ),
      { numRuns: 500 },
    )
  })

  it('survives values whose getters throw', () => {
    const hostile = Object.defineProperty({ v: 2, kind: 'NEED' }, 'thread', {
      enumerable: true,
      get() {
        throw new TypeError('boom')
      },
    })
    expect(catchError(() => validateEnvelope(hostile))).toBeInstanceOf(CanSwarmError)
    const proxy = new Proxy(
      {},
      {
        get() {
          throw new Error('trap')
        },
      },
    )
    expect(catchError(() => validateEnvelope(proxy))).toBeInstanceOf(MalformedEnvelopeError)
  })
})

describe('size limits', () => {
  /** An UPDATE_PLAN whose payload encodes to just over 1 MiB. */
  function oversized(): Envelope<'UPDATE_PLAN'> {
    const env = structuredClone(sample('UPDATE_PLAN')) as Envelope<'UPDATE_PLAN'>
    const value = 'x'.repeat(LIMITS.maxTextChars)
    env.payload = {
      ops: Array.from({ length: LIMITS.maxListEntries }, (_, index) => ({
        op: 'ANNOTATE' as const,
        task: `t${index}`,
        key: 'k',
        value,
      })),
    }
    const { id: _id, ...signed } = env
    return { ...signed, id: computeEnvelopeId(signed) }
  }

  it('rejects a payload over MAX_PAYLOAD_BYTES with field payload', () => {
    const env = oversized()
    const { sig: _sig, id: _id, ...unsigned } = env
    for (const attempt of [
      () => validateEnvelope(env),
      () => validatePayload('UPDATE_PLAN', env.payload),
      () => validateUnsignedEnvelope(unsigned),
      () => decodeEnvelope(encodeEnvelope(env)),
    ]) {
      const error = catchError(attempt)
      expect(error).toBeInstanceOf(OversizedEnvelopeError)
      expect(error.field).toBe('payload')
      expect((error as OversizedEnvelopeError).sizeBytes).toBeGreaterThan(MAX_PAYLOAD_BYTES)
      expect((error as OversizedEnvelopeError).limitBytes).toBe(MAX_PAYLOAD_BYTES)
    }
  })

  it('accepts the largest lists and strings the limits allow', () => {
    const env = structuredClone(sample('NEED')) as Loose
    env.thread = 'n'.repeat(LIMITS.maxIdChars)
    env.payload.need = env.thread
    env.payload.requires = Array(LIMITS.maxListEntries).fill('c'.repeat(LIMITS.maxIdChars))
    env.refs = Array(LIMITS.maxListEntries).fill(CID)
    delete env.id
    const validated = validateEnvelope(env)
    expect(decodeEnvelope(encodeEnvelope(validated))).toEqual(validated)
  })
})

describe('checkEpoch', () => {
  it('refuses an envelope from an older epoch', () => {
    expect(() => checkEpoch({ epoch: 3 }, 3)).not.toThrow()
    expect(() => checkEpoch({ epoch: 4 }, 3)).not.toThrow()
    const error = catchError(() => checkEpoch({ epoch: 2 }, 3))
    expect(error).toBeInstanceOf(StaleEpochError)
    expect(error.field).toBe('epoch')
    expect((error as StaleEpochError).currentEpoch).toBe(3)
  })
})
