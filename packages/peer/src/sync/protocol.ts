/**
 * Envelope sync (`/can-swarm/sync/2.0.0`, docs/PROTOCOL.md §7.6): pull-based anti-entropy by
 * range-based set reconciliation. Gossip delivers what is published while peers are connected; sync
 * fills in what one side missed — a partition, a restart, a late join.
 *
 * Both sides keep their envelopes in one ordered set (thread, then lamport, sender, id; see
 * sync-index.ts) with a fingerprint per range (count, and the sum of SHA-256(id) mod 2^256). The
 * puller opens one stream per session and sends requests one at a time:
 * - `ranges`: up to {@link MAX_RANGES_PER_REQUEST} ranges, each with the puller's fingerprint. The
 *   server answers each: `equal`; its ids when it holds at most {@link LEAF_ITEMS} there; else a
 *   `split` into {@link SPLIT_PARTS} parts of equal count, each with its fingerprint, for the puller
 *   to compare and ask again about the parts that differ;
 * - `get`: up to {@link MAX_IDS_PER_REQUEST} ids; the envelopes, in the order asked;
 * - `scan`: a range the puller holds nothing of; the envelopes in order from its start, a page at a
 *   time, with the cursor to continue from.
 *
 * Every message is bounded whatever either side holds: requests by entries and bytes, answers by a
 * page budget in bytes and envelopes. Receivers verify every envelope as they would from gossip:
 * sync carries signed facts, never trust. The server may refuse a request (`rate`, `busy`,
 * `malformed`) instead of answering it.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { checkCborBudget } from '../core/cbor-budget.ts'
import { MAX_CID_CHARS } from '../core/codec.ts'
import { CanSwarmError, MalformedEnvelopeError } from '../core/errors.ts'
import { MAX_LAMPORT } from '../core/types.ts'
import type { Fingerprint, SyncKeyed } from './sync-index.ts'

export const SYNC_PROTOCOL = '/can-swarm/sync/2.0.0'
/** Largest frame either way, in bytes (the length-prefix limit and the read buffer of a stream). */
export const MAX_SYNC_MESSAGE_BYTES = 4 * 1024 * 1024
/** Largest request, in bytes. */
export const MAX_SYNC_REQUEST_BYTES = 128 * 1024
/**
 * Envelope bytes after which the server ends a page (default; a page holds at least one envelope,
 * so a page is below this plus one envelope).
 */
export const DEFAULT_PAGE_BYTES = 1024 * 1024
/** Most envelopes in one page. */
export const MAX_PAGE_ENVELOPES = 512
/** Most ranges in one `ranges` request (and answers in its response). */
export const MAX_RANGES_PER_REQUEST = 128
/** Most ids in one `get` request. */
export const MAX_IDS_PER_REQUEST = 512
/** A range the server holds at most this many items of is answered with their ids. */
export const LEAF_ITEMS = 32
/** Parts a range is split into. */
export const SPLIT_PARTS = 16
/** Longest string in a range bound (a thread id plus one character bounds a thread). */
export const MAX_BOUND_CHARS = MAX_CID_CHARS + 1
/** Bytes of a fingerprint's sum. */
export const FINGERPRINT_BYTES = 32

/** A range [lo, hi) of the ordered set; `null` is the start (lo) or the end (hi). */
export interface SyncRange {
  lo: SyncKeyed | null
  hi: SyncKeyed | null
}

export type SyncRequest =
  | { op: 'ranges'; ranges: Array<SyncRange & Fingerprint> }
  | { op: 'get'; ids: string[] }
  | ({ op: 'scan' } & SyncRange)

export type RangeAnswer =
  | { kind: 'equal' }
  | { kind: 'items'; ids: string[] }
  /** Parts in order; each runs from its `lo` (the first from the range's) to the next part's. */
  | { kind: 'split'; parts: Array<{ lo: SyncKeyed | null } & Fingerprint> }

/** Why a server refused a request. */
export type SyncRefusal = 'rate' | 'busy' | 'malformed'

