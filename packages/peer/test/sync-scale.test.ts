/**
 * Envelope sync at scale, below the network (docs/PROTOCOL.md §7.6): the fingerprinted index, the
 * wire codecs and their budgets, and range-based reconciliation between two indexes through the
 * real encoders and decoders — random sets across random threads reconcile to their union in a
 * bounded number of requests, and a late joiner and a healing peer catch up past 100 000 items
 * with every request below the same byte bound whatever either side holds. Items here are keys
 * without signatures (tests/sync-net.test.ts runs signed envelopes over libp2p).
 */
import * as dagCbor from '@ipld/dag-cbor'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MalformedEnvelopeError } from '../src/core/errors.ts'
import {
  decodeSyncRequest,
  decodeSyncResponse,
  encodeSyncRequest,
  encodeSyncResponse,
  LEAF_ITEMS,
  MAX_IDS_PER_REQUEST,
  MAX_PAGE_ENVELOPES,
  MAX_RANGES_PER_REQUEST,
  MAX_SYNC_REQUEST_BYTES,
  type SyncRequest,
  type SyncResponse,
} from '../src/sync/protocol.ts'
import { answerSyncRequest, type ReconcileReport, reconcile, threadRange } from '../src/sync/reconcile.ts'
import { compareKeys, SyncIndex, type SyncKeyed, sameFingerprint } from '../src/sync/sync-index.ts'

interface Item extends SyncKeyed {}

const encodeItem = (item: Item): Uint8Array =>
  dagCbor.encode([item.thread, item.lamport, item.sender, item.id])
const decodeItem = (bytes: Uint8Array): Item => {
  const [thread, lamport, sender, id] = dagCbor.decode<[string, number, string, string]>(bytes)
  return { thread, lamport, sender, id }
}

/** A deterministic item: thread `t`, lamport `l`, sender `s`, and an id naming all three and `n`. */
function item(t: number, l: number, s: number, n = 0): Item {
  return {
    thread: `bafythread${t.toString(36).padStart(6, '0')}`,
    lamport: l,
    sender: `did:key:z6Mk${s.toString(36).padStart(4, '0')}`,
    id: `bafyid${t}-${l}-${s}-${n}`,
  }
}

function indexOf(items: Iterable<Item>): SyncIndex<Item> {
  const index = new SyncIndex<Item>()
  for (const one of items) index.add(one)
  return index
}

interface Traffic {
  requests: number
  maxRequestBytes: number
  maxResponseBytes: number
}

/** Pulls from `server` into `local` through the real codecs, recording what crossed. */
async function pull(
  local: SyncIndex<Item>,
  server: SyncIndex<Item>,
  options: { ranges?: ReturnType<typeof threadRange>[]; pageBytes?: number } = {},
): Promise<ReconcileReport & Traffic> {
  const traffic: Traffic = { requests: 0, maxRequestBytes: 0, maxResponseBytes: 0 }
  const delivered: Item[][] = []
  const report = await reconcile<Item>({
    index: local,
    decode: decodeItem,
    async exchange(request) {
      const bytes = encodeSyncRequest(request)
      traffic.requests += 1
      traffic.maxRequestBytes = Math.max(traffic.maxRequestBytes, bytes.length)
      const answer = encodeSyncResponse(
        answerSyncRequest(server, decodeSyncRequest(bytes), encodeItem, {
          ...(options.pageBytes ? { pageBytes: options.pageBytes } : {}),
        }),
      )
      traffic.maxResponseBytes = Math.max(traffic.maxResponseBytes, answer.length)
      return decodeSyncResponse(answer)
    },
    async deliver(items) {
      delivered.push(items)
      for (const one of items) local.add(one)
    },
    ...(options.ranges ? { ranges: options.ranges } : {}),
  })
  // Pages arrive in the set's order, each after the one before.
  const flat = delivered.flat()
  for (let i = 1; i < flat.length; i += 1) expect(compareKeys(flat[i - 1]!, flat[i]!)).toBeLessThan(0)
  return { ...report, ...traffic }
}

function ids(index: SyncIndex<Item>): string[] {
  return [...index.slice(0, index.size)].map((one) => one.id)
}

