/**
 * The plan document of a thread: one Automerge document per NEED whose content is the thread's
 * signed envelopes, a grow-only map from envelope id (the CID of the envelope's wire bytes) to
 * those bytes. The document carries facts, never trust: a peer folds an entry only after checking
 * that its key is the CID of its bytes, that the bytes decode to a schema-valid envelope of the
 * thread and that the sender's signature verifies — exactly what gossip and envelope sync check.
 *
 * Every follower derives the same document id from the NEED id and starts from the same root
 * change (fixed actor, time 0), so all followers share the root heads and the same `envelopes`
 * map object: entries written by different peers merge instead of competing for one key.
 *
 * @example
 * ```ts
 * await initPlanSyncWasm()
 * const id = planDocumentId('need-…')             // the same on every peer
 * const root = planDocumentRoot('need-…')         // the same bytes on every peer
 * const problem = syncMessageProblem(data, shape, counts, DEFAULT_PLAN_DOC_LIMITS)
 * ```
 */
import { next as A } from '@automerge/automerge/slim'
import { type DocumentId, parseAutomergeUrl, stringifyAutomergeUrl } from '@automerge/automerge-repo/slim'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { cidOfDagCbor, decodeEnvelope, MAX_ENVELOPE_BYTES } from '../core/codec.ts'
import type { AnyEnvelope, Cid } from '../core/types.ts'

/** Version of the plan document layout (part of the id derivation: a new layout is a new document). */
export const PLAN_DOC_VERSION = 1

/** What a plan document holds. */
export interface PlanDoc {
  /** {@link PLAN_DOC_VERSION}. */
  v: number
  /** The thread (NEED id) this document belongs to. */
  thread: string
  /** Envelope id → the envelope's canonical wire bytes (`encodeEnvelope`). Grow-only. */
  envelopes: Record<Cid, Uint8Array>
}

/** What a remote peer can make this peer store in one plan document. */
export interface PlanDocLimits {
  /** Largest entry value, in bytes. @default MAX_ENVELOPE_BYTES (1 MiB + 64 KiB) */
  maxEntryBytes: number
  /** Most entries (envelopes) in one document. @default 20 000 */
  maxEntries: number
  /** Most bytes of entry values in one document. @default 16 MiB */
  maxDocBytes: number
}

/** Defaults of {@link PlanDocLimits}. */
export const DEFAULT_PLAN_DOC_LIMITS: Readonly<PlanDocLimits> = Object.freeze({
  maxEntryBytes: MAX_ENVELOPE_BYTES,
  maxEntries: 20_000,
  maxDocBytes: 16 * 1024 * 1024,
})

const textEncoder = new TextEncoder()
const ROOT_ACTOR = '00'.repeat(16)
/** Chunk type byte of an Automerge document chunk (magic 4 bytes, checksum 4 bytes, then the type). */
const DOCUMENT_CHUNK = 0
const CHUNK_TYPE_OFFSET = 8
/** The bytes every Automerge chunk starts with. */
const CHUNK_MAGIC = [0x85, 0x6f, 0x4a, 0x83]

/** The Automerge document id of a thread's plan document: the same on every peer. */
export function planDocumentId(thread: string): DocumentId {
  const digest = sha256(textEncoder.encode(`can-swarm/plan/${PLAN_DOC_VERSION}\n${thread}`))
  return parseAutomergeUrl(stringifyAutomergeUrl(digest.subarray(0, 16) as never)).documentId
}

/**
 * The deterministic root of a thread's plan document (a saved document of one change: `v`,
 * `thread` and the empty `envelopes` map, by a fixed actor at time 0): the same bytes on every
 * peer, so that every follower starts from the same heads. Needs the Automerge WASM
 * ({@link initPlanSyncWasm}).
 */
export function planDocumentRoot(thread: string): Uint8Array {
  return planDocumentStart(thread).root
}

/** The root of a thread's plan document and its shape, from one Automerge change (what `follow` needs). */
export function planDocumentStart(thread: string): { root: Uint8Array; shape: PlanDocShape } {
  const doc = A.change(A.init<PlanDoc>({ actor: ROOT_ACTOR }), { time: 0 }, (draft) => {
    draft.v = PLAN_DOC_VERSION
    draft.thread = new A.ImmutableString(thread) as unknown as string
    draft.envelopes = {}
  })
  const envelopesObject = A.getObjectId(doc.envelopes)
  if (envelopesObject === null) throw new Error('the plan document root has no envelopes map')
  return { root: A.save(doc), shape: { thread, rootHash: A.getHeads(doc)[0]!, envelopesObject } }
}

/** What a plan document's sync messages are checked against: its root and its `envelopes` map. */
export interface PlanDocShape {
  /** The thread whose envelopes the document holds. */
  thread: string
  /** Hash of the root change ({@link planDocumentRoot}). */
  rootHash: string
  /** Automerge object id of the `envelopes` map. */
  envelopesObject: string
}

/** The {@link PlanDocShape} of a thread's plan document. */
export function planDocumentShape(thread: string): PlanDocShape {
  return planDocumentStart(thread).shape
}

/**
 * Why an entry (key, value) of a plan document is not acceptable, or `undefined` when it is: the
 * value must be bytes within `maxEntryBytes`, the key the CID of those bytes (an envelope id) and,
 * when `thread` is given, the bytes the canonical encoding of a schema-valid envelope of that
 * thread. The signature is checked later, when the entry is folded.
 */