export type SyncResponse =
  /** One answer per range asked, in order; fewer when the page filled up (ask again for the rest). */
  | { op: 'ranges'; answers: RangeAnswer[] }
  /** Envelopes of the first `consumed` ids asked (ids the server lacks are skipped). */
  | { op: 'get'; envelopes: Uint8Array[]; consumed: number }
  /** Envelopes of the range from its start, in order; `next` is where the rest starts. */
  | { op: 'scan'; envelopes: Uint8Array[]; next: SyncKeyed | null }
  | { op: 'refused'; reason: SyncRefusal; retryMs: number; field?: string }

/** A sync server refused a request: `reason` says why, `retryMs` when asking again may succeed. */
export class SyncRefusedError extends CanSwarmError {
  readonly reason: SyncRefusal
  readonly retryMs: number
  constructor(reason: SyncRefusal, retryMs: number, field?: string) {
    super(
      'SYNC_REFUSED',
      reason === 'rate'
        ? `sync: the server refused the request (rate limit); ask again in ${retryMs} ms`
        : reason === 'busy'
          ? 'sync: the server has no session free for this peer; pull again later'
          : `sync: the server refused the request as malformed${field ? ` (${field})` : ''}`,
      field,
    )
    this.name = 'SyncRefusedError'
    this.reason = reason
    this.retryMs = retryMs
  }
}

const REFUSALS: readonly SyncRefusal[] = ['rate', 'busy', 'malformed']

// CBOR budgets: the most items a valid message can hold, computed from the limits above.
const KEY_ITEMS = 5 // [thread, lamport, sender, id]
const RANGE_ITEMS = 1 + 2 * KEY_ITEMS + 2 // [lo, hi, count, sum]
const REQUEST_BUDGET = {
  maxItems: 8 + Math.max(MAX_RANGES_PER_REQUEST * RANGE_ITEMS, MAX_IDS_PER_REQUEST, 2 * KEY_ITEMS),
  maxDepth: 4, // map → ranges → range → key
}
const PART_ITEMS = 1 + KEY_ITEMS + 2 // [lo, count, sum]
const ANSWER_ITEMS = 3 + Math.max(SPLIT_PARTS * PART_ITEMS, LEAF_ITEMS)
const RESPONSE_BUDGET = {
  maxItems: 16 + Math.max(MAX_RANGES_PER_REQUEST * ANSWER_ITEMS, MAX_PAGE_ENVELOPES + KEY_ITEMS),
  maxDepth: 6, // map → answers → answer → parts → part → key
}

function fail(message: string, field: string): never {
  throw new MalformedEnvelopeError(`sync: ${message}`, field)
}

/** Decodes a message (a map) of at most `maxBytes` within its CBOR budget, refusing as `field`. */
function decodeMap(
  bytes: Uint8Array,
  maxBytes: number,
  budget: typeof REQUEST_BUDGET,
  field: string,
): Record<string, unknown> {
  if (bytes.length > maxBytes) fail(`a ${field} is at most ${maxBytes} bytes (got ${bytes.length})`, field)
  checkCborBudget(bytes, budget, field)
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (error) {
    fail(`not DAG-CBOR (${(error as Error).message})`, field)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    fail('a message must be a map', field)
  return value as Record<string, unknown>
}

function isCount(value: unknown, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max
}

function isText(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length <= max
}

function encodeKey(key: SyncKeyed | null): unknown {
  return key === null ? null : [key.thread, key.lamport, key.sender, key.id]
}

function decodeKey(value: unknown, field: string): SyncKeyed | null {
  if (value === null) return null
  if (
    !Array.isArray(value) ||
    value.length !== 4 ||
    !isText(value[0], MAX_BOUND_CHARS) ||
    !isCount(value[1], MAX_LAMPORT) ||
    !isText(value[2], MAX_BOUND_CHARS) ||
    !isText(value[3], MAX_BOUND_CHARS)
  ) {
    fail('a bound is null or [thread, lamport, sender, id]', field)
  }
  return { thread: value[0], lamport: value[1], sender: value[2], id: value[3] }
}

function keyBefore(a: SyncKeyed, b: SyncKeyed): boolean {
  if (a.thread !== b.thread) return a.thread < b.thread
  if (a.lamport !== b.lamport) return a.lamport < b.lamport
  if (a.sender !== b.sender) return a.sender < b.sender
  return a.id < b.id
}

function decodeRange(lo: unknown, hi: unknown, field: string): SyncRange {
  const range = { lo: decodeKey(lo, `${field}.lo`), hi: decodeKey(hi, `${field}.hi`) }
  if (range.lo !== null && range.hi !== null && !keyBefore(range.lo, range.hi))
    fail('a range must start before it ends', field)
  return range
}

function decodeSum(value: unknown, field: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== FINGERPRINT_BYTES)
    fail(`a fingerprint is ${FINGERPRINT_BYTES} bytes`, field)
  return value
}

