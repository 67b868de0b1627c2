/**
 * Runtime schemas (zod v4) for every payload of the protocol and for the envelope around it
 * (docs/PROTOCOL.md §2, §4). Every number is a non-negative safe integer, every string and list is
 * bounded ({@link LIMITS}), objects are strict (unknown fields are rejected, so what is validated
 * is exactly what is signed).
 *
 * Validation errors are typed and name the offending field as a dotted path:
 * - {@link MalformedEnvelopeError}: the value is not an envelope (header fields wrong or missing);
 * - {@link SchemaViolationError}: the payload does not match its kind's schema (`payload.budget`);
 * - {@link UnsupportedVersionError} / {@link UnknownKindError}: `v` or `kind` unknown to this peer;
 * - {@link OversizedEnvelopeError}: the canonical payload is over {@link MAX_PAYLOAD_BYTES}.
 *
 * What the schemas check beyond shapes: the `thread` of an envelope equals its NEED id
 * (`payload.need` for NEED, PROPOSE, ATTEST_PLAN, DECIDE; `payload.thread` for RECONCILE); task
 * names are unique within a proposal; attestations embedded in DECIDE (ATTEST_PLAN) and FINALIZE
 * (ATTEST) are full signed envelopes of the same thread about the same proposal / task and commit.
 * Quorum rules (K, distinct and eligible attesters, verdicts) and signatures are checked elsewhere.
 *
 * @example
 * ```ts
 * const envelope = validateEnvelope(untrusted)        // throws a CanSwarmError naming the field
 * const payload = validatePayload('NEED', candidate) // typed NeedPayload
 * ```
 */

import { z } from 'zod'
import {
  cidProblem,
  computeEnvelopeId,
  didKeyProblem,
  encodeCanonical,
  MAX_PAYLOAD_BYTES,
} from './canonical.ts'
import {
  CanSwarmError,
  MalformedEnvelopeError,
  OversizedEnvelopeError,
  SchemaViolationError,
  StaleEpochError,
  UnknownKindError,
  UnsupportedVersionError,
} from './errors.ts'
import {
  type AnyEnvelope,
  type AttestPayload,
  type AttestPlanPayload,
  type ChallengePayload,
  type CheckpointPayload,
  type ClaimPayload,
  type CommitPayload,
  type DecidePayload,
  type Envelope,
  type FinalizePayload,
  type GrantPayload,
  type HeartbeatPayload,
  type InvalidatePayload,
  KINDS,
  type Kind,
  MAX_EPOCH,
  MAX_LAMPORT,
  type NeedPayload,
  type PayloadByKind,
  type PoolSnapshot,
  PROTOCOL_VERSION,
  type ProposePayload,
  type ReconcilePayload,
  type ReleasePayload,
  TASK_STATES,
  type UnsignedEnvelope,
  type UpdatePlanPayload,
  type YieldPayload,
} from './types.ts'

/** Bounds the schemas enforce. Lengths of strings are in UTF-16 code units (`string.length`). */
export const LIMITS = {
  /** Longest id (`thread`, `need`, `proposal`, `task`, …), capability or artifact type. */
  maxIdChars: 256,
  /** Longest free text (`ANNOTATE` value, challenge `reason`). */
  maxTextChars: 4096,
  /** Longest hash-like string (`policy`, `evalDigest`, `fence`, `merkleRoot`). */
  maxHashChars: 256,
  /** Most entries in a list (`refs`, `inputs`, `requires`, `patch`, `ops`, `signers`, …). */
  maxListEntries: 256,
  /** Most attestations embedded in a DECIDE or FINALIZE. */
  maxAttestations: 64,
  /** Task names inside a proposal. */
  taskNamePattern: /^[a-z0-9-]{1,64}$/,
  /** Largest signature, in bytes (Ed25519: exactly 64). */
  signatureBytes: 64,
} as const

/** Prefix by which a task input names the output of another task of the same proposal. */
export const TASK_INPUT_PREFIX = 'task:'

// ---------------------------------------------------------------- building blocks

/** A non-negative safe integer. */
const count = z.int().min(0)
/** An epoch: a non-negative integer no larger than {@link MAX_EPOCH} (A4). */
const epochNumber = z.int().min(0).max(MAX_EPOCH)
/** A Lamport time: 1 … {@link MAX_LAMPORT} (A4: nothing near the largest safe integer). */
const lamportNumber = z.int().min(1).max(MAX_LAMPORT)

