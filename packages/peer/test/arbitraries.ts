/**
 * fast-check arbitraries of protocol values: valid payloads of every kind, unsigned envelopes and
 * structurally valid envelopes (random signature, correct id). Shared by the test suites.
 *
 * @example
 * ```ts
 * fc.assert(fc.property(arbEnvelopeUnsigned('NEED'), (unsigned) => { … }))
 * fc.assert(fc.property(arbEnvelope(), (env) => decodeEnvelope(encodeEnvelope(env)).id === env.id))
 * ```
 */

import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import * as digest from 'multiformats/hashes/digest'
import { computeEnvelopeId, didFromPublicKey } from '../src/core/codec.ts'
import {
  type AnyEnvelope,
  type ChallengeProof,
  type Cid,
  type Did,
  type Envelope,
  KINDS,
  type Kind,
  MAX_EPOCH,
  MAX_LAMPORT,
  type PayloadByKind,
  type PlanOp,
  type PoolSnapshot,
  PROTOCOL_VERSION,
  TASK_STATES,
  type TaskSpec,
  type UnsignedEnvelope,
} from '../src/core/types.ts'

/** Any verb. */
export const arbKind: fc.Arbitrary<Kind> = fc.constantFrom(...KINDS)

/** A CIDv1 (raw or dag-cbor codec, sha2-256 digest of random bytes) in base32. */
export const arbCid: fc.Arbitrary<Cid> = fc
  .tuple(fc.constantFrom(0x55, 0x71), fc.uint8Array({ minLength: 32, maxLength: 32 }))
  .map(([codec, hash]) => CID.createV1(codec, digest.create(0x12, hash)).toString())

/** The `did:key` of a random 32-byte Ed25519 public key (not necessarily a curve point). */
export const arbDid: fc.Arbitrary<Did> = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((publicKey) => didFromPublicKey(publicKey))

/** An id-like string: mostly `[a-z0-9-/]`, sometimes any well-formed Unicode. */
export const arbId: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[a-z0-9][a-z0-9/-]{0,23}$/) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }) },
)

/** A non-negative safe integer, small most of the time. */
export const arbCount: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(10_000) },
  { weight: 1, arbitrary: fc.maxSafeNat() },
)

/** A lamport time (1 … MAX_LAMPORT, A4). */
export const arbLamport: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 10_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: MAX_LAMPORT }) },
)

/** An epoch (0 … MAX_EPOCH, A4). */
export const arbEpoch: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(100) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: MAX_EPOCH }) },
)

/** A hex SHA-256-like string. */
export const arbHash: fc.Arbitrary<string> = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((bytes) => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join(''))

/** A task name (`[a-z0-9-]{1,64}`). */
export const arbTaskName: fc.Arbitrary<string> = fc.stringMatching(/^[a-z0-9-]{1,64}$/)

const arbTaskState = fc.constantFrom(...TASK_STATES)
const arbSignature = fc.uint8Array({ minLength: 64, maxLength: 64 })

function list<T>(arbitrary: fc.Arbitrary<T>, maxLength = 4, minLength = 0): fc.Arbitrary<T[]> {
  return fc.array(arbitrary, { minLength, maxLength })
}

/** A PROPOSE patch: unique task names, inputs that are CIDs or `task:<name>`. */
const arbPatch: fc.Arbitrary<TaskSpec[]> = fc
  .uniqueArray(arbTaskName, { minLength: 1, maxLength: 4 })
  .chain((names) =>
    fc.tuple(
      ...names.map((name) =>
        fc.record({
          name: fc.constant(name),
          capability: arbId,
          inputs: list(
            fc.oneof(
              arbCid,
              fc.constantFrom(...names).map((other) => `task:${other}`),
            ),
          ),
          produces: fc.constantFrom('text/plain', 'application/json', 'application/octet-stream'),
        }),
      ),
    ),
  )

/** A plan fact of any op. */
export const arbPlanOp: fc.Arbitrary<PlanOp> = fc.oneof(
  fc.record({
    op: fc.constant('ADD_TASK' as const),
    task: arbId,
    capability: arbId,
    requires: list(arbId),
    produces: arbId,
  }),
  fc.record({ op: fc.constant('REQUIRES' as const), task: arbId, artifactType: arbId }),
  fc.record({ op: fc.constant('PRODUCES' as const), task: arbId, ref: arbCid }),
  fc.record({ op: fc.constant('LINK' as const), parent: arbId, child: arbId }),
  fc.record({ op: fc.constant('STATE' as const), task: arbId, state: arbTaskState, epoch: arbCount }),
  fc.record({
    op: fc.constant('ANNOTATE' as const),
    task: arbId,
    key: arbId,
    value: fc.string({ unit: 'binary', maxLength: 40 }),
  }),
)