describe('the sync index', () => {
  it('keeps items in order and fingerprints any range like a plain sum', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.nat(20), fc.nat(50), fc.nat(4)), {
          maxLength: 700,
          selector: (t) => t.join(),
        }),
        fc.nat(),
        fc.nat(),
        (tuples, a, b) => {
          const items = tuples.map(([t, l, s]) => item(t, l, s))
          const index = indexOf(items)
          const sorted = [...items].sort(compareKeys)
          expect(ids(index)).toEqual(sorted.map((one) => one.id))
          const from = sorted.length === 0 ? 0 : a % (sorted.length + 1)
          const to = sorted.length === 0 ? 0 : from + (b % (sorted.length - from + 1))
          // The same range built on its own, in another order, fingerprints the same.
          const alone = indexOf(sorted.slice(from, to).reverse())
          expect(sameFingerprint(index.fingerprint(from, to), alone.fingerprint(0, alone.size))).toBe(true)
          expect(index.fingerprint(from, to).count).toBe(to - from)
          if (to > from) {
            expect(index.position(sorted[from]!)).toBe(from)
            expect(index.at(from).id).toBe(sorted[from]!.id)
          }
        },
      ),
      { numRuns: 150 },
    )
  })

  it('removes items: the same order and fingerprints as an index built from what is left', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.nat(12), fc.nat(40), fc.nat(3)), {
          maxLength: 900,
          selector: (t) => t.join(),
        }),
        fc.array(fc.boolean(), { maxLength: 900 }),
        fc.nat(),
        (tuples, drop, a) => {
          const items = tuples.map(([t, l, s]) => item(t, l, s))
          const index = indexOf(items)
          const kept = items.filter((_, i) => !drop[i])
          for (const [i, one] of items.entries()) if (drop[i]) expect(index.remove(one.id)).toBe(true)
          expect(index.remove('bafynothing')).toBe(false)
          const fresh = indexOf(kept)
          expect(index.size).toBe(kept.length)
          expect(ids(index)).toEqual(ids(fresh))
          const from = kept.length === 0 ? 0 : a % (kept.length + 1)
          expect(
            sameFingerprint(index.fingerprint(from, index.size), fresh.fingerprint(from, fresh.size)),
          ).toBe(true)
          // Adding after removals keeps the order too.
          for (const [i, one] of items.entries()) if (drop[i] && i % 2 === 0) index.add(one)
          const again = indexOf([...kept, ...items.filter((_, i) => drop[i] && i % 2 === 0)])
          expect(ids(index)).toEqual(ids(again))
          expect(sameFingerprint(index.fingerprint(0, index.size), again.fingerprint(0, again.size))).toBe(
            true,
          )
        },
      ),
      { numRuns: 100 },
    )
  })

  it('holds an id once and tells a different set apart', () => {
    const index = indexOf([item(1, 1, 1), item(1, 2, 1)])
    expect(index.add(item(1, 1, 1))).toBe(false)
    expect(index.size).toBe(2)
    const other = indexOf([item(1, 1, 1), item(1, 2, 2)])
    expect(sameFingerprint(index.fingerprint(0, 2), other.fingerprint(0, 2))).toBe(false)
  })
})

