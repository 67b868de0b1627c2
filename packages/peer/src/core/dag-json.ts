/**
 * dag-json text from strangers, decoded in time and memory linear in its length (docs/PROTOCOL.md
 * §13). The reference decoder (`@ipld/dag-json`) builds a token object per value and a string per
 * character run in JavaScript: tens of nanoseconds and tens of bytes per input byte, so a few
 * megabytes of text — an array of a million `1`s, a string of three million characters — cost
 * hundreds of milliseconds and tens of megabytes. Here the text is first walked once without
 * building anything (values, nesting, object keys within a budget), then parsed by the engine's
 * native `JSON.parse`, then the dag-json forms are turned into their values: `{"/":"b…"}` into a
 * CID, `{"/":{"bytes":"…"}}` into bytes (unpadded base64).
 *
 * Like the reference decoder it refuses duplicate keys and malformed CID and bytes forms, reads
 * `-0` as 0 and lone surrogates as U+FFFD (its input is UTF-8); unlike it, it also refuses numbers
 * that are not finite (`1e999`), which no IPLD value holds.
 */
import { base64 } from 'multiformats/bases/base64'
import { CID } from 'multiformats/cid'
import type { CborBudget } from './cbor-budget.ts'
import { MalformedEnvelopeError } from './errors.ts'

/** How much structure dag-json text may carry: a CBOR budget, and a bound on object keys. */
export interface JsonBudget extends CborBudget {
  /** Most object keys in all (distinct keys are what makes a JSON parser slow). */
  maxKeys: number
}

const QUOTE = 0x22
const BACKSLASH = 0x5c

/** Whether `code` can be part of a JSON literal (number, true, false, null). */
function isLiteralChar(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) || // 0-9
    (code >= 0x61 && code <= 0x7a) || // a-z
    (code >= 0x41 && code <= 0x5a) || // A-Z
    code === 0x2b || // +
    code === 0x2d || // -
    code === 0x2e // .
  )
}

/**
 * Walks `text` once, counting values, nesting and keys; throws past the budget. Returns the number
 * of keys. Text that is not JSON is walked all the same (the parser refuses it afterwards).
 */
function scan(text: string, budget: JsonBudget, refuse: (why: string) => never): number {
  let items = 0
  let keys = 0
  let depth = 0
  let inLiteral = false
  const length = text.length
  for (let position = 0; position < length; position += 1) {
    const code = text.charCodeAt(position)
    if (code === QUOTE) {
      // Jump to the closing quote: one that is not escaped (preceded by an even run of backslashes).
      let end = position
      for (;;) {
        end = text.indexOf('"', end + 1)
        if (end < 0) return keys // unterminated: not JSON
        let backslashes = 0
        while (text.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes += 1
        if (backslashes % 2 === 0) break
      }
      position = end
      items += 1
      inLiteral = false
    } else if (isLiteralChar(code)) {
      if (!inLiteral) items += 1
      inLiteral = true
      continue
    } else {
      inLiteral = false
      if (code === 0x7b || code === 0x5b) {
        // { [
        items += 1
        depth += 1
        if (depth > budget.maxDepth) refuse(`nesting deeper than ${budget.maxDepth}`)
      } else if (code === 0x7d || code === 0x5d)
        depth -= 1 // } ]
      else if (code === 0x3a) {
        // : (one per key)
        keys += 1
        if (keys > budget.maxKeys) refuse(`more than ${budget.maxKeys} object keys`)
      }
    }
    if (items > budget.maxItems) refuse(`more than ${budget.maxItems} values`)
  }
  return keys
}

/**
 * The value of dag-json `text`: objects, arrays, strings, finite numbers, booleans, null, CIDs
 * and bytes.
 *
 * @throws {MalformedEnvelopeError} naming `field` when the text is over the budget or not dag-json.
 */
export function decodeDagJson(text: string, budget: JsonBudget, field: string): unknown {
  const refuse = (why: string): never => {
    throw new MalformedEnvelopeError(`${field}: ${why}`, field)
  }
  const scannedKeys = scan(text, budget, refuse)
  let value: unknown
  try {
    value = JSON.parse(text.toWellFormed())
  } catch (error) {
    refuse(`not JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  let keys = 0
  // JSON.parse's fresh values are converted in place (an own `__proto__` key stays an own key).
  const convert = (node: unknown): unknown => {
    if (typeof node === 'number') {
      if (!Number.isFinite(node)) refuse('numbers must be finite')
      return Object.is(node, -0) ? 0 : node
    }
    if (typeof node !== 'object' || node === null) return node
    if (Array.isArray(node)) {
      for (let index = 0; index < node.length; index += 1) node[index] = convert(node[index])
      return node
    }
    const record = node as Record<string, unknown>
    const names = Object.keys(record)
    keys += names.length
    if (names.length === 1 && names[0] === '/') {
      const link = record['/']
      if (typeof link === 'string') {
        try {
          return CID.parse(link)
        } catch {
          refuse('a {"/": …} form does not hold a CID')
        }
      }
      const inner = link as Record<string, unknown> | null
      if (typeof inner === 'object' && inner !== null && typeof inner.bytes === 'string') {
        const innerNames = Object.keys(inner)
        if (innerNames.length === 1) {
          keys += 1
          try {
            return base64.decode(`m${inner.bytes}`)
          } catch {
            refuse('a {"/": {"bytes": …}} form does not hold base64')
          }
        }
      }
    }
    for (const name of names) record[name] = convert(record[name])
    return record
  }
  const result = convert(value)
  // JSON.parse keeps the last of duplicate keys; the scan counted them all.
  if (keys !== scannedKeys) refuse('an object repeats a key')
  return result
}
