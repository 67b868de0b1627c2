/**
 * The tab's envelope history stays within its bounds (docs/PROTOCOL.md §13): past them whole
 * threads go, the one first seen longest ago first; re-storing an envelope counts it once; the
 * usage is measured again on open. Runs where IndexedDB exists (the chromium project).
 */
import { describe, expect, it } from 'vitest'
import { type StoredEnvelope, TabStorage } from '../src/app/storage.ts'

const record = (thread: string, n: number, size = 100): StoredEnvelope => ({
  id: `${thread}-${n}`,
  net: 'net',
  thread,
  bytes: new Uint8Array(size).fill(n),
  atMs: n,
})

describe.skipIf(typeof indexedDB === 'undefined')('TabStorage bounds', () => {
  it('evicts whole threads, oldest first, to stay within maxEnvelopes and maxBytes', async () => {
    const name = `can-swarm-test-${Math.random()}`
    const storage = await TabStorage.open(name, { maxEnvelopes: 5, maxBytes: 10_000 })
    await storage.saveEnvelopes([record('a', 1), record('a', 2), record('a', 3)])
    await storage.saveEnvelopes([record('a', 3), record('b', 4), record('b', 5)])
    expect(storage.usage).toEqual({ envelopes: 5, bytes: 500, evictedThreads: 0 })
    await storage.saveEnvelopes([record('c', 6)])
    // Six envelopes: thread a (first seen longest ago) goes, all of it.
    expect(storage.usage).toEqual({ envelopes: 3, bytes: 300, evictedThreads: 1 })
    expect((await storage.envelopes()).map((item) => item.id).sort()).toEqual(['b-4', 'b-5', 'c-6'])
    // Bytes too: one large envelope pushes out the oldest threads until it fits.
    await storage.saveEnvelopes([record('d', 7, 9_950)])
    expect((await storage.envelopes()).map((item) => item.id)).toEqual(['d-7'])
    await storage.deleteEnvelopes(['d-7', 'nope'])
    expect(storage.usage.envelopes).toBe(0)
    await storage.saveEnvelopes([record('e', 8), record('e', 9)])
    storage.close()
    const again = await TabStorage.open(name, { maxEnvelopes: 5, maxBytes: 10_000 })
    expect(again.usage).toEqual({ envelopes: 2, bytes: 200, evictedThreads: 0 })
    again.close()
    // Opened with tighter limits, the history is cut down at once.
    const tight = await TabStorage.open(name, { maxEnvelopes: 1, maxBytes: 10_000 })
    expect(tight.usage.envelopes).toBe(0)
    tight.close()
    indexedDB.deleteDatabase(name)
  })
})