describe('sync messages', () => {
  const key = item(1, 2, 3)
  const sum = new Uint8Array(32)

  it('round-trip', () => {
    const requests: SyncRequest[] = [
      { op: 'ranges', ranges: [{ lo: null, hi: key, count: 3, sum }] },
      { op: 'get', ids: ['bafyone', 'bafytwo'] },
      { op: 'scan', lo: key, hi: null },
    ]
    for (const request of requests) expect(decodeSyncRequest(encodeSyncRequest(request))).toEqual(request)
    const responses: SyncResponse[] = [
      {
        op: 'ranges',
        answers: [
          { kind: 'equal' },
          { kind: 'items', ids: ['bafyone'] },
          {
            kind: 'split',
            parts: [
              { lo: null, count: 40, sum },
              { lo: key, count: 41, sum },
            ],
          },
        ],
      },
      { op: 'get', envelopes: [new Uint8Array([1])], consumed: 2 },
      { op: 'scan', envelopes: [], next: null },
      { op: 'refused', reason: 'rate', retryMs: 20 },
    ]
    for (const response of responses)
      expect(decodeSyncResponse(encodeSyncResponse(response))).toEqual(response)
  })

  it('are refused when oversize or malformed, naming the field', () => {
    const refused = (decode: () => unknown, field: string) => {
      try {
        decode()
      } catch (error) {
        expect(error).toBeInstanceOf(MalformedEnvelopeError)
        expect((error as MalformedEnvelopeError).field).toBe(field)
        return
      }
      throw new Error(`accepted; expected a refusal naming ${field}`)
    }
    const request = (value: unknown) => () => decodeSyncRequest(dagCbor.encode(value))
    const response = (value: unknown) => () => decodeSyncResponse(dagCbor.encode(value))
    const bound = [key.thread, key.lamport, key.sender, key.id]
    refused(() => decodeSyncRequest(new Uint8Array(MAX_SYNC_REQUEST_BYTES + 1)), 'request')
    refused(() => decodeSyncRequest(new Uint8Array([0xa1, 0x61])), 'request') // truncated
    refused(request([1, 2]), 'request')
    refused(request({ op: 'push' }), 'op')
    refused(request({ op: 'ranges', ranges: [] }), 'ranges')
    const tooMany = Array.from({ length: MAX_RANGES_PER_REQUEST + 1 }, () => [null, null, 0, sum])
    refused(request({ op: 'ranges', ranges: tooMany }), 'ranges')
    refused(request({ op: 'ranges', ranges: [[null, null, -1, sum]] }), 'ranges.0.count')
    refused(request({ op: 'ranges', ranges: [[null, null, 0, new Uint8Array(31)]] }), 'ranges.0.sum')
    refused(request({ op: 'ranges', ranges: [[bound, bound, 0, sum]] }), 'ranges.0')
    refused(
      request({ op: 'ranges', ranges: [[[key.thread, -1, key.sender, key.id], null, 0, sum]] }),
      'ranges.0.lo',
    )
    refused(
      request({ op: 'ranges', ranges: [[['x'.repeat(200), 1, 'a', 'b'], null, 0, sum]] }),
      'ranges.0.lo',
    )
    refused(request({ op: 'get', ids: [] }), 'ids')
    refused(
      request({ op: 'get', ids: Array.from({ length: MAX_IDS_PER_REQUEST + 1 }, (_, i) => `b${i}`) }),
      'ids',
    )
    refused(request({ op: 'get', ids: ['ok', 7] }), 'ids.1')
    refused(request({ op: 'scan', lo: 'x', hi: null }), 'scan.lo')
    refused(response({ op: 'ranges', answers: [[3]] }), 'answers.0')
    refused(
      response({ op: 'ranges', answers: [[1, Array.from({ length: LEAF_ITEMS + 1 }, () => 'b')]] }),
      'answers.0.ids',
    )
    const split = (first: unknown, second: unknown) =>
      response({ op: 'ranges', answers: [[2, [first, second]]] })
    refused(split([bound, 1, sum], [bound, 1, sum]), 'answers.0.parts.0')
    refused(split([null, 1, sum], [null, 1, sum]), 'answers.0.parts.1')
    refused(
      response({
        op: 'get',
        envelopes: Array.from({ length: MAX_PAGE_ENVELOPES + 1 }, () => new Uint8Array(1)),
        consumed: 1,
      }),
      'envelopes',
    )
    refused(response({ op: 'get', envelopes: [{}], consumed: 1 }), 'envelopes.0')
    refused(response({ op: 'get', envelopes: [], consumed: MAX_IDS_PER_REQUEST + 1 }), 'consumed')
    refused(response({ op: 'refused', reason: 'tired', retryMs: 1 }), 'reason')
    // A megabyte of empty maps is refused before a value is built.
    const bomb = new Uint8Array(1 << 20).fill(0xa0)
    bomb.set([0x9a, 0, 0x0f, 0xff, 0xfb])
    refused(() => decodeSyncResponse(bomb), 'response')
  })

  it('a request stays below the same bound whatever either side holds', async () => {
    const sizes: number[] = []
    for (const size of [100, 10_000, 60_000]) {
      // Both sides hold `size` items; one in ten of each side's is its own.
      const server = indexOf(
        Array.from({ length: size }, (_, n) => item(n % 97, n, n % 5, n % 10 === 0 ? 1 : 0)),
      )
      const local = indexOf(
        Array.from({ length: size }, (_, n) => item(n % 97, n, n % 5, n % 10 === 0 ? 2 : 0)),
      )
      const result = await pull(local, server)
      expect(result.complete).toBe(true)
      expect(result.maxRequestBytes).toBeLessThanOrEqual(MAX_SYNC_REQUEST_BYTES)
      sizes.push(result.maxRequestBytes)
    }
    // The largest request is a full batch of ranges or ids, not a list of everything held.
    expect(Math.max(...sizes)).toBeLessThan(64 * 1024)
  })
})

