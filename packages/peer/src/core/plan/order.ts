/**
 * Orders used everywhere in the plan store. Strings compare by UTF-16 code units (`<`), never by
 * locale (`localeCompare` differs between runtimes and would break deterministic replay).
 */

/** Compare two strings by UTF-16 code units: negative, zero or positive, like `Array.prototype.sort` wants. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Compare two string lists element by element, then by length (a prefix sorts first). */
export function compareStringLists(a: readonly string[], b: readonly string[]): number {
  const shared = Math.min(a.length, b.length)
  for (let index = 0; index < shared; index++) {
    const order = compareStrings(a[index]!, b[index]!)
    if (order !== 0) return order
  }
  return a.length - b.length
}

/** Sort strings by code units, in place, and return the array. */
export function sortStrings<T extends string[]>(values: T): T {
  return values.sort(compareStrings)
}