export function entryProblem(
  key: string,
  value: unknown,
  limits: PlanDocLimits,
  thread?: string,
  /** Receives the decoded envelope of a sound entry (with `thread`). */
  decoded?: AnyEnvelope[],
): string | undefined {
  const name = `entry ${key.slice(0, 80)}`
  if (!(value instanceof Uint8Array)) return `${name} is not bytes`
  if (value.length > limits.maxEntryBytes) {
    return `${name} is ${value.length} bytes, over the limit of ${limits.maxEntryBytes}`
  }
  if (cidOfDagCbor(value) !== key) return `${name} is not keyed by the CID of its bytes`
  if (thread === undefined) return undefined
  let env: AnyEnvelope
  try {
    env = decodeEnvelope(value)
  } catch (error) {
    return `${name} is not an envelope (${describe(error)})`
  }
  if (env.thread !== thread) return `${name} belongs to thread ${env.thread.slice(0, 80)}`
  decoded?.push(env)
  return undefined
}

/** How many entries and entry bytes a document holds now. */
export interface PlanDocCounts {
  entries: number
  bytes: number
}

/**
 * Checks the changes an Automerge sync message carries for a plan document BEFORE they are
 * applied: besides the shared root, every operation must put one new entry (no overwrite, no
 * delete, nothing outside the `envelopes` map) that passes {@link entryProblem} for the document's
 * thread (so only schema-valid envelopes of the thread are ever stored), and the document
 * must stay within the entry and byte limits. Returns why the message is refused, or `undefined`.
 * Needs the Automerge WASM.
 */
export function syncMessageProblem(
  data: Uint8Array,
  shape: PlanDocShape,
  counts: PlanDocCounts,
  limits: PlanDocLimits,
  /** Receives the envelope of every entry the message adds (their signatures are the caller's to check). */
  entriesOut?: AnyEnvelope[],
): string | undefined {
  let chunks: Uint8Array[]
  try {
    chunks = A.decodeSyncMessage(data).changes
  } catch (error) {
    return `not an Automerge sync message (${describe(error)})`
  }
  let entries = counts.entries
  let bytes = counts.bytes
  // Automerge never sends a chunk or a change twice in one message; a message that does would make
  // this inspection (~170 ns and ~32 bytes of heap per byte of change) and the repo redo the work.
  const seenChunks = new Set<string>()
  const seenChanges = new Set<string>()
  for (const chunk of chunks) {
    if (!isOneChunk(chunk)) return 'a change is not one Automerge chunk'
    const digest = bytesToHex(sha256(chunk))
    if (seenChunks.has(digest)) return 'the message carries the same chunk twice'
    seenChunks.add(digest)
    let changes: ReturnType<typeof A.decodeChange>[]
    try {
      changes = chunk[CHUNK_TYPE_OFFSET] === DOCUMENT_CHUNK ? documentChanges(chunk) : [A.decodeChange(chunk)]
    } catch (error) {
      return `undecodable change (${describe(error)})`
    }
    for (const change of changes) {
      if (seenChanges.has(change.hash)) return `the message carries change ${change.hash.slice(0, 12)} twice`
      seenChanges.add(change.hash)
      if (change.hash === shape.rootHash) continue
      for (const op of change.ops) {
        const raw = op as { action: string; obj: string; key?: string; insert?: boolean; value?: unknown }
        if (
          raw.action !== 'set' ||
          raw.obj !== shape.envelopesObject ||
          typeof raw.key !== 'string' ||
          raw.insert
        ) {
          return `change ${change.hash.slice(0, 12)} does more than put envelope entries (${raw.action} on ${raw.obj})`
        }
        if (op.pred.length > 0)
          return `change ${change.hash.slice(0, 12)} overwrites entry ${raw.key.slice(0, 80)}`
        if (!Array.isArray(raw.value) || op.datatype !== undefined) {
          return `entry ${raw.key.slice(0, 80)} is not bytes`
        }
        if (raw.value.length > limits.maxEntryBytes) {
          return `entry ${raw.key.slice(0, 80)} is ${raw.value.length} bytes, over the limit of ${limits.maxEntryBytes}`
        }
        const problem = entryProblem(
          raw.key,
          Uint8Array.from(raw.value as number[]),
          limits,
          shape.thread,
          entriesOut,
        )
        if (problem !== undefined) return problem
        entries += 1
        bytes += raw.value.length
        if (entries > limits.maxEntries) return `the document would exceed ${limits.maxEntries} entries`
        if (bytes > limits.maxDocBytes) return `the document would exceed ${limits.maxDocBytes} bytes`
      }
    }
  }
  return undefined
}

/** The changes of a whole-document chunk, decoded (its scratch document freed at once). */
function documentChanges(chunk: Uint8Array): ReturnType<typeof A.decodeChange>[] {
  const doc = A.load(chunk, { allowMissingChanges: true })
  try {
    return A.getAllChanges(doc).map((change) => A.decodeChange(change))
  } finally {
    A.free(doc)
  }
}

/**
 * Whether `bytes` are exactly one Automerge chunk: magic, checksum, type, LEB128 length, contents.
 * A sync message carries each change, or the whole document, as one chunk; Automerge would load
 * several concatenated ones one after the other (a megabyte of copies of a small document costs it
 * ~0.1 s), and nothing that honest peers send looks like that.
 */
function isOneChunk(bytes: Uint8Array): boolean {
  for (let i = 0; i < CHUNK_MAGIC.length; i += 1) if (bytes[i] !== CHUNK_MAGIC[i]) return false
  let length = 0
  let position = CHUNK_TYPE_OFFSET + 1
  for (let shift = 0; ; shift += 7) {
    if (position >= bytes.length || shift > 28) return false
    const byte = bytes[position]!
    position += 1
    length += (byte & 0x7f) * 2 ** shift
    if (byte < 0x80) break
  }
  return position + length === bytes.length
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