/** A non-empty, well-formed (no lone surrogates) string of at most `max` UTF-16 code units. */
function text(max: number, min = 1) {
  return z
    .string()
    .min(min)
    .max(max)
    .refine((value) => value.isWellFormed(), { error: 'must be well-formed Unicode (no lone surrogates)' })
}

const id = text(LIMITS.maxIdChars)
const hash = text(LIMITS.maxHashChars)

/** A CIDv1 in base32. */
const cid = z.string().superRefine((value, context) => {
  const problem = cidProblem(value)
  if (problem !== undefined) context.addIssue({ code: 'custom', message: `CID ${problem}` })
})

/** The `did:key` of an Ed25519 public key. */
const did = z.string().superRefine((value, context) => {
  const problem = didKeyProblem(value)
  if (problem !== undefined) {
    context.addIssue({ code: 'custom', message: `did ${problem}: expected did:key:z6Mk… of an Ed25519 key` })
  }
})

function list<T extends z.ZodType>(item: T, max: number = LIMITS.maxListEntries, min = 0) {
  return z.array(item).min(min).max(max)
}

const taskName = z.string().regex(LIMITS.taskNamePattern, { error: 'must match [a-z0-9-]{1,64}' })

/** A task input: an artifact CID, or `task:<name>` for the output of another task of the plan. */
const taskInput = z.string().superRefine((value, context) => {
  if (value.startsWith(TASK_INPUT_PREFIX)) {
    if (!LIMITS.taskNamePattern.test(value.slice(TASK_INPUT_PREFIX.length))) {
      context.addIssue({
        code: 'custom',
        message: 'task:<name> input must name a task matching [a-z0-9-]{1,64}',
      })
    }
    return
  }
  const problem = cidProblem(value)
  if (problem !== undefined) {
    context.addIssue({
      code: 'custom',
      message: `input must be a CID or task:<name>; as a CID it ${problem}`,
    })
  }
})

const signature = z
  .instanceof(Uint8Array, { error: 'must be a byte string (Uint8Array)' })
  .refine((bytes) => bytes.length === LIMITS.signatureBytes, {
    error: `must be a ${LIMITS.signatureBytes}-byte Ed25519 signature`,
  })

// ---------------------------------------------------------------- plan patches and facts

/** Schema of a {@link TaskSpec} inside a PROPOSE patch. */
export const taskSpecSchema = z.strictObject({
  name: taskName,
  capability: id,
  inputs: list(taskInput),
  produces: id,
})

/** Schema of a {@link PlanOp} (a plan fact without its thread/lamport/actor). */
export const planOpSchema = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('ADD_TASK'),
    task: id,
    capability: id,
    requires: list(id),
    produces: id,
  }),
  z.strictObject({ op: z.literal('REQUIRES'), task: id, artifactType: id }),
  z.strictObject({ op: z.literal('PRODUCES'), task: id, ref: cid }),
  z.strictObject({ op: z.literal('LINK'), parent: id, child: id }),
  z.strictObject({ op: z.literal('STATE'), task: id, state: z.enum(TASK_STATES), epoch: count }),
  z.strictObject({ op: z.literal('ANNOTATE'), task: id, key: id, value: text(LIMITS.maxTextChars, 0) }),
])

// ---------------------------------------------------------------- envelope header

/** Header fields every envelope carries, besides `kind`, `payload`, `sig` and `id`. */
const headerShape = {
  v: z.literal(PROTOCOL_VERSION),
  net: cid,
  thread: id,
  sender: did,
  lamport: lamportNumber,
  ts: count,
  refs: list(cid),
  policy: hash,
  evalDigest: hash.exactOptional(),
  epoch: epochNumber,
  fence: hash.exactOptional(),
}

