/**
 * The vocabulary of the protocol (docs/PROTOCOL.md §2, §4, §6.7): envelope fields, verbs and their
 * payloads, plan facts. Types only; runtime checks live in `schemas.ts`, encoding in `codec.ts`.
 *
 * Units are in the names (`leaseTtlMs`, `budget` in credits). Every number in a payload is an
 * integer: DAG-CBOR encodes integers identically in every runtime, floats invite surprises.
 */

/**
 * Version of the envelope format this code writes and accepts. Version 2 added the network id
 * (`net`), content-addressed proposals and the GRANT verb (docs/PROTOCOL.md §2).
 */
export const PROTOCOL_VERSION = 2 as const

/**
 * Largest `lamport` an envelope may carry: far below `Number.MAX_SAFE_INTEGER`, so that no sender
 * can push a Lamport clock to the point where it cannot advance (docs/PROTOCOL.md §11, A4).
 */
export const MAX_LAMPORT = 2 ** 40

/** Largest `epoch` an envelope or a consensus store may carry (A3, A4). */
export const MAX_EPOCH = 2 ** 32

/** The epoch every thread starts in: the network's genesis epoch (A3). */
export const GENESIS_EPOCH = 1

/** Every verb of the protocol, in the order docs/PROTOCOL.md §4 lists them. */
export const KINDS = [
  'NEED',
  'PROPOSE',
  'ATTEST_PLAN',
  'DECIDE',
  'UPDATE_PLAN',
  'RECONCILE',
  'CLAIM',
  'GRANT',
  'HEARTBEAT',
  'YIELD',
  'RELEASE',
  'COMMIT',
  'ATTEST',
  'FINALIZE',
  'CHALLENGE',
  'INVALIDATE',
  'CHECKPOINT',
] as const

export type Kind = (typeof KINDS)[number]

/** A content id (CIDv1, base32 string) of an artifact or an envelope. */
export type Cid = string
/** An Ed25519 public key as a `did:key:z6Mk…` string. */
export type Did = string

// ---------------------------------------------------------------- plan patches and facts

/** One task of a proposed plan, named locally within its proposal. */
export interface TaskSpec {
  /** Name unique within the proposal (`[a-z0-9-]`, ≤ 64 chars); the task id is `${proposal}/${name}`. */
  name: string
  /** Capability that performs the task (`sha256`, `word-frequency`, …). */
  capability: string
  /** Inputs: artifact CIDs, or `task:<name>` for the output of another task of this plan. */
  inputs: string[]
  /** Artifact type the task produces (`text/plain`, `application/json`, …). */
  produces: string
}

/** A plan fact (docs/PROTOCOL.md §6.7). Facts are grow-only; the task graph is derived from them. */
export type PlanOp =
  | { op: 'ADD_TASK'; task: string; capability: string; requires: string[]; produces: string }
  | { op: 'REQUIRES'; task: string; artifactType: string }
  | { op: 'PRODUCES'; task: string; ref: Cid }
  | { op: 'LINK'; parent: string; child: string }
  | { op: 'STATE'; task: string; state: TaskState; epoch: number }
  | { op: 'ANNOTATE'; task: string; key: string; value: string }

/** A plan fact as stored: the op plus who wrote it and when (Lamport), for LWW and ordering. */
export type PlanFact = PlanOp & { thread: string; lamport: number; actor: Did }

/** Task states, in their monotone order. */
export const TASK_STATES = ['DRAFT', 'DECIDED', 'CLAIMED', 'COMMITTED', 'VERIFIED', 'FINAL'] as const
export type TaskState = (typeof TASK_STATES)[number]

// ---------------------------------------------------------------- payloads, one per verb

export interface NeedPayload {
  /**
   * The NEED's id: the content id of the NEED itself with `thread` and `need` left empty
   * (`threadIdOf`, A1), so that exactly one NEED can ever open a thread. It is also the
   * envelope's `thread`.
   */
  need: string
  epoch: number
  /** Capabilities the work requires. */
  requires: string[]
  /** Input artifacts. */
  inputs: Cid[]
  /** Artifact type the requester wants back. */
  produces: string
  /** Credits the requester escrows for the whole NEED. */
  budget: number
  /** Wall-clock deadline, informational only (never used for ordering). */
  deadlineMs: number
  /** How long planners may bid, measured by each peer from its receipt of the NEED. */
  bidWindowMs: number
}

