/**
 * Both ends of envelope sync's range-based reconciliation, independent of the transport (sync.ts
 * carries them over libp2p; tests call them directly):
 * - {@link answerSyncRequest}: what a server answers to one request from its {@link SyncIndex},
 *   with bounded work (at most {@link MAX_RANGES_PER_REQUEST} ranges, each located in
 *   O(log n) and fingerprinted in O(log n + CHUNK_ITEMS); pages walk the index from a position)
 *   and a bounded answer (a page budget in bytes and envelopes);
 * - {@link reconcile}: the puller's loop, which compares fingerprints range by range, fetches what
 *   it lacks and hands it over in the set's order, page by page.
 *
 * @example
 * ```ts
 * const response = answerSyncRequest(serverIndex, request, encodeEnvelope)
 * const report = await reconcile({ index, exchange, decode: decodeEnvelope, deliver })
 * ```
 */
import { MalformedEnvelopeError } from '../core/errors.ts'
import {
  DEFAULT_PAGE_BYTES,
  LEAF_ITEMS,
  MAX_IDS_PER_REQUEST,
  MAX_PAGE_ENVELOPES,
  MAX_RANGES_PER_REQUEST,
  MAX_SYNC_REQUEST_BYTES,
  type RangeAnswer,
  SPLIT_PARTS,
  type SyncRange,
  SyncRefusedError,
  type SyncRequest,
  type SyncResponse,
} from './protocol.ts'
import { compareKeys, type SyncIndex, type SyncKeyed, sameFingerprint } from './sync-index.ts'

/** Bytes a bound takes on the wire, at most (strings, their headers, the lamport, the array). */
function boundBytes(key: SyncKeyed | null): number {
  return key === null ? 1 : key.thread.length + key.sender.length + key.id.length + 20
}

const FINGERPRINT_WIRE_BYTES = 45 // count (≤ 9) + 32-byte string (2 + 32) + array header

function keyOf(item: SyncKeyed): SyncKeyed {
  return { thread: item.thread, lamport: item.lamport, sender: item.sender, id: item.id }
}

/**
 * Answers one request from `index`. `encode` gives an item's wire bytes (an envelope's canonical
 * DAG-CBOR). A page ends once its envelopes pass `pageBytes` (it holds at least one).
 */
export function answerSyncRequest<T extends SyncKeyed>(
  index: SyncIndex<T>,
  request: SyncRequest,
  encode: (item: T) => Uint8Array,
  options: { pageBytes?: number } = {},
): SyncResponse {
  const pageBytes = options.pageBytes ?? DEFAULT_PAGE_BYTES
  switch (request.op) {
    case 'ranges': {
      const answers: RangeAnswer[] = []
      let bytes = 0
      for (const range of request.ranges) {
        if (answers.length > 0 && bytes >= pageBytes) break
        const from = index.position(range.lo)
        const to = index.position(range.hi, true)
        const mine = index.fingerprint(from, to)
        if (sameFingerprint(mine, range)) {
          answers.push({ kind: 'equal' })
          bytes += 2
        } else if (mine.count <= LEAF_ITEMS) {
          const ids = [...index.slice(from, to)].map((item) => item.id)
          answers.push({ kind: 'items', ids })
          bytes += 4 + ids.reduce((sum, id) => sum + id.length + 2, 0)
        } else {
          const parts: Array<{ lo: SyncKeyed | null; count: number; sum: Uint8Array }> = []
          for (let part = 0; part < SPLIT_PARTS; part += 1) {
            const start = from + Math.floor((part * mine.count) / SPLIT_PARTS)
            const end = from + Math.floor(((part + 1) * mine.count) / SPLIT_PARTS)
            const lo = part === 0 ? null : keyOf(index.at(start))
            parts.push({ lo, ...index.fingerprint(start, end) })
            bytes += boundBytes(lo) + FINGERPRINT_WIRE_BYTES
          }
          answers.push({ kind: 'split', parts })
        }
      }
      return { op: 'ranges', answers }
    }
    case 'get': {
      const envelopes: Uint8Array[] = []
      let bytes = 0
      let consumed = 0
      for (const id of request.ids) {
        if (envelopes.length >= MAX_PAGE_ENVELOPES || (envelopes.length > 0 && bytes >= pageBytes)) break
        consumed += 1
        const item = index.get(id)
        if (item === undefined) continue
        const encoded = encode(item)
        envelopes.push(encoded)
        bytes += encoded.length
      }
      return { op: 'get', envelopes, consumed }
    }
    case 'scan': {
      const envelopes: Uint8Array[] = []
      let bytes = 0
      const from = index.position(request.lo)
      const to = index.position(request.hi, true)
      let next: SyncKeyed | null = null
      for (const item of index.slice(from, to)) {
        if (envelopes.length >= MAX_PAGE_ENVELOPES || (envelopes.length > 0 && bytes >= pageBytes)) {
          next = keyOf(item)
          break
        }
        const encoded = encode(item)
        envelopes.push(encoded)
        bytes += encoded.length
      }
      return { op: 'scan', envelopes, next }
    }
  }
}

