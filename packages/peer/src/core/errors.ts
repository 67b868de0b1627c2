/**
 * Typed errors of the protocol core. Every error has a stable `code`, names the offending
 * `field` where there is one, and says in its message what was wrong and what to do.
 * Errors are values that cross module boundaries: callers branch on `code`, never on text.
 */

/** Stable machine-readable error codes. Never rename one: peers and tools match on them. */
export type ErrorCode =
  | 'MALFORMED_ENVELOPE'
  | 'OVERSIZED_ENVELOPE'
  | 'BAD_SIGNATURE'
  | 'WRONG_ID'
  | 'STALE_EPOCH'
  | 'SCHEMA_VIOLATION'
  | 'UNKNOWN_KIND'
  | 'UNSUPPORTED_VERSION'
  | 'DECIDE_CONFLICT'
  | 'INVALID_ARGUMENT'
  | 'TRACE_INVALID'
  | 'INVARIANT_BROKEN'
  | 'LEDGER_REJECTED'
  | 'POLICY_DENIED'
  | 'GAS_EXCEEDED'
  | 'UNKNOWN_CAPSULE'
  | 'CAPSULE_INVALID'
  | 'CONSENSUS_UNAVAILABLE'
  | 'STORE_LOCKED'
  | 'STORE_CORRUPT'
  | 'OVERSIZED_ARTIFACT'
  | 'STORAGE_FAILED'
  | 'SYNC_REFUSED'
  | 'QUOTA_EXCEEDED'

/** Base class of every CAN Swarm error. */
export class CanSwarmError extends Error {
  readonly code: ErrorCode
  /** Dotted path of the offending field (`payload.budget`), when one is to blame. */
  readonly field: string | undefined

  constructor(code: ErrorCode, message: string, field?: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CanSwarmError'
    this.code = code
    this.field = field
  }
}

/** The bytes or structure of an envelope are not a valid envelope. */
export class MalformedEnvelopeError extends CanSwarmError {
  constructor(message: string, field?: string, options?: { cause?: unknown }) {
    super('MALFORMED_ENVELOPE', message, field, options)
    this.name = 'MalformedEnvelopeError'
  }
}

/** The encoded envelope or its payload is larger than the limit. */
export class OversizedEnvelopeError extends CanSwarmError {
  readonly sizeBytes: number
  readonly limitBytes: number
  constructor(field: string, sizeBytes: number, limitBytes: number) {
    super(
      'OVERSIZED_ENVELOPE',
      `${field} is ${sizeBytes} bytes, over the limit of ${limitBytes} bytes: put large data in an artifact and reference its CID in refs`,
      field,
    )
    this.name = 'OversizedEnvelopeError'
    this.sizeBytes = sizeBytes
    this.limitBytes = limitBytes
  }
}

/** An artifact is larger than the store accepts. */
export class OversizedArtifactError extends CanSwarmError {
  readonly sizeBytes: number
  readonly limitBytes: number
  constructor(field: string, sizeBytes: number, limitBytes: number) {
    super(
      'OVERSIZED_ARTIFACT',
      `the artifact is ${sizeBytes} bytes, over the limit of ${limitBytes} bytes: split it into several artifacts`,
      field,
    )
    this.name = 'OversizedArtifactError'
    this.sizeBytes = sizeBytes
    this.limitBytes = limitBytes
  }
}

/** The Ed25519 signature does not verify against the sender's key. */
export class BadSignatureError extends CanSwarmError {
  constructor(message: string, field = 'sig') {
    super('BAD_SIGNATURE', message, field)
    this.name = 'BadSignatureError'
  }
}

/**
 * The envelope's `id` is not the content hash of the signed envelope. `field` is `id`, or the
 * path of an embedded envelope's id (`payload.attestations.2.id`).
 */
export class WrongIdError extends CanSwarmError {
  readonly expected: string
  readonly actual: string
  constructor(expected: string, actual: string, field = 'id') {
    super(
      'WRONG_ID',
      `envelope id ${actual} is not the content hash of the signed envelope (expected ${expected}): the envelope was altered after signing`,
      field,
    )
    this.name = 'WrongIdError'
    this.expected = expected
    this.actual = actual
  }
}