describe('reconciliation', () => {
  const items = fc.uniqueArray(fc.tuple(fc.nat(12), fc.integer({ min: 1, max: 400 }), fc.nat(3)), {
    maxLength: 600,
    selector: (t) => t.join(),
  })

  it('brings two random sets to their union, in a bounded number of requests', async () => {
    await fc.assert(
      fc.asyncProperty(items, items, items, async (shared, onlyA, onlyB) => {
        const a = indexOf([...shared, ...onlyA].map(([t, l, s]) => item(t, l, s)))
        const b = indexOf([...shared, ...onlyB].map(([t, l, s]) => item(t, l, s)))
        const union = new Set([...ids(a), ...ids(b)])
        const first = await pull(a, b)
        const second = await pull(b, a)
        for (const report of [first, second]) {
          expect(report.complete).toBe(true)
          // ≤ 1 800 items: three levels of splits at most, each a request or two, and a page or two.
          expect(report.requests).toBeLessThanOrEqual(16)
        }
        expect(new Set(ids(a))).toEqual(union)
        expect(ids(b)).toEqual(ids(a))
        expect(sameFingerprint(a.fingerprint(0, a.size), b.fingerprint(0, b.size))).toBe(true)
        // In step, one request says so.
        expect((await pull(a, b)).requests).toBe(1)
      }),
      { numRuns: 60 },
    )
  })

  it('fetches nothing the server lacks, and nothing twice', async () => {
    const server = indexOf(Array.from({ length: 5_000 }, (_, n) => item(n % 7, n, 1)))
    const local = indexOf([
      ...Array.from({ length: 5_000 }, (_, n) => item(n % 7, n, 1, n % 50 === 0 ? 9 : 0)),
    ])
    let delivered = 0
    const report = await reconcile<Item>({
      index: local,
      decode: decodeItem,
      exchange: async (request) => answerSyncRequest(server, request, encodeItem),
      async deliver(page) {
        delivered += page.length
        for (const one of page) local.add(one)
      },
    })
    expect(report.complete).toBe(true)
    expect(delivered).toBe(100) // the server's 100 the puller lacked
    expect(local.size).toBe(5_100)
  })

  it('reads a range whole where it holds little of much', async () => {
    // 20 threads of 500; the puller holds the first 4 of each: a few splits, then page-sized scans.
    const all = Array.from({ length: 10_000 }, (_, n) => item(n % 20, Math.floor(n / 20) + 1, 1))
    const server = indexOf(all)
    const local = indexOf(all.filter((one) => one.lamport <= 4))
    const report = await pull(local, server)
    expect(local.size).toBe(10_000)
    expect(report.requests).toBeLessThanOrEqual(Math.ceil(10_000 / MAX_PAGE_ENVELOPES) + 8)
  })

  it('pulls one thread only when asked to', async () => {
    const server = indexOf(Array.from({ length: 3_000 }, (_, n) => item(n % 3, n, 1)))
    const local = new SyncIndex<Item>()
    await pull(local, server, { ranges: [threadRange(item(1, 0, 0).thread)] })
    expect(local.size).toBe(1_000)
    expect([...local.slice(0, local.size)].every((one) => one.thread === item(1, 0, 0).thread)).toBe(true)
  })

  it('refuses a server that splits forever or scans backwards', async () => {
    const local = indexOf([item(1, 1, 1)])
    const liar = async (request: SyncRequest): Promise<SyncResponse> => {
      if (request.op === 'scan') return { op: 'scan', envelopes: [], next: null }
      if (request.op !== 'ranges') throw new Error('unexpected')
      return {
        op: 'ranges',
        answers: request.ranges.map((range) => ({
          kind: 'split' as const,
          parts: [
            { lo: null, count: 1, sum: new Uint8Array(32).fill(1) },
            {
              lo: { ...(range.lo ?? item(0, 0, 0)), id: `${range.lo?.id ?? ''}~` },
              count: 1,
              sum: new Uint8Array(32).fill(1),
            },
          ],
        })),
      }
    }
    const deliver = async () => undefined
    const lying = reconcile({ index: local, decode: decodeItem, exchange: liar, deliver })
    await expect(lying).rejects.toThrow(MalformedEnvelopeError)
    await expect(lying).rejects.toThrow(/deeper than/)
    const backwards = async (): Promise<SyncResponse> => ({
      op: 'scan',
      envelopes: [encodeItem(item(5, 5, 5)), encodeItem(item(4, 4, 4))],
      next: null,
    })
    await expect(
      reconcile({ index: new SyncIndex<Item>(), decode: decodeItem, exchange: backwards, deliver }),
    ).rejects.toThrow(/out of order/)
  })

  it('answers within its page budget', () => {
    const server = indexOf(Array.from({ length: 4_000 }, (_, n) => item(1, n, 1)))
    const page = answerSyncRequest(server, { op: 'scan', lo: null, hi: null }, encodeItem, {
      pageBytes: 4_096,
    })
    if (page.op !== 'scan') throw new Error('expected a scan page')
    const bytes = page.envelopes.reduce((sum, one) => sum + one.length, 0)
    expect(bytes).toBeLessThan(4_096 + 100)
    expect(page.next).not.toBeNull()
    const all = answerSyncRequest(server, { op: 'scan', lo: null, hi: null }, encodeItem)
    if (all.op !== 'scan') throw new Error('expected a scan page')
    expect(all.envelopes.length).toBe(MAX_PAGE_ENVELOPES)
  })
})