/** What a puller asks a server: one request, its answer (refusals thrown as `SyncRefusedError`). */
export type SyncExchange = (request: SyncRequest) => Promise<SyncResponse>

export interface ReconcileOptions<T extends SyncKeyed> {
  /** What the puller holds (it grows as `deliver` takes items in, if `deliver` adds them). */
  index: SyncIndex<T>
  exchange: SyncExchange
  /** Wire bytes → item; throws on anything invalid (envelopes: `decodeEnvelope`). */
  decode(bytes: Uint8Array): T
  /**
   * Takes a page of items the puller lacked, in the set's order (thread, then total order). It
   * verifies them (sync carries signed facts, never trust).
   */
  deliver(items: T[]): Promise<void>
  /** Ids held elsewhere (pending, refused): not fetched again. */
  holds?(id: string): boolean
  /** Reconcile only these ranges (e.g. a thread's: {@link threadRange}). @default the whole set */
  ranges?: SyncRange[]
  /** Most requests; the rest waits for the next pull. @default 4 096 */
  maxRequests?: number
}

export interface ReconcileReport {
  /** Requests sent. */
  requests: number
  /** Items received and handed to `deliver`. */
  delivered: number
  /** Whether every range was reconciled (false: `maxRequests` ran out first). */
  complete: boolean
}

/** A part where the server holds this many times what the puller does (or more) is scanned whole. */
export const SCAN_RATIO = 8

/** Deepest split a puller follows: 16^12 items is far beyond any set. */
export const MAX_SPLIT_DEPTH = 12

/** The range of one thread's envelopes. */
export function threadRange(thread: string): SyncRange {
  // `thread + '\0'` is the smallest string after every key of the thread.
  return {
    lo: { thread, lamport: 0, sender: '', id: '' },
    hi: { thread: `${thread}\0`, lamport: 0, sender: '', id: '' },
  }
}

type Work =
  | { kind: 'range'; lo: SyncKeyed | null; hi: SyncKeyed | null; depth: number }
  | { kind: 'scan'; lo: SyncKeyed | null; hi: SyncKeyed | null }
  | { kind: 'fetch'; ids: string[] }

function violation(message: string, field: string): never {
  throw new MalformedEnvelopeError(`sync: the server ${message}`, field)
}

function before(a: SyncKeyed | null, b: SyncKeyed | null): boolean {
  return a === null || b === null || compareKeys(a, b) < 0
}

/**
 * Pulls what a server holds and `index` lacks, range by range, and hands it to `deliver` in the
 * set's order. Throws `SyncRefusedError` when the server refuses, `MalformedEnvelopeError` when it
 * answers outside the protocol; what was delivered before stays delivered.
 */