/**
 * A plan bid. A proposal is named by its envelope id (A2): two PROPOSEs never share an identity,
 * and its tasks are `${proposeEnvelopeId}/${name}`.
 */
export interface ProposePayload {
  need: string
  patch: TaskSpec[]
  /** Planner's ballot number (retries of one proposal carry higher ballots). */
  ballot: number
  /** Price in credits for the whole plan. */
  price: number
  etaMs: number
  /** Commitment CIDs of other shards' DECIDEs this plan depends on (docs/PROTOCOL.md §10). */
  shardDependencies: Cid[]
}

export type Verdict = 'accept' | 'reject'

export interface AttestPlanPayload {
  need: string
  /** Envelope id of the PROPOSE attested. */
  proposal: Cid
  verdict: Verdict
}

/**
 * The verifier pool a DECIDE was taken under (docs/PROTOCOL.md §8): eligibility, the K rules and
 * committee selection of the thread follow it, whatever pool any replica knows of today.
 */
export interface PoolSnapshot {
  /** Pool epoch: 0 is the genesis pool; an anchor adopts each new snapshot at a higher one. */
  epoch: number
  /** Bootstrap mode (K = 1, self-attestation allowed, anchors judge challenges). */
  bootstrap: boolean
  /** Eligible staked verifiers, sorted; empty in bootstrap mode is an open pool. */
  verifiers: Did[]
  /** Stake, reputation, recency and diversity of each verifier, for committee selection. */
  entries: PoolEntrySnapshot[]
  /** Time (anchor clock, ms) the recency of the entries is measured against. */
  snapshotMs: number
}

/** One verifier of a {@link PoolSnapshot} (the `PoolEntry` of economy/selection.ts). */
export interface PoolEntrySnapshot {
  did: Did
  stake: number
  reputationPerMille: number
  lastActiveMs: number
  entity: string
  org: string
  asn: string
  region: string
}

export interface DecidePayload {
  need: string
  /** Envelope id of the PROPOSE decided. */
  proposal: Cid
  epoch: number
  /** Lamport time of the decision (the decider's clock when it won tryDecide). */
  lamport: number
  kPlan: number
  /** did:key of the peer that won the create-if-absent in the consensus store. */
  decider: Did
  /** The signed ATTEST_PLAN envelopes that formed the quorum (self-contained proof, P6). */
  attestations: Envelope[]
  /** The pool the decision was taken under; the thread's committees and K follow it. */
  pool: PoolSnapshot
}

export interface UpdatePlanPayload {
  ops: PlanOp[]
}

export interface ReconcilePayload {
  thread: string
  /** Envelope ids of the DECIDEs that won the merge. */
  merged: Cid[]
  /** Envelope ids of the PROPOSEs whose tasks lost the merge (annotated `orphanedByEpoch`). */
  orphaned: Cid[]
  /** Artifact CIDs of attested work on orphaned branches that stay usable. */
  salvaged: Cid[]
}

export interface ClaimPayload {
  task: string
  leaseTtlMs: number
  /** Credits the worker asks for the task. */
  cost: number
  etaMs: number
}

/**
 * An anchor's grant of a lease (A5): of the CLAIMs of a claimable task, the one the lease
 * authority received first holds the lease from this GRANT on. A CLAIM alone is only a request.
 */
export interface GrantPayload {
  task: string
  /** Envelope id of the CLAIM granted (the lease's fence token). */
  claim: Cid
  /** The lease granted, at most what the CLAIM asked for (the anchor caps what it grants). */
  leaseTtlMs: number
}

export interface HeartbeatPayload {
  task: string
  /** Envelope id of the CLAIM whose lease this renews (the fence token). */
  claim: Cid
  /** Progress in per-mille (0–1000). */
  progress: number
}

export interface YieldPayload {
  task: string
  claim: Cid
}

export type ReleaseReason = 'lease-expired' | 'worker-failed' | 'orphaned'

export interface ReleasePayload {
  task: string
  claim: Cid
  reason: ReleaseReason
}