function decodeIds(value: unknown, max: number, field: string, min = 0): string[] {
  if (!Array.isArray(value) || value.length < min || value.length > max)
    fail(`expected ${min} to ${max} ids`, field)
  for (const [index, id] of value.entries())
    if (!isText(id, MAX_CID_CHARS) || id.length === 0) fail('an id is a CID string', `${field}.${index}`)
  return value as string[]
}

function decodeEnvelopeList(value: unknown, field: string): Uint8Array[] {
  if (!Array.isArray(value) || value.length > MAX_PAGE_ENVELOPES)
    fail(`a page holds at most ${MAX_PAGE_ENVELOPES} envelopes`, field)
  for (const [index, item] of value.entries())
    if (!(item instanceof Uint8Array)) fail('each envelope must be bytes', `${field}.${index}`)
  return value as Uint8Array[]
}

export function encodeSyncRequest(request: SyncRequest): Uint8Array {
  switch (request.op) {
    case 'ranges':
      return dagCbor.encode({
        op: 'ranges',
        ranges: request.ranges.map((r) => [encodeKey(r.lo), encodeKey(r.hi), r.count, r.sum]),
      })
    case 'get':
      return dagCbor.encode({ op: 'get', ids: request.ids })
    case 'scan':
      return dagCbor.encode({ op: 'scan', lo: encodeKey(request.lo), hi: encodeKey(request.hi) })
  }
}

/** @throws {MalformedEnvelopeError} naming the offending field, for anything but a valid request. */
export function decodeSyncRequest(bytes: Uint8Array): SyncRequest {
  const value = decodeMap(bytes, MAX_SYNC_REQUEST_BYTES, REQUEST_BUDGET, 'request')
  switch (value.op) {
    case 'ranges': {
      const ranges = value.ranges
      if (!Array.isArray(ranges) || ranges.length === 0 || ranges.length > MAX_RANGES_PER_REQUEST)
        fail(`expected 1 to ${MAX_RANGES_PER_REQUEST} ranges`, 'ranges')
      return {
        op: 'ranges',
        ranges: ranges.map((item, index) => {
          const field = `ranges.${index}`
          if (!Array.isArray(item) || item.length !== 4) fail('a range is [lo, hi, count, sum]', field)
          if (!isCount(item[2])) fail('a count is a natural number', `${field}.count`)
          return {
            ...decodeRange(item[0], item[1], field),
            count: item[2],
            sum: decodeSum(item[3], `${field}.sum`),
          }
        }),
      }
    }
    case 'get':
      return { op: 'get', ids: decodeIds(value.ids, MAX_IDS_PER_REQUEST, 'ids', 1) }
    case 'scan':
      return { op: 'scan', ...decodeRange(value.lo, value.hi, 'scan') }
    default:
      return fail('op must be ranges, get or scan', 'op')
  }
}

function encodeAnswer(answer: RangeAnswer): unknown {
  switch (answer.kind) {
    case 'equal':
      return [0]
    case 'items':
      return [1, answer.ids]
    case 'split':
      return [2, answer.parts.map((part) => [encodeKey(part.lo), part.count, part.sum])]
  }
}

