import { compareStrings } from './order.ts'

const EMPTY: readonly string[] = Object.freeze([])

/**
 * A set of strings that also hands out its members sorted (by code units). The sorted array is kept
 * between reads: additions are sorted on their own and merged in (O(n + k log k)); a deletion
 * re-sorts on the next read. Arrays handed out are frozen and never changed afterwards.
 */
export class SortedSet {
  readonly #members = new Set<string>()
  #sorted: readonly string[] = EMPTY
  #added: string[] = []
  #deleted = false

  /** Number of members. */
  get size(): number {
    return this.#members.size
  }

  /** True when `id` is a member. */
  has(id: string): boolean {
    return this.#members.has(id)
  }

  /** Add `id`; returns true when it was not a member. */
  add(id: string): boolean {
    if (this.#members.has(id)) return false
    this.#members.add(id)
    this.#added.push(id)
    return true
  }

  /** Remove `id`; returns true when it was a member. */
  delete(id: string): boolean {
    if (!this.#members.delete(id)) return false
    this.#deleted = true
    return true
  }

  /** The members, sorted; frozen. */
  sorted(): readonly string[] {
    if (this.#deleted) {
      this.#sorted = Object.freeze([...this.#members].sort(compareStrings))
    } else if (this.#added.length > 0) {
      this.#sorted = Object.freeze(mergeSorted(this.#sorted, this.#added.sort(compareStrings)))
    }
    this.#deleted = false
    this.#added = []
    return this.#sorted
  }
}

/** Sorted sets of ids grouped by a key (a state, a thread). */
export class SortedIndex<K> {
  readonly #groups = new Map<K, SortedSet>()

  /** Put `id` under `key`. */
  add(key: K, id: string): void {
    let group = this.#groups.get(key)
    if (group === undefined) {
      group = new SortedSet()
      this.#groups.set(key, group)
    }
    group.add(id)
  }

  /** Move `id` from under `from` to under `to`. */
  move(from: K, to: K, id: string): void {
    if (from === to) return
    this.#groups.get(from)?.delete(id)
    this.add(to, id)
  }

  /** The ids under `key`, sorted; frozen. */
  sorted(key: K): readonly string[] {
    return this.#groups.get(key)?.sorted() ?? EMPTY
  }
}

/** Merge two sorted string arrays into a new sorted array. */
function mergeSorted(left: readonly string[], right: readonly string[]): string[] {
  const merged: string[] = []
  let l = 0
  let r = 0
  while (l < left.length && r < right.length) {
    merged.push(compareStrings(left[l]!, right[r]!) <= 0 ? left[l++]! : right[r++]!)
  }
  while (l < left.length) merged.push(left[l++]!)
  while (r < right.length) merged.push(right[r++]!)
  return merged
}
