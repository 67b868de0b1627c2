/**
 * Per-task folding of facts. Each task id has one {@link TaskRecord} that absorbs every fact naming
 * it, in any order, with a commutative, associative and idempotent fold: that is what makes the
 * store a CRDT. Views are read off the records.
 */

import { type PlanFact, TASK_STATES, type TaskState } from '../types.ts'
import type { PlanFactOf } from './fact.ts'
import { compareKeyedFacts } from './fact.ts'
import { compareStrings, sortStrings } from './order.ts'

/** The derived, read-only view of one task. Arrays are sorted; the object and its arrays are frozen. */
export interface TaskView {
  /** Task id (`${proposal}/${name}` by convention). */
  readonly id: string
  /** Thread (NEED) of the ADD_TASK fact that defines the task. */
  readonly thread: string
  /** Capability that performs the task. */
  readonly capability: string
  /** Required artifact types: the defining ADD_TASK's `requires` plus every REQUIRES fact; sorted, unique. */
  readonly requires: readonly string[]
  /** Artifact type the task produces (from the defining ADD_TASK). */
  readonly produces: string
  /** Output refs from PRODUCES facts; sorted, unique. */
  readonly outputs: readonly string[]
  /** Current state: the greatest STATE fact by (epoch, rank in TASK_STATES); DRAFT when there is none. */
  readonly state: TaskState
  /** Epoch of the state above; 0 when there is no STATE fact. */
  readonly stateEpoch: number
  /** Annotations, last writer wins per key; keys in sorted order. */
  readonly annotations: Readonly<Record<string, string>>
}

/** The winning ANNOTATE of one key. */
interface Annotation {
  readonly value: string
  readonly lamport: number
  readonly actor: string
}

/** Everything folded so far about one task id (the task may not be defined yet). */
export interface TaskRecord {
  /** The ADD_TASK first in canonical fact order, with its key; undefined until one arrives. */
  definition: { readonly fact: PlanFactOf<'ADD_TASK'>; readonly key: string } | undefined
  /** Artifact types from REQUIRES facts. */
  readonly requires: Set<string>
  /** Refs from PRODUCES facts. */
  readonly outputs: Set<string>
  /** Index in TASK_STATES of the greatest STATE fact (0, DRAFT, when none). */
  stateRank: number
  /** Epoch of the greatest STATE fact (0 when none). */
  stateEpoch: number
  /** Last-writer-wins annotation per key. */
  readonly annotations: Map<string, Annotation>
}

/** A record that has seen no fact: undefined task, DRAFT at epoch 0. */
export function emptyTaskRecord(): TaskRecord {
  return {
    definition: undefined,
    requires: new Set(),
    outputs: new Set(),
    stateRank: 0,
    stateEpoch: 0,
    annotations: new Map(),
  }
}

/** The task id a fact is about, or undefined for LINK (which is about an edge). */
export function taskOf(fact: PlanFact): string | undefined {
  return fact.op === 'LINK' ? undefined : fact.task
}

/**
 * Fold a fact about this record's task into it. Returns true when the record (and so the task's
 * view) changed. Order-independent: folding any permutation of a fact set gives the same record.
 */
export function foldFact(record: TaskRecord, fact: PlanFact, key: string): boolean {
  switch (fact.op) {
    case 'ADD_TASK': {
      const current = record.definition
      if (current !== undefined && compareKeyedFacts(current.fact, current.key, fact, key) <= 0) return false
      record.definition = { fact, key }
      return true
    }
    case 'REQUIRES':
      return addNew(record.requires, fact.artifactType)
    case 'PRODUCES':
      return addNew(record.outputs, fact.ref)
    case 'STATE': {
      const rank = TASK_STATES.indexOf(fact.state)
      if (fact.epoch < record.stateEpoch || (fact.epoch === record.stateEpoch && rank <= record.stateRank))
        return false
      record.stateEpoch = fact.epoch
      record.stateRank = rank
      return true
    }
    case 'ANNOTATE': {
      const current = record.annotations.get(fact.key)
      if (current !== undefined && !annotationWins(fact, current)) return false
      record.annotations.set(fact.key, { value: fact.value, lamport: fact.lamport, actor: fact.actor })
      return true
    }
    case 'LINK':
      return false
  }
}

/** Last writer wins by (lamport, actor), ties broken by the greater value, so the choice is total. */
function annotationWins(candidate: Annotation, current: Annotation): boolean {
  if (candidate.lamport !== current.lamport) return candidate.lamport > current.lamport
  const byActor = compareStrings(candidate.actor, current.actor)
  if (byActor !== 0) return byActor > 0
  return compareStrings(candidate.value, current.value) > 0
}

function addNew(set: Set<string>, value: string): boolean {
  if (set.has(value)) return false
  set.add(value)
  return true
}

/** The frozen view of a defined task, or undefined when no ADD_TASK for it has arrived. */
export function buildTaskView(id: string, record: TaskRecord): TaskView | undefined {
  const definition = record.definition?.fact
  if (definition === undefined) return undefined
  const annotations = Object.fromEntries(
    sortStrings([...record.annotations.keys()]).map((key) => [key, record.annotations.get(key)!.value]),
  )
  return Object.freeze({
    id,
    thread: definition.thread,
    capability: definition.capability,
    requires: Object.freeze(sortStrings([...new Set([...definition.requires, ...record.requires])])),
    produces: definition.produces,
    outputs: Object.freeze(sortStrings([...record.outputs])),
    state: TASK_STATES[record.stateRank]!,
    stateEpoch: record.stateEpoch,
    annotations: Object.freeze(annotations),
  })
}