const arbProof: fc.Arbitrary<ChallengeProof> = fc.oneof(
  fc.record({ type: fc.constant('output-mismatch' as const), expected: list(arbCid, 4, 1) }),
  fc.record({
    type: fc.constant('schema-violation' as const),
    output: arbCid,
    reason: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
  }),
  fc.record({ type: fc.constant('missing-artifact' as const), ref: arbCid }),
  fc.record({ type: fc.constant('contradicting-attestations' as const), attestations: list(arbCid, 4, 2) }),
)

/** Header fields of an envelope of `thread` in network `net`, with the given kind and payload. */
function arbHeader<K extends Kind>(
  kind: K,
  net: Cid,
  thread: string,
  payload: fc.Arbitrary<PayloadByKind[K]>,
  sender?: Did,
): fc.Arbitrary<UnsignedEnvelope<K>> {
  return fc.record(
    {
      v: fc.constant(PROTOCOL_VERSION),
      net: fc.constant(net),
      kind: fc.constant(kind),
      thread: fc.constant(thread),
      sender: sender === undefined ? arbDid : fc.constant(sender),
      lamport: arbLamport,
      ts: arbCount,
      payload,
      refs: list(arbCid),
      policy: arbHash,
      evalDigest: arbHash,
      epoch: arbEpoch,
      fence: fc.oneof(arbCid, arbId),
    },
    {
      requiredKeys: [
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
        'epoch',
      ],
    },
  ) as fc.Arbitrary<UnsignedEnvelope<K>>
}

/** Signs nothing: attaches a random signature and the matching id. */
function withFakeSignature<K extends Kind>(unsigned: UnsignedEnvelope<K>, sig: Uint8Array): Envelope<K> {
  const signed = { ...unsigned, sig }
  return { ...signed, id: computeEnvelopeId(signed) }
}

/**
 * Structurally valid embedded attestations of `kind` for `thread` in network `net` (the schema
 * requires them to share both with their DECIDE or FINALIZE), their payloads made by `payload`.
 */
function arbAttestations<K extends 'ATTEST_PLAN' | 'ATTEST'>(
  kind: K,
  net: Cid,
  thread: string,
  payload: fc.Arbitrary<PayloadByKind[K]>,
): fc.Arbitrary<Envelope[]> {
  return list(
    fc
      .tuple(arbHeader(kind, net, thread, payload), arbSignature)
      .map(([unsigned, sig]) => withFakeSignature(unsigned, sig)),
    3,
    1,
  ) as fc.Arbitrary<Envelope[]>
}

/** A pool snapshot: verifiers sorted and distinct, each entry one of them. */
export const arbPoolSnapshot: fc.Arbitrary<PoolSnapshot> = fc
  .uniqueArray(arbDid, { maxLength: 4 })
  .chain((dids) => {
    const verifiers = [...dids].sort()
    return fc.record({
      epoch: arbEpoch,
      bootstrap: fc.boolean(),
      verifiers: fc.constant(verifiers),
      entries: fc.subarray(verifiers).chain((listed) =>
        fc.tuple(
          ...listed.map((did) =>
            fc.record({
              did: fc.constant(did),
              stake: arbCount,
              reputationPerMille: fc.integer({ min: 0, max: 1000 }),
              lastActiveMs: arbCount,
              entity: arbId,
              org: arbId,
              asn: arbId,
              region: arbId,
            }),
          ),
        ),
      ),
      snapshotMs: arbCount,
    })
  })