/** A write carried an epoch (or fence token) older than the current one. */
export class StaleEpochError extends CanSwarmError {
  readonly epoch: number
  readonly currentEpoch: number
  constructor(epoch: number, currentEpoch: number, field = 'epoch') {
    super(
      'STALE_EPOCH',
      `epoch ${epoch} is stale: the current epoch is ${currentEpoch}; fetch the current fence token and retry`,
      field,
    )
    this.name = 'StaleEpochError'
    this.epoch = epoch
    this.currentEpoch = currentEpoch
  }
}

/** The envelope's protocol version `v` is not one this peer speaks. */
export class UnsupportedVersionError extends CanSwarmError {
  readonly version: number
  readonly supported: readonly number[]
  constructor(version: number, supported: readonly number[], field = 'v') {
    super(
      'UNSUPPORTED_VERSION',
      `envelope version ${version} is not supported (this peer speaks ${supported.join(', ')}): upgrade the peer, or send a version it speaks`,
      field,
    )
    this.name = 'UnsupportedVersionError'
    this.version = version
    this.supported = supported
  }
}

/** The envelope's `kind` is not a verb of the protocol. */
export class UnknownKindError extends CanSwarmError {
  readonly kind: string
  constructor(kind: string, field = 'kind') {
    super(
      'UNKNOWN_KIND',
      `${field} ${JSON.stringify(kind.slice(0, 64))} is not a verb of the protocol: use one of the kinds listed in KINDS`,
      field,
    )
    this.name = 'UnknownKindError'
    this.kind = kind
  }
}

/** A payload (or other typed value) does not match its schema. */
export class SchemaViolationError extends CanSwarmError {
  constructor(message: string, field: string) {
    super('SCHEMA_VIOLATION', message, field)
    this.name = 'SchemaViolationError'
  }
}

/** The scoped-consensus store already holds a different decision for this NEED. */
export class DecideConflictError extends CanSwarmError {
  readonly need: string
  readonly decidedProposal: string
  constructor(need: string, decidedProposal: string) {
    super(
      'DECIDE_CONFLICT',
      `NEED ${need} is already decided for proposal ${decidedProposal}; a NEED has exactly one DECIDE`,
      'proposal',
    )
    this.name = 'DecideConflictError'
    this.need = need
    this.decidedProposal = decidedProposal
  }
}

/** A trace file failed verification (tampered, reordered, truncated or malformed). */
export class TraceInvalidError extends CanSwarmError {
  readonly line: number
  constructor(message: string, line: number, field?: string) {
    super('TRACE_INVALID', `line ${line}: ${message}`, field)
    this.name = 'TraceInvalidError'
    this.line = line
  }
}

/** A function was called with an argument it cannot use. */
export class InvalidArgumentError extends CanSwarmError {
  constructor(message: string, field: string) {
    super('INVALID_ARGUMENT', message, field)
    this.name = 'InvalidArgumentError'
  }
}

/** An internal invariant was broken: a bug. Stop loudly rather than limp on. */
export class InvariantError extends CanSwarmError {
  constructor(message: string) {
    super('INVARIANT_BROKEN', message)
    this.name = 'InvariantError'
  }
}

/** Assert an invariant; throws {@link InvariantError} when it does not hold. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message)
}

/**
 * The consensus store cannot answer now: the etcd cluster is unreachable or has no quorum, or the
 * call ran out of time. Nothing was acknowledged; retrying the same request later is safe.
 */
export class ConsensusUnavailableError extends CanSwarmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONSENSUS_UNAVAILABLE', message, undefined, options)
    this.name = 'ConsensusUnavailableError'
  }
}

/** A durable store is held by another process (one process per data directory). */
export class StoreLockedError extends CanSwarmError {
  readonly path: string
  constructor(path: string, options?: { cause?: unknown }) {
    super(
      'STORE_LOCKED',
      `${path} is locked by another process: one anchor process per data directory; stop the other process or use another --data directory`,
      'path',
      options,
    )
    this.name = 'StoreLockedError'
    this.path = path
  }
}