/** Execution telemetry a worker reports with a COMMIT (checked by the commit gate). */
export interface Telemetry {
  cpuMs: number
  wallMs: number
  memoryBytes: number
  inputBytes: number
  outputBytes: number
}

export interface CommitPayload {
  task: string
  /** Envelope id of the CLAIM under whose lease the work was done (the fence token). */
  claim: Cid
  /**
   * The artifacts the work was computed from, in the task's input order (the NEED's inputs and the
   * parents' FINAL outputs). A result is bound to its inputs: the fold refuses a COMMIT whose inputs
   * are not the task's inputs at that point, and verifiers and judges re-run the task on exactly
   * these, whatever their own view of the parents.
   */
  inputs?: Cid[]
  outputs: Cid[]
  telemetry: Telemetry
  /** Credits escrowed for the verifiers. */
  verifyBounty: number
}

export interface AttestPayload {
  task: string
  /** Envelope id of the COMMIT being attested. */
  commit: Cid
  verdict: 'pass' | 'fail'
  /** H(input ‖ decision ‖ policyHash) of the verifier's policy evaluation. */
  evalDigest: string
}

export interface FinalizePayload {
  task: string
  commit: Cid
  /** The signed passing ATTEST envelopes that formed the result quorum (P6). */
  attestations: Envelope[]
}

/** Typed, bounded proofs a challenger may present. */
export type ChallengeProof =
  | { type: 'output-mismatch'; expected: Cid[] }
  | { type: 'schema-violation'; output: Cid; reason: string }
  | { type: 'missing-artifact'; ref: Cid }
  | { type: 'contradicting-attestations'; attestations: Cid[] }

export interface ChallengePayload {
  task: string
  commit: Cid
  proof: ChallengeProof
  /** Credits the challenger puts at stake. */
  bond: number
}

export interface InvalidatePayload {
  task: string
  commit: Cid
  /** Envelope id of the upheld CHALLENGE. */
  challenge: Cid
}

export interface CheckpointPayload {
  epoch: number
  merkleRoot: string
  signers: Did[]
}

/** Payload type for each kind. */
export interface PayloadByKind {
  NEED: NeedPayload
  PROPOSE: ProposePayload
  ATTEST_PLAN: AttestPlanPayload
  DECIDE: DecidePayload
  UPDATE_PLAN: UpdatePlanPayload
  RECONCILE: ReconcilePayload
  CLAIM: ClaimPayload
  GRANT: GrantPayload
  HEARTBEAT: HeartbeatPayload
  YIELD: YieldPayload
  RELEASE: ReleasePayload
  COMMIT: CommitPayload
  ATTEST: AttestPayload
  FINALIZE: FinalizePayload
  CHALLENGE: ChallengePayload
  INVALIDATE: InvalidatePayload
  CHECKPOINT: CheckpointPayload
}

// ---------------------------------------------------------------- the envelope

/** Everything a sender signs: all envelope fields except `id` and `sig`. */
export interface UnsignedEnvelope<K extends Kind = Kind> {
  /** Protocol version ({@link PROTOCOL_VERSION}). */
  v: typeof PROTOCOL_VERSION
  /** The network id (its genesis record's id): every signature covers it (domain separation). */
  net: Cid
  kind: K
  /** The NEED this envelope belongs to (`NeedPayload.need`). */
  thread: string
  sender: Did
  lamport: number
  /** Sender's wall clock in ms: informational only, never used for ordering. */
  ts: number
  payload: PayloadByKind[K]
  /** CIDs of artifacts the envelope refers to (blobs never travel inside envelopes). */
  refs: Cid[]
  /** Hash of the policy capsule the sender evaluated. */
  policy: string
  evalDigest?: string
  epoch: number
  /** Fence token (the CLAIM id for lease-guarded verbs), where one applies. */
  fence?: string
}

/** A signed envelope. `id` is the CID of the DAG-CBOR encoding of every field but `id`. */
export interface Envelope<K extends Kind = Kind> extends UnsignedEnvelope<K> {
  /** Ed25519 signature over the canonical encoding of the {@link UnsignedEnvelope}. */
  sig: Uint8Array
  id: Cid
}

/** An envelope of any kind, discriminated on `kind`. */
export type AnyEnvelope = { [K in Kind]: Envelope<K> }[Kind]
