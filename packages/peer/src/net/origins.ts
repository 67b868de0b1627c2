/**
 * Origin lists for WebSocket listeners (docs/PROTOCOL.md §13): which web pages may open a
 * connection. An entry is an exact origin (`https://app.example`), an origin with any port
 * (`http://localhost:*`) or `*` (every page).
 *
 * @example
 * ```ts
 * originListed('http://localhost:5173', ['http://localhost:*']) // true
 * ```
 */

/** Whether `origin` (as a browser sends it) matches an entry of `entries`. */
export function originListed(origin: string, entries: readonly string[]): boolean {
  const value = origin.trim().toLowerCase()
  for (const entry of entries) {
    const wanted = entry.trim().toLowerCase().replace(/\/$/, '')
    if (wanted === '*' || wanted === value) return true
    if (
      wanted.endsWith(':*') &&
      value.startsWith(wanted.slice(0, -1)) &&
      /^\d{1,5}$/.test(value.slice(wanted.length - 1))
    )
      return true
  }
  return false
}