/** Kinds whose payload names the NEED in `need`, which must equal the envelope's `thread`. */
const NEED_SCOPED_KINDS: ReadonlySet<Kind> = new Set<Kind>(['NEED', 'PROPOSE', 'ATTEST_PLAN', 'DECIDE'])

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Envelope-level cross-field rules (thread ↔ payload), added as issues with their paths. */
function checkEnvelopeRules(kind: Kind, envelope: unknown, context: z.RefinementCtx): void {
  if (!isRecord(envelope) || !isRecord(envelope.payload)) return
  const { thread, payload } = envelope
  if (NEED_SCOPED_KINDS.has(kind) && payload.need !== thread) {
    context.addIssue({
      code: 'custom',
      path: ['payload', 'need'],
      message: `must equal the envelope's thread (${JSON.stringify(thread)}): a thread is named by its NEED`,
    })
  }
  if (kind === 'RECONCILE' && payload.thread !== thread) {
    context.addIssue({
      code: 'custom',
      path: ['payload', 'thread'],
      message: `must equal the envelope's thread (${JSON.stringify(thread)})`,
    })
  }
  if ((kind === 'FINALIZE' || kind === 'DECIDE') && Array.isArray(payload.attestations)) {
    payload.attestations.forEach((attestation: unknown, index) => {
      if (isRecord(attestation) && attestation.thread !== thread) {
        context.addIssue({
          code: 'custom',
          path: ['payload', 'attestations', index, 'thread'],
          message: `must equal the ${kind}'s thread (${JSON.stringify(thread)})`,
        })
      }
      if (isRecord(attestation) && attestation.net !== envelope.net) {
        context.addIssue({
          code: 'custom',
          path: ['payload', 'attestations', index, 'net'],
          message: `must equal the ${kind}'s network (${JSON.stringify(envelope.net)}): an attestation of another network proves nothing here`,
        })
      }
    })
  }
}

/** A full signed envelope (with `id`) of one kind, as embedded in DECIDE and FINALIZE. */
function embeddedEnvelopeSchema<K extends 'ATTEST_PLAN' | 'ATTEST'>(
  kind: K,
  payload: z.ZodType<PayloadByKind[K]>,
) {
  return z
    .strictObject({ ...headerShape, kind: z.literal(kind), payload, sig: signature, id: cid })
    .superRefine((value, context) => checkEnvelopeRules(kind, value, context))
}

// ---------------------------------------------------------------- payloads, one per verb

/** Schema of the NEED payload. */
export const needPayloadSchema = z.strictObject({
  need: id,
  epoch: epochNumber,
  requires: list(id),
  inputs: list(cid),
  produces: id,
  budget: count,
  deadlineMs: count,
  bidWindowMs: count,
}) satisfies z.ZodType<NeedPayload>

/** Schema of the PROPOSE payload. Task names must be unique within the patch. */
export const proposePayloadSchema = z
  .strictObject({
    need: id,
    patch: list(taskSpecSchema, LIMITS.maxListEntries, 1),
    ballot: count,
    price: count,
    etaMs: count,
    shardDependencies: list(cid),
  })
  .superRefine((value, context) => {
    const seen = new Set<string>()
    value.patch.forEach((task, index) => {
      if (seen.has(task.name)) {
        context.addIssue({
          code: 'custom',
          path: ['patch', index, 'name'],
          message: `task name ${task.name} appears twice in the patch: names are unique within a proposal`,
        })
      }
      seen.add(task.name)
    })
  }) satisfies z.ZodType<ProposePayload>

/** Schema of the ATTEST_PLAN payload. */
export const attestPlanPayloadSchema = z.strictObject({
  need: id,
  proposal: cid,
  verdict: z.enum(['accept', 'reject']),
}) satisfies z.ZodType<AttestPlanPayload>

/** Schema of a signed ATTEST_PLAN envelope embedded in a DECIDE. */
export const attestPlanEnvelopeSchema = embeddedEnvelopeSchema('ATTEST_PLAN', attestPlanPayloadSchema)

/** Schema of one verifier of a pool snapshot. */
export const poolEntrySchema = z.strictObject({
  did,
  stake: count,
  reputationPerMille: z.int().min(0).max(1000),
  lastActiveMs: count,
  entity: id,
  org: id,
  asn: id,
  region: id,
})

/** Schema of a pool snapshot (embedded in DECIDE): verifiers sorted and distinct, entries among them. */
export const poolSnapshotSchema = z
  .strictObject({
    epoch: epochNumber,
    bootstrap: z.boolean(),
    verifiers: list(did),
    entries: list(poolEntrySchema),
    snapshotMs: count,
  })
  .superRefine((value, context) => {
    for (let index = 1; index < value.verifiers.length; index += 1) {
      if (!(value.verifiers[index - 1]! < value.verifiers[index]!)) {
        context.addIssue({
          code: 'custom',
          path: ['verifiers', index],
          message: 'verifiers must be sorted and distinct',
        })
        return
      }
    }
    const listed = new Set(value.verifiers)
    value.entries.forEach((entry, index) => {
      if (!listed.has(entry.did)) {
        context.addIssue({
          code: 'custom',
          path: ['entries', index, 'did'],
          message: 'an entry must be one of the verifiers',
        })
      }
    })
  }) satisfies z.ZodType<PoolSnapshot>

