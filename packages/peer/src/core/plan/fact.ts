import { InvalidArgumentError } from '../errors.ts'
import { type PlanFact, TASK_STATES } from '../types.ts'
import { compareStrings } from './order.ts'

/** Every plan op (docs/PROTOCOL.md §6.7), in the order the protocol lists them. */
export const PLAN_OPS = ['ADD_TASK', 'REQUIRES', 'PRODUCES', 'LINK', 'STATE', 'ANNOTATE'] as const

/** The plan fact of one op, e.g. `PlanFactOf<'LINK'>`. */
export type PlanFactOf<O extends PlanFact['op']> = Extract<PlanFact, { op: O }>

/**
 * The identity of a fact: a string built deterministically from every field, in a fixed order
 * (`JSON.stringify` of a tuple). Two facts are the same fact exactly when their keys are equal.
 * Array order inside ADD_TASK's `requires` is part of the content: it is kept as written.
 *
 * @example
 * ```ts
 * planFactKey({ op: 'LINK', parent: 'a', child: 'b', thread: 'n', lamport: 3, actor: 'did:key:z6Mk…' })
 * // '["LINK","n",3,"did:key:z6Mk…","a","b"]'
 * ```
 */
export function planFactKey(fact: PlanFact): string {
  const head = [fact.op, fact.thread, fact.lamport, fact.actor]
  switch (fact.op) {
    case 'ADD_TASK':
      return JSON.stringify([...head, fact.task, fact.capability, fact.requires, fact.produces])
    case 'REQUIRES':
      return JSON.stringify([...head, fact.task, fact.artifactType])
    case 'PRODUCES':
      return JSON.stringify([...head, fact.task, fact.ref])
    case 'LINK':
      return JSON.stringify([...head, fact.parent, fact.child])
    case 'STATE':
      return JSON.stringify([...head, fact.task, fact.state, fact.epoch])
    case 'ANNOTATE':
      return JSON.stringify([...head, fact.task, fact.key, fact.value])
  }
}

/**
 * The canonical order of facts: by `lamport`, then `actor`, then {@link planFactKey} (all strings by
 * code units). It is total: distinct facts never compare equal.
 */
export function comparePlanFacts(a: PlanFact, b: PlanFact): number {
  return compareKeyedFacts(a, planFactKey(a), b, planFactKey(b))
}

/** {@link comparePlanFacts} with the keys already at hand. */
export function compareKeyedFacts(a: PlanFact, aKey: string, b: PlanFact, bKey: string): number {
  if (a.lamport !== b.lamport) return a.lamport - b.lamport
  return compareStrings(a.actor, b.actor) || compareStrings(aKey, bKey)
}

/**
 * Check a value is a well-formed plan fact and return a frozen copy holding only the fields of its
 * op (unknown extra fields are dropped, `-0` becomes `0`), so that the store never shares or trusts
 * a caller's object. Throws {@link InvalidArgumentError} naming the offending field.
 */
export function normalizePlanFact(input: unknown): PlanFact {
  if (typeof input !== 'object' || input === null) {
    throw new InvalidArgumentError(`a plan fact must be an object, got ${describe(input)}`, 'fact')
  }
  const value = input as Record<string, unknown>
  const thread = identifier(value.thread, 'thread')
  const lamport = count(value.lamport, 'lamport')
  const actor = identifier(value.actor, 'actor')
  let fact: PlanFact
  switch (value.op) {
    case 'ADD_TASK': {
      if (!Array.isArray(value.requires)) {
        throw new InvalidArgumentError(
          `fact.requires must be an array of artifact types, got ${describe(value.requires)}`,
          'fact.requires',
        )
      }
      const requires = value.requires.map((item, index) => text(item, `requires.${index}`))
      Object.freeze(requires)
      fact = {
        op: 'ADD_TASK',
        task: identifier(value.task, 'task'),
        capability: text(value.capability, 'capability'),
        requires,
        produces: text(value.produces, 'produces'),
        thread,
        lamport,
        actor,
      }
      break
    }
    case 'REQUIRES':
      fact = {
        op: 'REQUIRES',
        task: identifier(value.task, 'task'),
        artifactType: text(value.artifactType, 'artifactType'),
        thread,
        lamport,
        actor,
      }
      break
    case 'PRODUCES':
      fact = {
        op: 'PRODUCES',
        task: identifier(value.task, 'task'),
        ref: text(value.ref, 'ref'),
        thread,
        lamport,
        actor,
      }
      break
    case 'LINK':
      fact = {
        op: 'LINK',
        parent: identifier(value.parent, 'parent'),
        child: identifier(value.child, 'child'),
        thread,
        lamport,
        actor,
      }
      break
    case 'STATE': {
      const state = value.state
      if (typeof state !== 'string' || !(TASK_STATES as readonly string[]).includes(state)) {
        throw new InvalidArgumentError(
          `fact.state must be one of ${TASK_STATES.join(', ')}, got ${describe(state)}`,
          'fact.state',
        )
      }
      fact = {
        op: 'STATE',
        task: identifier(value.task, 'task'),
        state: state as PlanFactOf<'STATE'>['state'],
        epoch: count(value.epoch, 'epoch'),
        thread,
        lamport,
        actor,
      }
      break
    }
    case 'ANNOTATE':
      fact = {
        op: 'ANNOTATE',
        task: identifier(value.task, 'task'),
        key: identifier(value.key, 'key'),
        value: text(value.value, 'value'),
        thread,
        lamport,
        actor,
      }
      break
    default:
      throw new InvalidArgumentError(
        `fact.op must be one of ${PLAN_OPS.join(', ')}, got ${describe(value.op)}`,
        'fact.op',
      )
  }
  return Object.freeze(fact)
}

function identifier(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidArgumentError(
      `fact.${field} must be a non-empty string, got ${describe(value)}`,
      `fact.${field}`,
    )
  }
  return value
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string') {
    throw new InvalidArgumentError(`fact.${field} must be a string, got ${describe(value)}`, `fact.${field}`)
  }
  return value
}

function count(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(
      `fact.${field} must be a non-negative safe integer, got ${describe(value)}`,
      `fact.${field}`,
    )
  }
  return value + 0 // turns -0 into 0
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`
}
