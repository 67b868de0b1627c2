/**
 * Entries charged to owners (HTTP clients, envelope senders), for bounded stores and queues shared
 * by strangers: each entry has a weight (bytes, or 1), every owner's weight is known, eviction takes
 * the heaviest owner's oldest entry first (so whoever floods loses its own entries before anyone
 * else's), and {@link FairEntries.nextInTurn} serves owners in turn (round robin) rather than in
 * arrival order (so one owner's backlog never starves another's first entry).
 *
 * Every operation is O(1) except {@link FairEntries.victim}, which is linear in the number of owners.
 */

interface Entry<V> {
  owner: string
  weight: number
  value: V
}

export class FairEntries<V> {
  /** Least recently added or touched first. */
  readonly #entries = new Map<string, Entry<V>>()
  /** Per owner: its weight and its keys, oldest first. Map order is the owners' turn order. */
  readonly #owners = new Map<string, { weight: number; keys: Set<string> }>()
  #weight = 0

  /** Entries held. */
  get size(): number {
    return this.#entries.size
  }

  /** Weight of every entry together. */
  get weight(): number {
    return this.#weight
  }

  has(key: string): boolean {
    return this.#entries.has(key)
  }

  get(key: string): Readonly<Entry<V>> | undefined {
    return this.#entries.get(key)
  }

  /** Weight `owner` holds (0 for an unknown owner). */
  weightOf(owner: string): number {
    return this.#owners.get(owner)?.weight ?? 0
  }

  /** Adds (or replaces) the entry `key`, charged to `owner`; it becomes the newest. */
  add(key: string, owner: string, weight: number, value: V): void {
    this.delete(key)
    this.#entries.set(key, { owner, weight, value })
    let held = this.#owners.get(owner)
    if (!held) {
      held = { weight: 0, keys: new Set() }
      this.#owners.set(owner, held)
    }
    held.weight += weight
    held.keys.add(key)
    this.#weight += weight
  }

  /** Removes `key`; returns its entry, if it was held. */
  delete(key: string): Entry<V> | undefined {
    const entry = this.#entries.get(key)
    if (!entry) return undefined
    this.#entries.delete(key)
    const held = this.#owners.get(entry.owner)!
    held.weight -= entry.weight
    held.keys.delete(key)
    if (held.keys.size === 0) this.#owners.delete(entry.owner)
    this.#weight -= entry.weight
    return entry
  }

  /** Makes `key` the newest entry (of all, and of its owner), with a new value. */
  touch(key: string, value: V): void {
    const entry = this.#entries.get(key)
    if (entry) this.add(key, entry.owner, entry.weight, value)
  }

  /** The oldest entry of all (least recently added or touched). */
  oldest(): [string, Readonly<Entry<V>>] | undefined {
    return this.#entries.entries().next().value
  }

  /** `owner`'s oldest entry's key. */
  oldestOf(owner: string): string | undefined {
    return this.#owners.get(owner)?.keys.values().next().value
  }

  /** The key to evict first: the oldest entry of the owner holding the most weight. */
  victim(): string | undefined {
    let heaviest: { weight: number; keys: Set<string> } | undefined
    for (const held of this.#owners.values()) if (!heaviest || held.weight > heaviest.weight) heaviest = held
    return heaviest?.keys.values().next().value
  }

  /** The key to serve next: the oldest entry of the owner whose turn it is (who then goes last). */
  nextInTurn(): string | undefined {
    const first = this.#owners.entries().next().value
    if (!first) return undefined
    const [owner, held] = first
    this.#owners.delete(owner)
    this.#owners.set(owner, held)
    return held.keys.values().next().value
  }

  /** Every key, oldest first. */
  keys(): string[] {
    return [...this.#entries.keys()]
  }

  clear(): void {
    this.#entries.clear()
    this.#owners.clear()
    this.#weight = 0
  }
}