/**
 * Schema of the DECIDE payload. Its attestations are ATTEST_PLAN envelopes of the same NEED about
 * the same proposal.
 */
export const decidePayloadSchema = z
  .strictObject({
    need: id,
    proposal: cid,
    epoch: epochNumber,
    lamport: lamportNumber,
    kPlan: z.int().min(1).max(LIMITS.maxAttestations),
    decider: did,
    attestations: list(attestPlanEnvelopeSchema, LIMITS.maxAttestations, 1),
    pool: poolSnapshotSchema,
  })
  .superRefine((value, context) => {
    value.attestations.forEach((attestation, index) => {
      if (attestation.thread !== value.need) {
        context.addIssue({
          code: 'custom',
          path: ['attestations', index, 'thread'],
          message: `must equal the DECIDE's need (${JSON.stringify(value.need)})`,
        })
      }
      if (attestation.payload.proposal !== value.proposal) {
        context.addIssue({
          code: 'custom',
          path: ['attestations', index, 'payload', 'proposal'],
          message: `must equal the DECIDE's proposal (${JSON.stringify(value.proposal)})`,
        })
      }
    })
  }) satisfies z.ZodType<DecidePayload>

/** Schema of the UPDATE_PLAN payload. */
export const updatePlanPayloadSchema = z.strictObject({
  ops: list(planOpSchema, LIMITS.maxListEntries, 1),
}) satisfies z.ZodType<UpdatePlanPayload>

/** Schema of the RECONCILE payload. */
export const reconcilePayloadSchema = z.strictObject({
  thread: id,
  merged: list(cid),
  orphaned: list(cid),
  salvaged: list(cid),
}) satisfies z.ZodType<ReconcilePayload>

/** Schema of the CLAIM payload. A lease lasts at least 1 ms. */
export const claimPayloadSchema = z.strictObject({
  task: id,
  leaseTtlMs: z.int().min(1),
  cost: count,
  etaMs: count,
}) satisfies z.ZodType<ClaimPayload>

/** Schema of the GRANT payload. */
export const grantPayloadSchema = z.strictObject({
  task: id,
  claim: cid,
  leaseTtlMs: z.int().min(1),
}) satisfies z.ZodType<GrantPayload>

/** Schema of the HEARTBEAT payload; `progress` is per-mille (0–1000). */
export const heartbeatPayloadSchema = z.strictObject({
  task: id,
  claim: cid,
  progress: z.int().min(0).max(1000),
}) satisfies z.ZodType<HeartbeatPayload>

/** Schema of the YIELD payload. */
export const yieldPayloadSchema = z.strictObject({
  task: id,
  claim: cid,
}) satisfies z.ZodType<YieldPayload>

/** Schema of the RELEASE payload. */
export const releasePayloadSchema = z.strictObject({
  task: id,
  claim: cid,
  reason: z.enum(['lease-expired', 'worker-failed', 'orphaned']),
}) satisfies z.ZodType<ReleasePayload>

/** Schema of COMMIT telemetry. */
export const telemetrySchema = z.strictObject({
  cpuMs: count,
  wallMs: count,
  memoryBytes: count,
  inputBytes: count,
  outputBytes: count,
})

/** Schema of the COMMIT payload. */
export const commitPayloadSchema = z.strictObject({
  task: id,
  claim: cid,
  inputs: list(cid).exactOptional(),
  outputs: list(cid),
  telemetry: telemetrySchema,
  verifyBounty: count,
}) satisfies z.ZodType<CommitPayload>

/** Schema of the ATTEST payload. */
export const attestPayloadSchema = z.strictObject({
  task: id,
  commit: cid,
  verdict: z.enum(['pass', 'fail']),
  evalDigest: hash,
}) satisfies z.ZodType<AttestPayload>

