/**
 * The undecided threads an agent follows, indexed for eviction (docs/PROTOCOL.md §13): when a NEED
 * would open one more than allowed, {@link UndecidedIndex.victim} names the thread to drop in O(1)
 * (amortized; ranks are few) — the lowest rank, then a thread of the requester holding the most
 * undecided threads (of those, the one least recently active), then that requester's quietest
 * thread. A flood of NEEDs at the bound so costs a constant per NEED, not a scan of every thread.
 */

/** Rank of the agent's own NEEDs: never evicted. */
export const NEVER_EVICTED = Number.POSITIVE_INFINITY
/** Rank of a thread whose NEED is not placed yet: evicted first. */
export const NO_NEED_YET = Number.NEGATIVE_INFINITY

interface Bucket {
  /** Per requester, its threads, least recently active first. */
  threads: Map<string, Map<string, true>>
  /** Per count of threads held, the requesters holding that many, least recently active first. */
  byCount: Map<number, Map<string, true>>
  maxCount: number
  size: number
}

export class UndecidedIndex {
  readonly #entries = new Map<string, { requester: string; rank: number }>()
  readonly #buckets = new Map<number, Bucket>()

  /** Threads indexed. */
  get size(): number {
    return this.#entries.size
  }

  has(thread: string): boolean {
    return this.#entries.has(thread)
  }

  /** Indexes `thread` (again, when its NEED becomes known), as the most recently active. */
  add(thread: string, requester = '', rank = NO_NEED_YET): void {
    this.delete(thread)
    let bucket = this.#buckets.get(rank)
    if (!bucket) {
      bucket = { threads: new Map(), byCount: new Map(), maxCount: 0, size: 0 }
      this.#buckets.set(rank, bucket)
    }
    let threads = bucket.threads.get(requester)
    if (!threads) {
      threads = new Map()
      bucket.threads.set(requester, threads)
    }
    threads.set(thread, true)
    const count = threads.size
    if (count > 1) removeFrom(bucket.byCount, count - 1, requester)
    addTo(bucket.byCount, count, requester)
    bucket.maxCount = Math.max(bucket.maxCount, count)
    bucket.size += 1
    this.#entries.set(thread, { requester, rank })
  }

  delete(thread: string): boolean {
    const entry = this.#entries.get(thread)
    if (!entry) return false
    this.#entries.delete(thread)
    const bucket = this.#buckets.get(entry.rank)!
    const threads = bucket.threads.get(entry.requester)!
    threads.delete(thread)
    const was = threads.size + 1
    removeFrom(bucket.byCount, was, entry.requester)
    if (threads.size > 0) addTo(bucket.byCount, threads.size, entry.requester)
    else bucket.threads.delete(entry.requester)
    // Counts move by one: when nobody holds the old maximum any more, the next is one less.
    if (bucket.maxCount === was && !bucket.byCount.has(was)) bucket.maxCount = was - 1
    bucket.size -= 1
    if (bucket.size === 0) this.#buckets.delete(entry.rank)
    return true
  }

  /** `thread` saw activity: it and its requester become the most recently active. */
  touch(thread: string): void {
    const entry = this.#entries.get(thread)
    if (!entry) return
    const bucket = this.#buckets.get(entry.rank)!
    const threads = bucket.threads.get(entry.requester)!
    threads.delete(thread)
    threads.set(thread, true)
    const holders = bucket.byCount.get(threads.size)!
    holders.delete(entry.requester)
    holders.set(entry.requester, true)
  }

  /** The thread to evict, or undefined when only never-evicted threads are indexed. */
  victim(): string | undefined {
    let lowest: number | undefined
    for (const rank of this.#buckets.keys())
      if (rank !== NEVER_EVICTED && (lowest === undefined || rank < lowest)) lowest = rank
    if (lowest === undefined) return undefined
    const bucket = this.#buckets.get(lowest)!
    const requester = bucket.byCount.get(bucket.maxCount)!.keys().next().value!
    return bucket.threads.get(requester)!.keys().next().value
  }
}

function addTo(byCount: Map<number, Map<string, true>>, count: number, requester: string): void {
  let holders = byCount.get(count)
  if (!holders) {
    holders = new Map()
    byCount.set(count, holders)
  }
  holders.set(requester, true)
}

function removeFrom(byCount: Map<number, Map<string, true>>, count: number, requester: string): void {
  const holders = byCount.get(count)
  if (!holders) return
  holders.delete(requester)
  if (holders.size === 0) byCount.delete(count)
}
