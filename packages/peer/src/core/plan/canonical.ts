import type { TaskState } from '../types.ts'
import { compareStrings } from './order.ts'
import type { TaskView } from './record.ts'
import type { PlanEdge } from './topology.ts'

/** One task in {@link CanonicalPlanState}; keys in alphabetical order. */
export interface CanonicalTask {
  /** `[key, value]` pairs sorted by key (pairs, not an object, so no encoder can reorder them). */
  readonly annotations: readonly (readonly [key: string, value: string])[]
  readonly capability: string
  readonly id: string
  /** Sorted, unique. */
  readonly outputs: readonly string[]
  readonly produces: string
  /** Sorted, unique. */
  readonly requires: readonly string[]
  readonly state: TaskState
  readonly stateEpoch: number
  readonly thread: string
}

/**
 * The derived state of a plan as plain, frozen data with keys in alphabetical order and sorted
 * arrays: deterministic and independent of the order facts arrived in, ready to be encoded and hashed.
 */
export interface CanonicalPlanState {
  /** Edges between defined tasks, sorted by parent then child. */
  readonly edges: readonly PlanEdge[]
  /** Defined tasks, sorted by id. */
  readonly tasks: readonly CanonicalTask[]
}

/** Build the canonical state from tasks sorted by id and sorted edges. The result shares nothing with them. */
export function buildCanonicalState(
  tasks: readonly TaskView[],
  edges: readonly PlanEdge[],
): CanonicalPlanState {
  return Object.freeze({
    edges: Object.freeze(edges.map(([parent, child]) => Object.freeze([parent, child] as const))),
    tasks: Object.freeze(tasks.map(canonicalTask)),
  })
}

function canonicalTask(task: TaskView): CanonicalTask {
  const annotations = Object.keys(task.annotations)
    .sort(compareStrings)
    .map((key) => Object.freeze([key, task.annotations[key]!] as const))
  return Object.freeze({
    annotations: Object.freeze(annotations),
    capability: task.capability,
    id: task.id,
    outputs: Object.freeze([...task.outputs]),
    produces: task.produces,
    requires: Object.freeze([...task.requires]),
    state: task.state,
    stateEpoch: task.stateEpoch,
    thread: task.thread,
  })
}
