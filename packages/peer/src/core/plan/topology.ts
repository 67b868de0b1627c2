/**
 * Views of the shape of the plan graph: parents, children, ancestors, descendants, edges,
 * topological order and cycles. They depend on defined tasks and LINK facts only, never on states or
 * annotations, so one {@link PlanTopology} lives until a new edge or a new task appears; each view is
 * computed on first use and memoised.
 */

import { InvalidArgumentError } from '../errors.ts'
import { PlanCycleError } from './errors.ts'
import { elementaryCycles, reachable, type Successors, topologicalSort } from './graph.ts'
import { sortStrings } from './order.ts'

/** Default bound on the number of cycles `findCycles` reports. */
export const DEFAULT_MAX_CYCLES = 1000

/** How many cycles a {@link PlanCycleError} carries at most. */
const CYCLES_IN_ERROR = 16

/** Options of `findCycles`. */
export interface FindCyclesOptions {
  /**
   * Stop after this many cycles (a dense graph can have exponentially many). A positive integer.
   * @default 1000
   */
  readonly maxCycles?: number
}

/** A directed edge `[parent, child]` between two defined tasks. */
export type PlanEdge = readonly [parent: string, child: string]

/** What the topology reads from the store. */
export interface TopologySource {
  /** Ids of defined tasks, sorted. */
  taskIds(): readonly string[]
  /** Ids of the defined tasks of `thread`, sorted. */
  taskIdsOfThread(thread: string): readonly string[]
  /** Thread of a defined task; undefined when the task is not defined. */
  threadOf(id: string): string | undefined
  /** Parents named by LINK facts, defined or not. */
  linkedParents(id: string): ReadonlySet<string> | undefined
  /** Children named by LINK facts, defined or not. */
  linkedChildren(id: string): ReadonlySet<string> | undefined
}

const NONE: readonly never[] = Object.freeze([])

type Ordering = { readonly order: readonly string[] } | { readonly cycles: readonly (readonly string[])[] }

/** Memoised graph views of one generation of the plan graph. */
export class PlanTopology {
  readonly #source: TopologySource
  #edges: readonly PlanEdge[] | undefined
  readonly #parents = new Map<string, readonly string[]>()
  readonly #children = new Map<string, readonly string[]>()
  readonly #ancestors = new Map<string, readonly string[]>()
  readonly #descendants = new Map<string, readonly string[]>()
  readonly #orderings = new Map<string | undefined, Ordering>()
  readonly #cycles = new Map<number, readonly (readonly string[])[]>()

  constructor(source: TopologySource) {
    this.#source = source
  }

  /** Direct parents of a defined task (both ends defined), sorted; empty for an unknown id. */
  parents(id: string): readonly string[] {
    return memo(this.#parents, id, () => this.#defined(id, this.#source.linkedParents(id)))
  }

  /** Direct children of a defined task (both ends defined), sorted; empty for an unknown id. */
  children(id: string): readonly string[] {
    return memo(this.#children, id, () => this.#defined(id, this.#source.linkedChildren(id)))
  }

  #defined(id: string, linked: ReadonlySet<string> | undefined): readonly string[] {
    if (linked === undefined || this.#source.threadOf(id) === undefined) return NONE
    return sortStrings([...linked].filter((other) => this.#source.threadOf(other) !== undefined))
  }

  /** All tasks with a path to `id`, sorted; includes `id` only when it is on a cycle. */
  ancestors(id: string): readonly string[] {
    return memo(this.#ancestors, id, () => reachable(id, (node) => this.parents(node)))
  }

  /** All tasks reachable from `id`, sorted; includes `id` only when it is on a cycle. */
  descendants(id: string): readonly string[] {
    return memo(this.#descendants, id, () => reachable(id, (node) => this.children(node)))
  }

  /** Every edge between defined tasks, sorted by parent then child; frozen. */
  edges(): readonly PlanEdge[] {
    this.#edges ??= Object.freeze(
      this.#source
        .taskIds()
        .flatMap((parent) => this.children(parent).map((child) => Object.freeze([parent, child] as const))),
    )
    return this.#edges
  }

  /**
   * Defined tasks (of `thread`, when given, with only the edges inside it) in topological order:
   * Kahn's algorithm, ties broken by smallest id. Throws {@link PlanCycleError} on a cycle.
   */
  topologicalOrder(thread?: string): readonly string[] {
    let ordering = this.#orderings.get(thread)
    if (ordering === undefined) {
      const { nodes, successors } = this.#graph(thread)
      const sorted = topologicalSort(nodes, successors)
      ordering =
        sorted.unordered.length === 0
          ? { order: Object.freeze(sorted.order) }
          : { cycles: freezeLists(elementaryCycles(sorted.unordered, successors, CYCLES_IN_ERROR)) }
      this.#orderings.set(thread, ordering)
    }
    if ('cycles' in ordering) throw new PlanCycleError(ordering.cycles, thread)
    return ordering.order
  }

  /**
   * Elementary cycles among defined tasks, each starting at its smallest id, the list sorted; at most
   * `maxCycles` of them. Empty when the graph is acyclic.
   */
  findCycles(options: FindCyclesOptions = {}): readonly (readonly string[])[] {
    const maxCycles = options.maxCycles ?? DEFAULT_MAX_CYCLES
    if (!Number.isSafeInteger(maxCycles) || maxCycles < 1) {
      throw new InvalidArgumentError(`maxCycles must be a positive integer, got ${maxCycles}`, 'maxCycles')
    }
    return memo(this.#cycles, maxCycles, () => {
      const { nodes, successors } = this.#graph(undefined)
      // Only nodes that Kahn's algorithm cannot order can lie on a cycle.
      const candidates = topologicalSort(nodes, successors).unordered
      return freezeLists(elementaryCycles(candidates, successors, maxCycles))
    })
  }

  #graph(thread: string | undefined): { nodes: readonly string[]; successors: Successors } {
    if (thread === undefined) return { nodes: this.#source.taskIds(), successors: (id) => this.children(id) }
    const inThread = (id: string): boolean => this.#source.threadOf(id) === thread
    return {
      nodes: this.#source.taskIdsOfThread(thread),
      successors: (id) => this.children(id).filter(inThread),
    }
  }
}

function memo<K, V>(cache: Map<K, V>, key: K, compute: () => V): V {
  let value = cache.get(key)
  if (value === undefined) {
    value = compute()
    if (Array.isArray(value)) Object.freeze(value)
    cache.set(key, value)
  }
  return value
}

function freezeLists(lists: string[][]): readonly (readonly string[])[] {
  for (const list of lists) Object.freeze(list)
  return Object.freeze(lists)
}
