/**
 * A budget check that runs before any DAG-CBOR is decoded (docs/PROTOCOL.md §13): it walks the
 * item headers of the input without building a single value, counting data items and nesting, and
 * refuses — in time linear in the input, with constant memory besides its depth stack — anything a
 * decoder would turn into far more heap than bytes: a megabyte of empty maps is a million objects.
 *
 * It also refuses what DAG-CBOR forbids at the framing level (indefinite lengths, reserved
 * additional info, simple values other than false/true/null, trailing bytes), and declared lengths
 * the input cannot hold (an array of 2^32 items in 9 bytes), so the decoder only ever sees input
 * whose shape is already bounded.
 */
import { MalformedEnvelopeError } from './errors.ts'

/** How much structure an input may carry. */
export interface CborBudget {
  /** Most data items in all (every integer, string, array, map, tag, simple value counts one). */
  maxItems: number
  /** Deepest nesting of arrays, maps and tags. */
  maxDepth: number
}

/** The budget of one envelope: far above any envelope the schema admits, far below a bomb. */
export const ENVELOPE_CBOR_BUDGET: CborBudget = Object.freeze({ maxItems: 100_000, maxDepth: 24 })

/**
 * Throws {@link MalformedEnvelopeError} naming `field` unless `bytes` is one well-formed,
 * definite-length CBOR item within `budget`.
 */
export function checkCborBudget(bytes: Uint8Array, budget: CborBudget, field: string): void {
  const refuse = (why: string): never => {
    throw new MalformedEnvelopeError(`${field}: ${why}`, field)
  }
  const length = bytes.length
  // Items still expected at each open level (the root level expects one).
  const remaining: number[] = [1]
  let position = 0
  let items = 0
  while (remaining.length > 0) {
    const level = remaining.length - 1
    if (remaining[level] === 0) {
      remaining.pop()
      continue
    }
    remaining[level]! -= 1
    if (position >= length) refuse('the input ends inside an item')
    const initial = bytes[position]!
    position += 1
    const major = initial >> 5
    const info = initial & 31
    let argument = 0
    if (info < 24) argument = info
    else if (info <= 27) {
      const size = 1 << (info - 24)
      if (position + size > length) refuse('the input ends inside an item header')
      argument = 0
      for (let i = 0; i < size; i += 1) argument = argument * 256 + bytes[position + i]!
      position += size
    } else {
      refuse(info === 31 ? 'indefinite lengths are not DAG-CBOR' : `reserved additional information ${info}`)
    }
    items += 1
    if (items > budget.maxItems) refuse(`more than ${budget.maxItems} data items`)
    switch (major) {
      case 0:
      case 1:
        break
      case 2:
      case 3:
        if (argument > length - position) refuse('a string is longer than the input')
        position += argument
        break
      case 4:
      case 5: {
        const count = major === 5 ? argument * 2 : argument
        // Every item takes at least one byte: a count the rest of the input cannot hold is a lie.
        if (count > length - position) refuse('an array or map declares more items than the input holds')
        if (count > 0) {
          if (remaining.length > budget.maxDepth) refuse(`nesting deeper than ${budget.maxDepth}`)
          remaining.push(count)
        }
        break
      }
      case 6:
        if (remaining.length > budget.maxDepth) refuse(`nesting deeper than ${budget.maxDepth}`)
        remaining.push(1)
        break
      default:
        // Major 7: false, true, null, and floats (their bytes were the argument).
        if (info < 24 && (info < 20 || info > 22)) refuse(`simple value ${info} is not DAG-CBOR`)
        if (info === 24) refuse('one-byte simple values are not DAG-CBOR')
    }
  }
  if (position !== length) refuse(`${length - position} bytes after the item`)
}