/** Schema of a signed ATTEST envelope embedded in a FINALIZE. */
export const attestEnvelopeSchema = embeddedEnvelopeSchema('ATTEST', attestPayloadSchema)

/**
 * Schema of the FINALIZE payload. Its attestations are ATTEST envelopes about the same task and
 * commit (their thread is checked against the FINALIZE's envelope).
 */
export const finalizePayloadSchema = z
  .strictObject({
    task: id,
    commit: cid,
    attestations: list(attestEnvelopeSchema, LIMITS.maxAttestations, 1),
  })
  .superRefine((value, context) => {
    value.attestations.forEach((attestation, index) => {
      if (attestation.payload.task !== value.task) {
        context.addIssue({
          code: 'custom',
          path: ['attestations', index, 'payload', 'task'],
          message: `must equal the FINALIZE's task (${JSON.stringify(value.task)})`,
        })
      }
      if (attestation.payload.commit !== value.commit) {
        context.addIssue({
          code: 'custom',
          path: ['attestations', index, 'payload', 'commit'],
          message: `must equal the FINALIZE's commit (${value.commit})`,
        })
      }
    })
  }) satisfies z.ZodType<FinalizePayload>

/** Schema of a typed, bounded challenge proof. */
export const challengeProofSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('output-mismatch'), expected: list(cid, LIMITS.maxListEntries, 1) }),
  z.strictObject({ type: z.literal('schema-violation'), output: cid, reason: text(LIMITS.maxTextChars) }),
  z.strictObject({ type: z.literal('missing-artifact'), ref: cid }),
  z.strictObject({
    type: z.literal('contradicting-attestations'),
    attestations: list(cid, LIMITS.maxAttestations, 2),
  }),
])

/** Schema of the CHALLENGE payload. */
export const challengePayloadSchema = z.strictObject({
  task: id,
  commit: cid,
  proof: challengeProofSchema,
  bond: count,
}) satisfies z.ZodType<ChallengePayload>

/** Schema of the INVALIDATE payload. */
export const invalidatePayloadSchema = z.strictObject({
  task: id,
  commit: cid,
  challenge: cid,
}) satisfies z.ZodType<InvalidatePayload>

/** Schema of the CHECKPOINT payload. */
export const checkpointPayloadSchema = z.strictObject({
  epoch: epochNumber,
  merkleRoot: hash,
  signers: list(did, LIMITS.maxListEntries, 1),
}) satisfies z.ZodType<CheckpointPayload>

/** The payload schema of each kind. */
export const payloadSchemas = {
  NEED: needPayloadSchema,
  PROPOSE: proposePayloadSchema,
  ATTEST_PLAN: attestPlanPayloadSchema,
  DECIDE: decidePayloadSchema,
  UPDATE_PLAN: updatePlanPayloadSchema,
  RECONCILE: reconcilePayloadSchema,
  CLAIM: claimPayloadSchema,
  GRANT: grantPayloadSchema,
  HEARTBEAT: heartbeatPayloadSchema,
  YIELD: yieldPayloadSchema,
  RELEASE: releasePayloadSchema,
  COMMIT: commitPayloadSchema,
  ATTEST: attestPayloadSchema,
  FINALIZE: finalizePayloadSchema,
  CHALLENGE: challengePayloadSchema,
  INVALIDATE: invalidatePayloadSchema,
  CHECKPOINT: checkpointPayloadSchema,
} as const satisfies { [K in Kind]: z.ZodType<PayloadByKind[K]> }

// ---------------------------------------------------------------- envelope schemas

function unsignedSchemaFor(kind: Kind) {
  const payload: z.ZodType = payloadSchemas[kind]
  return z
    .strictObject({ ...headerShape, kind: z.literal(kind), payload })
    .superRefine((value, context) => checkEnvelopeRules(kind, value, context))
}

function signedSchemaFor(kind: Kind) {
  const payload: z.ZodType = payloadSchemas[kind]
  return z
    .strictObject({ ...headerShape, kind: z.literal(kind), payload, sig: signature })
    .superRefine((value, context) => checkEnvelopeRules(kind, value, context))
}

type SchemaByKind<T> = { readonly [K in Kind]: z.ZodType<T> }

/** Schema of an unsigned envelope (no `sig`, no `id`) of each kind. */
export const unsignedEnvelopeSchemas = Object.fromEntries(
  KINDS.map((kind) => [kind, unsignedSchemaFor(kind)]),
) as unknown as { readonly [K in Kind]: z.ZodType<UnsignedEnvelope<K>> } & SchemaByKind<UnsignedEnvelope>