/** A valid payload of `kind` for an envelope of `thread` in network `net`. */
export function arbPayload<K extends Kind>(
  kind: K,
  thread: string,
  net: Cid,
): fc.Arbitrary<PayloadByKind[K]> {
  const need = fc.constant(thread)
  const arbitraries: { [Q in Kind]: () => fc.Arbitrary<PayloadByKind[Q]> } = {
    NEED: () =>
      fc.record({
        need,
        epoch: arbEpoch,
        requires: list(arbId),
        inputs: list(arbCid),
        produces: arbId,
        budget: arbCount,
        deadlineMs: arbCount,
        bidWindowMs: arbCount,
      }),
    PROPOSE: () =>
      fc.record({
        need,
        patch: arbPatch,
        ballot: arbCount,
        price: arbCount,
        etaMs: arbCount,
        shardDependencies: list(arbCid),
      }),
    ATTEST_PLAN: () =>
      fc.record({ need, proposal: arbCid, verdict: fc.constantFrom('accept' as const, 'reject' as const) }),
    DECIDE: () =>
      fc.tuple(arbCid, fc.integer({ min: 1, max: 3 })).chain(([proposal, kPlan]) =>
        fc.record({
          need,
          proposal: fc.constant(proposal),
          epoch: arbEpoch,
          lamport: arbLamport,
          kPlan: fc.constant(kPlan),
          decider: arbDid,
          attestations: arbAttestations(
            'ATTEST_PLAN',
            net,
            thread,
            fc.record({ need, proposal: fc.constant(proposal), verdict: fc.constant('accept' as const) }),
          ),
          pool: arbPoolSnapshot,
        }),
      ),
    UPDATE_PLAN: () => fc.record({ ops: list(arbPlanOp, 4, 1) }),
    RECONCILE: () =>
      fc.record({
        thread: fc.constant(thread),
        merged: list(arbCid),
        orphaned: list(arbCid),
        salvaged: list(arbCid),
      }),
    CLAIM: () =>
      fc.record({
        task: arbId,
        leaseTtlMs: fc.integer({ min: 1, max: 600_000 }),
        cost: arbCount,
        etaMs: arbCount,
      }),
    GRANT: () => fc.record({ task: arbId, claim: arbCid, leaseTtlMs: fc.integer({ min: 1, max: 600_000 }) }),
    HEARTBEAT: () => fc.record({ task: arbId, claim: arbCid, progress: fc.integer({ min: 0, max: 1000 }) }),
    YIELD: () => fc.record({ task: arbId, claim: arbCid }),
    RELEASE: () =>
      fc.record({
        task: arbId,
        claim: arbCid,
        reason: fc.constantFrom('lease-expired' as const, 'worker-failed' as const, 'orphaned' as const),
      }),
    COMMIT: () =>
      fc.record(
        {
          task: arbId,
          claim: arbCid,
          inputs: list(arbCid),
          outputs: list(arbCid),
          telemetry: fc.record({
            cpuMs: arbCount,
            wallMs: arbCount,
            memoryBytes: arbCount,
            inputBytes: arbCount,
            outputBytes: arbCount,
          }),
          verifyBounty: arbCount,
        },
        // `inputs` is optional (a COMMIT may declare what it was computed from).
        { requiredKeys: ['task', 'claim', 'outputs', 'telemetry', 'verifyBounty'] },
      ),
    ATTEST: () =>
      fc.record({
        task: arbId,
        commit: arbCid,
        verdict: fc.constantFrom('pass' as const, 'fail' as const),
        evalDigest: arbHash,
      }),
    FINALIZE: () =>
      fc.tuple(arbId, arbCid).chain(([task, commit]) =>
        fc.record({
          task: fc.constant(task),
          commit: fc.constant(commit),
          attestations: arbAttestations(
            'ATTEST',
            net,
            thread,
            fc.record({
              task: fc.constant(task),
              commit: fc.constant(commit),
              verdict: fc.constant('pass' as const),
              evalDigest: arbHash,
            }),
          ),
        }),
      ),
    CHALLENGE: () => fc.record({ task: arbId, commit: arbCid, proof: arbProof, bond: arbCount }),
    INVALIDATE: () => fc.record({ task: arbId, commit: arbCid, challenge: arbCid }),
    CHECKPOINT: () => fc.record({ epoch: arbEpoch, merkleRoot: arbHash, signers: list(arbDid, 4, 1) }),
  }
  return (arbitraries[kind] as () => fc.Arbitrary<PayloadByKind[K]>)()
}

/** Options of {@link arbEnvelopeUnsigned} and {@link arbEnvelope}. */
export interface ArbEnvelopeOptions {
  /** Fixed sender (e.g. an identity's did, to sign the result); random when absent. */
  sender?: Did
  /** Fixed network id; random when absent. */
  net?: Cid
}

/**
 * A valid unsigned envelope of `kind` (any kind when absent): thread and payload consistent,
 * optional `evalDigest` / `fence` sometimes present.
 */
export function arbEnvelopeUnsigned<K extends Kind>(
  kind?: K,
  options: ArbEnvelopeOptions = {},
): fc.Arbitrary<UnsignedEnvelope<K>> {
  const kinds = fc.constantFrom(...((kind === undefined ? KINDS : [kind]) as readonly K[]))
  const net = options.net === undefined ? arbCid : fc.constant(options.net)
  return fc
    .tuple(kinds, arbId, net)
    .chain(([chosen, thread, network]) =>
      arbHeader(chosen, network, thread, arbPayload(chosen, thread, network), options.sender),
    )
}

/**
 * A structurally valid envelope of `kind` (any kind when absent) with a random `sig` and the
 * correct `id`: it validates and round-trips, but its signature does not verify.
 */
export function arbEnvelope<K extends Kind>(
  kind?: K,
  options: ArbEnvelopeOptions = {},
): fc.Arbitrary<AnyEnvelope> {
  return fc
    .tuple(arbEnvelopeUnsigned(kind, options), arbSignature)
    .map(([unsigned, sig]) => withFakeSignature(unsigned, sig) as AnyEnvelope)
}