describe('past 100 000 items', () => {
  const N = 100_000
  // 1 000 threads of 100 items, two senders each.
  const base = (n: number) => item(n % 1000, Math.floor(n / 1000) + 1, n % 2)

  it('a late joiner catches up by scanning, page by page', async () => {
    const started = performance.now()
    const server = indexOf(Array.from({ length: N }, (_, n) => base(n)))
    const late = new SyncIndex<Item>()
    const result = await pull(late, server)
    expect(result.complete).toBe(true)
    expect(late.size).toBe(N)
    expect(sameFingerprint(late.fingerprint(0, N), server.fingerprint(0, N))).toBe(true)
    expect(result.requests).toBeLessThanOrEqual(Math.ceil(N / MAX_PAGE_ENVELOPES) + 1)
    expect(result.maxRequestBytes).toBeLessThan(1024)
    console.info(
      `late joiner, ${N} items: ${result.requests} requests, largest request ${result.maxRequestBytes} B, largest answer ${result.maxResponseBytes} B, ${(performance.now() - started).toFixed(0)} ms`,
    )
  })

  it('two sides apart heal: each pulls what the other gained', async () => {
    const started = performance.now()
    // Shared history, then 5 000 items on one side and 2 000 on the other while apart.
    const a = indexOf(Array.from({ length: N }, (_, n) => base(n)))
    const b = indexOf(Array.from({ length: N }, (_, n) => base(n)))
    for (let n = 0; n < 5_000; n += 1) a.add(item(n % 1000, 200 + Math.floor(n / 1000), 7, 1))
    for (let n = 0; n < 2_000; n += 1) b.add(item((n * 7) % 1000, 200 + Math.floor(n / 1000), 8, 2))
    const first = await pull(b, a)
    const second = await pull(a, b)
    expect(a.size).toBe(N + 7_000)
    expect(sameFingerprint(a.fingerprint(0, a.size), b.fingerprint(0, b.size))).toBe(true)
    for (const report of [first, second]) {
      expect(report.complete).toBe(true)
      expect(report.maxRequestBytes).toBeLessThanOrEqual(MAX_SYNC_REQUEST_BYTES)
      // Ranges: ~5 levels, a few batches each; then gets of ≤ 512 ids.
      expect(report.requests).toBeLessThan(120)
    }
    console.info(
      `heal, ${N} + 5 000 / 2 000 items: ${first.requests} + ${second.requests} requests, largest request ${Math.max(first.maxRequestBytes, second.maxRequestBytes)} B, ${(performance.now() - started).toFixed(0)} ms`,
    )
  })
})