/** Schema of the wire form of an envelope (every field but `id`) of each kind. */
export const signedEnvelopeSchemas = Object.fromEntries(
  KINDS.map((kind) => [kind, signedSchemaFor(kind)]),
) as unknown as { readonly [K in Kind]: z.ZodType<Omit<Envelope<K>, 'id'>> } & SchemaByKind<
  Omit<Envelope, 'id'>
>

// ---------------------------------------------------------------- validation

/** A signed envelope before its `id` is attached, of any kind. */
export type AnySignedEnvelope = { [K in Kind]: Omit<Envelope<K>, 'id'> }[Kind]
/** An unsigned envelope of any kind. */
export type AnyUnsignedEnvelope = { [K in Kind]: UnsignedEnvelope<K> }[Kind]

const KIND_SET: ReadonlySet<string> = new Set(KINDS)

/** Checks `v` and `kind` first, so that a future version or verb gets its own error. */
function checkHeader(value: unknown): Kind {
  if (!isRecord(value)) {
    throw new MalformedEnvelopeError(
      `an envelope must be a map (object), got ${describe(value)}: send a value built by signEnvelope`,
    )
  }
  const version = value.v
  if (version !== PROTOCOL_VERSION) {
    if (typeof version === 'number' && Number.isSafeInteger(version) && version >= 0) {
      throw new UnsupportedVersionError(version, [PROTOCOL_VERSION])
    }
    throw new MalformedEnvelopeError(
      `v must be the protocol version, an integer (this peer speaks ${PROTOCOL_VERSION}), got ${describe(version)}`,
      'v',
    )
  }
  const kind = value.kind
  if (typeof kind !== 'string') {
    throw new MalformedEnvelopeError(`kind must be a string naming a verb, got ${describe(kind)}`, 'kind')
  }
  if (!KIND_SET.has(kind)) throw new UnknownKindError(kind)
  return kind as Kind
}

/** Turns the first zod issue into a typed error; payload issues are schema violations. */
function issueToError(
  issues: readonly z.core.$ZodIssue[],
  prefix: readonly PropertyKey[] = [],
): CanSwarmError {
  const issue = issues[0]
  if (issue === undefined)
    return new MalformedEnvelopeError('envelope failed validation for no stated reason')
  const path = [...prefix, ...issue.path].map((part) => String(part))
  // Name the first unknown key itself, so that the field points at what to remove.
  if (issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined) path.push(issue.keys[0])
  const field = path.join('.')
  const more =
    issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : ''
  if (path[0] === 'payload') {
    return new SchemaViolationError(`${field}: ${issue.message}${more}`, field)
  }
  return new MalformedEnvelopeError(`${field || 'envelope'}: ${issue.message}${more}`, field || undefined)
}

/** Runs `body`, turning anything that is not a CanSwarmError into a MalformedEnvelopeError. */
function guarded<T>(body: () => T): T {
  try {
    return body()
  } catch (error) {
    if (error instanceof CanSwarmError) throw error
    throw new MalformedEnvelopeError(
      `value could not be validated as an envelope (${error instanceof Error ? error.message : String(error)})`,
      undefined,
      { cause: error },
    )
  }
}

/**
 * Throws {@link OversizedEnvelopeError} (field `payload`) when the canonical encoding of `payload`
 * is over {@link MAX_PAYLOAD_BYTES}.
 */
export function checkPayloadSize(payload: unknown): void {
  const size = encodeCanonical(payload).length
  if (size > MAX_PAYLOAD_BYTES) throw new OversizedEnvelopeError('payload', size, MAX_PAYLOAD_BYTES)
}

/** Options of {@link validateEnvelopeStructure}. */
export interface ValidateStructureOptions {
  /**
   * Whether the payload may be over the size limit and must be measured. A caller that knows the
   * whole encoded envelope is at most {@link MAX_PAYLOAD_BYTES} passes `false` to skip the re-encode.
   * @default true
   */
  payloadMayBeOversized?: boolean
}

/**
 * Validates the wire form of an envelope: every field but `id` (an `id` field is rejected as
 * unknown). Low-level: {@link validateEnvelope} and `decodeEnvelope` are the usual entry points.
 * Returns a fresh object holding exactly the validated fields.
 *
 * @throws the errors of {@link validateEnvelope}.
 */