/** A durable store's file is not what the store wrote (damaged, truncated or foreign). */
export class StoreCorruptError extends CanSwarmError {
  readonly path: string
  constructor(path: string, detail: string, options?: { cause?: unknown }) {
    super(
      'STORE_CORRUPT',
      `${path} is corrupt or not a CAN Swarm store (${detail}): restore it from a backup or move it aside; decisions in it cannot be trusted`,
      'path',
      options,
    )
    this.name = 'StoreCorruptError'
    this.path = path
  }
}

/**
 * A durable write could not be made (the disk is full, an I/O error, a read-only file system).
 * Nothing the write was for counts as kept; the store refuses further writes until restarted,
 * while reads go on. `errno` is the system's code (`ENOSPC`, `EIO`, `EROFS`, …) when there is one.
 */
export class StorageFailedError extends CanSwarmError {
  readonly path: string
  readonly errno: string | undefined
  constructor(path: string, detail: string, options?: { cause?: unknown }) {
    const errno = (options?.cause as { code?: unknown } | undefined)?.code
    super(
      'STORAGE_FAILED',
      `${path}: a durable write failed (${detail}); writes are refused until the anchor restarts with space and a working disk — reads and everything already kept are unaffected`,
      'path',
      options,
    )
    this.name = 'StorageFailedError'
    this.path = path
    this.errno = typeof errno === 'string' ? errno : undefined
  }
}

/**
 * A remote party is over one of its budgets (requests per second, bytes in flight): the request is
 * refused before it costs more. `retryAfterMs`, when known, says when the same request would fit.
 */
export class QuotaExceededError extends CanSwarmError {
  readonly retryAfterMs: number | undefined
  constructor(message: string, field: string, retryAfterMs?: number) {
    super('QUOTA_EXCEEDED', message, field)
    this.name = 'QuotaExceededError'
    this.retryAfterMs = retryAfterMs
  }
}

/** One reason a policy gave for a denial: the rule that fired and the field it blames. */
export interface PolicyReason {
  /** Stable rule id of the policy (`kind-allowed`, `payload-size`, `budget-credits`, …). */
  rule: string
  /** Dotted path of the envelope field the rule looked at (`payload.budget`). */
  field: string
}

/** A policy gate denied an envelope; `reasons` name every rule that fired. */
export class PolicyDeniedError extends CanSwarmError {
  readonly gate: string
  readonly reasons: readonly PolicyReason[]
  constructor(gate: string, reasons: readonly PolicyReason[]) {
    const list = reasons.map((r) => `${r.rule} (${r.field})`).join(', ') || 'default deny'
    super(
      'POLICY_DENIED',
      `the ${gate} policy gate denied the envelope: ${list}; change the named fields to fit the policy`,
      reasons[0]?.field,
    )
    this.name = 'PolicyDeniedError'
    this.gate = gate
    this.reasons = reasons
  }
}

/** A policy evaluation ran out of gas: the policy is too expensive for its input. */
export class GasExceededError extends CanSwarmError {
  readonly gasLimit: number
  constructor(gasLimit: number) {
    super(
      'GAS_EXCEEDED',
      `policy evaluation used more than its gas limit of ${gasLimit} units and was stopped: simplify the policy or its input, or raise gasLimit`,
      'gas',
    )
    this.name = 'GasExceededError'
    this.gasLimit = gasLimit
  }
}

/** An envelope names a policy capsule this peer does not know or does not trust. */
export class UnknownCapsuleError extends CanSwarmError {
  readonly capsule: string
  constructor(capsule: string, field = 'policy') {
    super(
      'UNKNOWN_CAPSULE',
      `policy capsule ${capsule.slice(0, 80)} is not known or not trusted here: the sender must evaluate under a capsule this peer accepted (signed by a trusted author, conformance passing)`,
      field,
    )
    this.name = 'UnknownCapsuleError'
    this.capsule = capsule
  }
}

/** A policy capsule failed verification: bad signature, wrong hash, or failing conformance. */
export class CapsuleInvalidError extends CanSwarmError {
  constructor(message: string, field: string) {
    super('CAPSULE_INVALID', `policy capsule rejected: ${message}`, field)
    this.name = 'CapsuleInvalidError'
  }
}
