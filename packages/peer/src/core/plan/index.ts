/**
 * @packageDocumentation
 *
 * The plan store (docs/PROTOCOL.md §6.7): a pure, deterministic CRDT of typed plan facts from which the
 * task graph is derived, never edited. Replicas that hold the same facts compute the same graph,
 * the same views and the same canonical state, whatever order the facts arrived in.
 *
 * @example
 * ```ts
 * import { PlanStore } from './plan/index.ts'
 *
 * const actor = 'did:key:z6MkPlanner'
 * const at = (lamport: number) => ({ thread: 'need-1', lamport, actor })
 * const store = new PlanStore([
 *   { op: 'ADD_TASK', task: 'p/fetch', capability: 'http-get', requires: [], produces: 'text/html', ...at(1) },
 *   { op: 'ADD_TASK', task: 'p/count', capability: 'word-frequency', requires: ['text/html'],
 *     produces: 'application/json', ...at(2) },
 *   { op: 'LINK', parent: 'p/fetch', child: 'p/count', ...at(3) },
 *   { op: 'STATE', task: 'p/fetch', state: 'DECIDED', epoch: 1, ...at(4) },
 *   { op: 'STATE', task: 'p/count', state: 'DECIDED', epoch: 1, ...at(4) },
 * ])
 * store.readyTasks().map((task) => task.id) // ['p/fetch']: p/count waits for its parent to be FINAL
 * store.topologicalOrder('need-1') // ['p/fetch', 'p/count']
 *
 * const replica = new PlanStore()
 * replica.merge(store) // CRDT join: commutative, associative, idempotent
 * replica.canonicalState() // deep-equal to store.canonicalState(): ready to hash
 * ```
 */

export type { CanonicalPlanState, CanonicalTask } from './canonical.ts'
export { PlanCycleError } from './errors.ts'
export { comparePlanFacts, normalizePlanFact, PLAN_OPS, type PlanFactOf, planFactKey } from './fact.ts'
export { type Successors, stronglyConnectedComponents } from './graph.ts'
export type { TaskView } from './record.ts'
export { PlanStore } from './store.ts'
export { DEFAULT_MAX_CYCLES, type FindCyclesOptions, type PlanEdge } from './topology.ts'