export async function reconcile<T extends SyncKeyed>(options: ReconcileOptions<T>): Promise<ReconcileReport> {
  const { index } = options
  const maxRequests = options.maxRequests ?? 4096
  const lacks = (id: string): boolean => !index.has(id) && !options.holds?.(id)
  const local = (lo: SyncKeyed | null, hi: SyncKeyed | null) =>
    index.fingerprint(index.position(lo), index.position(hi, true))
  const work: Work[] = (options.ranges ?? [{ lo: null, hi: null }]).map((range) =>
    local(range.lo, range.hi).count === 0
      ? { kind: 'scan', ...range }
      : { kind: 'range', ...range, depth: 0 },
  )
  const report: ReconcileReport = { requests: 0, delivered: 0, complete: false }
  const ask = async (request: SyncRequest): Promise<SyncResponse> => {
    report.requests += 1
    const response = await options.exchange(request)
    if (response.op === 'refused')
      throw new SyncRefusedError(response.reason, response.retryMs, response.field)
    if (response.op !== request.op) violation(`answered ${request.op} with ${response.op}`, 'op')
    return response
  }
  // A page is handed over while the next is asked for (pages are disjoint ranges, so what is
  // asked next does not depend on it); at most one is being handed over at a time.
  let delivering: Promise<void> = Promise.resolve()
  const hand = async (items: T[]): Promise<void> => {
    await delivering
    const fresh = items.filter((item) => lacks(item.id))
    if (fresh.length === 0) return
    report.delivered += fresh.length
    delivering = options.deliver(fresh)
    delivering.catch(() => undefined) // awaited before the next page and at the end
  }
  const finish = async (): Promise<ReconcileReport> => {
    await delivering
    return report
  }

  while (work.length > 0) {
    if (report.requests >= maxRequests) return finish()
    const head = work[0]!
    if (head.kind === 'fetch') {
      // Ids of the fetches at the head, in order (they precede every range still open).
      const ids: string[] = []
      for (const entry of work) {
        if (entry.kind !== 'fetch') break
        ids.push(...entry.ids.slice(0, MAX_IDS_PER_REQUEST - ids.length))
        if (ids.length >= MAX_IDS_PER_REQUEST) break
      }
      const response = await ask({ op: 'get', ids })
      if (response.op !== 'get') return finish()
      if (response.consumed < 1 || response.consumed > ids.length)
        violation('consumed no id or too many', 'consumed')
      const asked = new Set(ids.slice(0, response.consumed))
      const items = response.envelopes.map((bytes) => options.decode(bytes))
      if (items.some((item) => !asked.delete(item.id)))
        violation('sent an envelope not asked for', 'envelopes')
      await hand(items)
      let left = response.consumed
      while (left > 0) {
        const entry = work[0] as Extract<Work, { kind: 'fetch' }>
        const taken = Math.min(left, entry.ids.length)
        entry.ids.splice(0, taken)
        left -= taken
        if (entry.ids.length === 0) work.shift()
      }
    } else if (head.kind === 'scan') {
      // Scans of adjacent ranges (parts of one split) go as one.
      for (
        let next = work[1];
        next?.kind === 'scan' && head.hi !== null && next.lo !== null;
        next = work[1]
      ) {
        if (compareKeys(head.hi, next.lo) !== 0) break
        head.hi = next.hi
        work.splice(1, 1)
      }
      const response = await ask({ op: 'scan', lo: head.lo, hi: head.hi })
      if (response.op !== 'scan') return finish()
      const items = response.envelopes.map((bytes) => options.decode(bytes))
      // In order, within the range, and the cursor after the page: every page moves it on.
      const keys = [...items, ...(response.next ? [response.next] : [])]
      for (const [i, key] of keys.entries()) {
        const after = i === 0 ? head.lo === null || compareKeys(head.lo, key) <= 0 : before(keys[i - 1]!, key)
        if (!after || !before(key, head.hi))
          violation('answered a scan out of order or out of its range', 'envelopes')
      }
      await hand(items)
      if (response.next === null) work.shift()
      else if (items.length === 0) violation('answered a scan with an empty page', 'envelopes')
      else head.lo = response.next
    } else {
      const at: number[] = []
      let bytes = 64
      for (let i = 0; i < work.length && at.length < MAX_RANGES_PER_REQUEST; i += 1) {
        const entry = work[i]!
        if (entry.kind !== 'range') continue
        bytes += boundBytes(entry.lo) + boundBytes(entry.hi) + FINGERPRINT_WIRE_BYTES
        if (bytes > MAX_SYNC_REQUEST_BYTES) break
        at.push(i)
      }
      const asked = at.map((i) => work[i] as Extract<Work, { kind: 'range' }>)
      const response = await ask({
        op: 'ranges',
        ranges: asked.map((range) => ({ lo: range.lo, hi: range.hi, ...local(range.lo, range.hi) })),
      })
      if (response.op !== 'ranges') return finish()
      if (response.answers.length < 1 || response.answers.length > asked.length)
        violation('answered no range or too many', 'answers')
      for (let k = response.answers.length - 1; k >= 0; k -= 1) {
        work.splice(at[k]!, 1, ...follow(asked[k]!, response.answers[k]!, `answers.${k}`))
      }
    }
  }
  report.complete = true
  return finish()

  /** What is left to do about a range after the server's answer. */
  function follow(range: Extract<Work, { kind: 'range' }>, answer: RangeAnswer, field: string): Work[] {
    if (answer.kind === 'equal') return []
    if (answer.kind === 'items') {
      const ids = answer.ids.filter(lacks)
      return ids.length === 0 ? [] : [{ kind: 'fetch', ids }]
    }
    if (range.depth >= MAX_SPLIT_DEPTH) violation(`split deeper than ${MAX_SPLIT_DEPTH}`, field)
    const parts = answer.parts
    if (!before(range.lo, parts[1]!.lo) || !before(parts.at(-1)!.lo, range.hi))
      violation('split a range at a bound outside it', field)
    const next: Work[] = []
    for (const [i, part] of parts.entries()) {
      const lo = i === 0 ? range.lo : part.lo
      const hi = i + 1 < parts.length ? parts[i + 1]!.lo : range.hi
      if (part.count === 0) continue
      const mine = local(lo, hi)
      if (sameFingerprint(mine, part)) continue
      // Holding nothing there, or little of much: the range is read whole (what is held comes
      // again, at most an eighth of it); otherwise it is compared again, part by part.
      next.push(
        mine.count * SCAN_RATIO <= part.count
          ? { kind: 'scan', lo, hi }
          : { kind: 'range', lo, hi, depth: range.depth + 1 },
      )
    }
    return next
  }
}