export function encodeSyncResponse(response: SyncResponse): Uint8Array {
  switch (response.op) {
    case 'ranges':
      return dagCbor.encode({ op: 'ranges', answers: response.answers.map(encodeAnswer) })
    case 'get':
      return dagCbor.encode({ op: 'get', envelopes: response.envelopes, consumed: response.consumed })
    case 'scan':
      return dagCbor.encode({ op: 'scan', envelopes: response.envelopes, next: encodeKey(response.next) })
    case 'refused':
      return dagCbor.encode({
        op: 'refused',
        reason: response.reason,
        retryMs: response.retryMs,
        ...(response.field === undefined ? {} : { field: response.field }),
      })
  }
}

function decodeAnswer(value: unknown, field: string): RangeAnswer {
  if (!Array.isArray(value) || value.length === 0) fail('an answer is [kind, …]', field)
  if (value[0] === 0 && value.length === 1) return { kind: 'equal' }
  if (value[0] === 1 && value.length === 2)
    return { kind: 'items', ids: decodeIds(value[1], LEAF_ITEMS, `${field}.ids`) }
  if (value[0] === 2 && value.length === 2) {
    const parts = value[1]
    if (!Array.isArray(parts) || parts.length < 2 || parts.length > SPLIT_PARTS)
      fail(`a split has 2 to ${SPLIT_PARTS} parts`, `${field}.parts`)
    let previous: SyncKeyed | null = null
    return {
      kind: 'split',
      parts: parts.map((part, index) => {
        const at = `${field}.parts.${index}`
        if (!Array.isArray(part) || part.length !== 3) fail('a part is [lo, count, sum]', at)
        const lo = decodeKey(part[0], `${at}.lo`)
        // The first part starts where the range does; every later one after the one before.
        if ((index === 0) !== (lo === null) || (lo !== null && previous !== null && !keyBefore(previous, lo)))
          fail('parts must start in increasing order, the first at the range', at)
        if (lo !== null) previous = lo
        if (!isCount(part[1])) fail('a count is a natural number', `${at}.count`)
        return { lo, count: part[1], sum: decodeSum(part[2], `${at}.sum`) }
      }),
    }
  }
  return fail('an answer is [0], [1, ids] or [2, parts]', field)
}

/** @throws {MalformedEnvelopeError} naming the offending field, for anything but a valid response. */
export function decodeSyncResponse(bytes: Uint8Array): SyncResponse {
  const value = decodeMap(bytes, MAX_SYNC_MESSAGE_BYTES, RESPONSE_BUDGET, 'response')
  switch (value.op) {
    case 'ranges': {
      const answers = value.answers
      if (!Array.isArray(answers) || answers.length > MAX_RANGES_PER_REQUEST)
        fail(`at most ${MAX_RANGES_PER_REQUEST} answers`, 'answers')
      return {
        op: 'ranges',
        answers: answers.map((answer, index) => decodeAnswer(answer, `answers.${index}`)),
      }
    }
    case 'get':
      if (!isCount(value.consumed, MAX_IDS_PER_REQUEST)) fail('consumed counts ids asked', 'consumed')
      return {
        op: 'get',
        envelopes: decodeEnvelopeList(value.envelopes, 'envelopes'),
        consumed: value.consumed,
      }
    case 'scan':
      return {
        op: 'scan',
        envelopes: decodeEnvelopeList(value.envelopes, 'envelopes'),
        next: decodeKey(value.next, 'next'),
      }
    case 'refused': {
      const reason = value.reason as SyncRefusal
      if (!REFUSALS.includes(reason)) fail(`reason must be one of ${REFUSALS.join(', ')}`, 'reason')
      if (!isCount(value.retryMs, 3_600_000)) fail('retryMs is a number of milliseconds', 'retryMs')
      if (value.field !== undefined && !isText(value.field, 256)) fail('field names a field', 'field')
      return {
        op: 'refused',
        reason,
        retryMs: value.retryMs,
        ...(value.field === undefined ? {} : { field: value.field as string }),
      }
    }
    default:
      return fail('op must be ranges, get, scan or refused', 'op')
  }
}