export function validateEnvelopeStructure(
  value: unknown,
  options: ValidateStructureOptions = {},
): AnySignedEnvelope {
  return guarded(() => {
    const kind = checkHeader(value)
    const result = signedEnvelopeSchemas[kind].safeParse(value)
    if (!result.success) throw issueToError(result.error.issues)
    if (options.payloadMayBeOversized !== false) checkPayloadSize(result.data.payload)
    return result.data as AnySignedEnvelope
  })
}

/**
 * Validates an untrusted value as a signed envelope and returns a fresh, typed copy.
 * When the value carries an `id`, its format is checked but not its content (that is
 * `verifyEnvelope`'s job); when it has none, the id is computed. Never throws anything but a
 * {@link CanSwarmError}, whatever the input.
 *
 * @throws {UnsupportedVersionError} field `v` when the version is not {@link PROTOCOL_VERSION}.
 * @throws {UnknownKindError} field `kind` when the kind is not in {@link KINDS}.
 * @throws {MalformedEnvelopeError} when a header field is missing or wrong (field names it).
 * @throws {SchemaViolationError} when the payload is wrong (`payload.budget`, …).
 * @throws {OversizedEnvelopeError} field `payload` over {@link MAX_PAYLOAD_BYTES}.
 */
export function validateEnvelope(value: unknown): AnyEnvelope {
  return guarded(() => {
    checkHeader(value)
    let carriedId: unknown
    let rest: unknown = value
    if (isRecord(value) && Object.hasOwn(value, 'id')) {
      const { id: ownId, ...others } = value
      carriedId = ownId
      rest = others
    }
    const signed = validateEnvelopeStructure(rest)
    if (carriedId === undefined) return { ...signed, id: computeEnvelopeId(signed) } as AnyEnvelope
    const problem = cidProblem(carriedId)
    if (problem !== undefined) throw new MalformedEnvelopeError(`id: CID ${problem}`, 'id')
    return { ...signed, id: carriedId as string } as AnyEnvelope
  })
}

/**
 * Validates an unsigned envelope (no `sig`, no `id`) — the preflight a sender runs before signing.
 * Returns a fresh, typed copy.
 *
 * @throws the errors of {@link validateEnvelope}.
 */
export function validateUnsignedEnvelope(value: unknown): AnyUnsignedEnvelope {
  return guarded(() => {
    const kind = checkHeader(value)
    const result = unsignedEnvelopeSchemas[kind].safeParse(value)
    if (!result.success) throw issueToError(result.error.issues)
    checkPayloadSize(result.data.payload)
    return result.data as AnyUnsignedEnvelope
  })
}

/**
 * Validates a payload against its kind's schema and size limit; returns a fresh, typed copy.
 * Fields are named from the envelope (`payload.budget`).
 *
 * @throws {UnknownKindError} field `kind` when the kind is not in {@link KINDS}.
 * @throws {SchemaViolationError} when the payload does not match the schema.
 * @throws {OversizedEnvelopeError} field `payload` over {@link MAX_PAYLOAD_BYTES}.
 */
export function validatePayload<K extends Kind>(kind: K, payload: unknown): PayloadByKind[K] {
  return guarded(() => {
    if (typeof kind !== 'string' || !KIND_SET.has(kind)) throw new UnknownKindError(String(kind))
    const schema = payloadSchemas[kind] as unknown as z.ZodType<PayloadByKind[K]>
    const result = schema.safeParse(payload)
    if (!result.success) {
      const error = issueToError(result.error.issues, ['payload'])
      throw error instanceof SchemaViolationError
        ? error
        : new SchemaViolationError(error.message, error.field ?? 'payload')
    }
    checkPayloadSize(result.data)
    return result.data
  })
}

/**
 * Fencing by epoch (P4): an envelope from an older epoch than the current one is refused.
 *
 * @throws {StaleEpochError} field `epoch` when `env.epoch < currentEpoch`.
 */
export function checkEpoch(env: Pick<UnsignedEnvelope, 'epoch'>, currentEpoch: number): void {
  if (env.epoch < currentEpoch) throw new StaleEpochError(env.epoch, currentEpoch)
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Uint8Array) return 'a byte string'
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 64))
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value)
  return typeof value
}
