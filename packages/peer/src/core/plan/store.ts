import { type PlanFact, TASK_STATES, type TaskState } from '../types.ts'
import { buildCanonicalState, type CanonicalPlanState } from './canonical.ts'
import { compareKeyedFacts, normalizePlanFact, planFactKey } from './fact.ts'
import { buildTaskView, emptyTaskRecord, foldFact, type TaskRecord, type TaskView, taskOf } from './record.ts'
import { SortedIndex, SortedSet } from './sorted-set.ts'
import { type FindCyclesOptions, type PlanEdge, PlanTopology } from './topology.ts'

/** A fact with its identity key, as held by the store. */
interface KeyedFact {
  readonly key: string
  readonly fact: PlanFact
}

/**
 * The plan store (docs/PROTOCOL.md §6.7): a grow-only set of plan facts and the task graph derived from it.
 * A state-based CRDT: {@link PlanStore.apply} and {@link PlanStore.merge} are commutative, associative
 * and idempotent, so replicas holding the same facts derive the same graph, whatever the order the
 * facts arrived in. Pure and deterministic: no clock, no randomness, no I/O.
 *
 * Semantics:
 * - A fact's identity is its whole content ({@link planFactKey}); a fact already held is ignored.
 * - Tasks and edges are grow-only. When ADD_TASK facts for one task disagree, the first in canonical
 *   fact order (lamport, actor, key) defines it.
 * - REQUIRES and PRODUCES add to sets. STATE is the maximum by (epoch, rank in TASK_STATES): monotone
 *   within an epoch, and a higher epoch reopens a task. ANNOTATE is last writer wins per (task, key)
 *   by (lamport, actor), ties broken by the greater value. No STATE fact means DRAFT at epoch 0.
 * - Facts about tasks not (yet) defined are kept and take effect when the ADD_TASK arrives; views show
 *   defined tasks only, and edges whose two ends are defined.
 *
 * Views are computed on first use and cached until a fact changes what they show: a task's view is
 * rebuilt only when a fact about that task changes it; indexes by state and thread are maintained
 * incrementally; graph views (parents, ancestors, topological order, cycles, …) survive every fact but
 * a new edge or a newly defined task. Returned arrays and objects are frozen: copy before changing them.
 *
 * @example
 * ```ts
 * const store = new PlanStore()
 * store.apply({ op: 'ADD_TASK', task: 'p/a', capability: 'sha256', requires: [], produces: 'text/plain',
 *   thread: 'need-1', lamport: 1, actor: 'did:key:z6MkA' })
 * store.apply({ op: 'STATE', task: 'p/a', state: 'DECIDED', epoch: 1, thread: 'need-1', lamport: 2,
 *   actor: 'did:key:z6MkA' })
 * store.readyTasks().map((task) => task.id) // ['p/a']
 * ```
 */
export class PlanStore {
  /** Every fact held, by key. */
  readonly #facts = new Map<string, PlanFact>()
  /** Facts in canonical order, up to the last read. */
  #ordered: KeyedFact[] = []
  /** Facts that arrived since, not yet merged into `#ordered`. */
  #arrived: KeyedFact[] = []
  #factsView: readonly PlanFact[] | undefined
  /** Folded facts per task id, defined or not. */
  readonly #records = new Map<string, TaskRecord>()
  /** LINK adjacency, including ends not (yet) defined. */
  readonly #childrenOf = new Map<string, Set<string>>()
  readonly #parentsOf = new Map<string, Set<string>>()
  /** Indexes of defined tasks. */
  readonly #defined = new SortedSet()
  readonly #byState = new SortedIndex<TaskState>()
  readonly #byThread = new SortedIndex<string>()
  /** Defined tasks that are DECIDED with every linked parent FINAL; kept up to date on every fact. */
  readonly #ready = new SortedSet()
  /** Views of defined tasks; an entry is dropped when a fact changes its task. */
  readonly #taskViews = new Map<string, TaskView>()
  /** Lists of task views (all, by state, by thread, ready); dropped when any task view changes. */
  readonly #lists = new Map<string, readonly TaskView[]>()
  #canonical: CanonicalPlanState | undefined
  /** Graph views; dropped when an edge appears or a task is defined or redefined. */
  #topology: PlanTopology | undefined

  /** A store holding `facts` (checked as by {@link PlanStore.applyAll}). */
  constructor(facts: Iterable<PlanFact> = []) {
    this.applyAll(facts)
  }

  /** Number of distinct facts held. */
  get size(): number {
    return this.#facts.size
  }

  /**
   * Add a fact. Returns true when it is new, false when the store already held it (then nothing
   * changes). Throws InvalidArgumentError (code INVALID_ARGUMENT) for a malformed fact.
   */
  apply(fact: PlanFact): boolean {
    const normalized = normalizePlanFact(fact)
    return this.#insert(planFactKey(normalized), normalized)
  }

  /**
   * Add many facts; returns how many were new. All facts are checked before any is added, so a
   * malformed fact leaves the store unchanged.
   */
  applyAll(facts: Iterable<PlanFact>): number {
    const keyed: KeyedFact[] = []
    for (const fact of facts) {
      const normalized = normalizePlanFact(fact)
      keyed.push({ key: planFactKey(normalized), fact: normalized })
    }
    let added = 0
    for (const { key, fact } of keyed) if (this.#insert(key, fact)) added++
    return added
  }

  /** Add every fact of `other` (the CRDT join); returns how many were new here. `other` is not changed. */
  merge(other: PlanStore): number {
    let added = 0
    for (const { key, fact } of other.#orderedFacts()) if (this.#insert(key, fact)) added++
    return added
  }

  /** A new store holding the same facts, independent of this one. */
  clone(): PlanStore {
    const copy = new PlanStore()
    copy.merge(this)
    return copy
  }

  /** True when the store holds this exact fact. Throws InvalidArgumentError for a malformed fact. */
  has(fact: PlanFact): boolean {
    return this.#facts.has(planFactKey(normalizePlanFact(fact)))
  }

  /** Every fact held, in canonical order (lamport, then actor, then {@link planFactKey}); frozen. */
  facts(): readonly PlanFact[] {
    this.#factsView ??= Object.freeze(this.#orderedFacts().map((entry) => entry.fact))
    return this.#factsView
  }

  #orderedFacts(): readonly KeyedFact[] {
    if (this.#arrived.length > 0) {
      this.#ordered = mergeSorted(this.#ordered, this.#arrived.sort(compareEntries))
      this.#arrived = []
    }
    return this.#ordered
  }

  #insert(key: string, fact: PlanFact): boolean {
    if (this.#facts.has(key)) return false
    this.#facts.set(key, fact)
    this.#arrived.push({ key, fact })
    this.#factsView = undefined
    if (fact.op === 'LINK') {
      const added = addTo(this.#childrenOf, fact.parent, fact.child)
      addTo(this.#parentsOf, fact.child, fact.parent)
      if (added) {
        this.#refreshReadiness(fact.child)
        this.#graphChanged()
      }
      return true
    }
    const task = taskOf(fact)!
    let record = this.#records.get(task)
    if (record === undefined) {
      record = emptyTaskRecord()
      this.#records.set(task, record)
    }
    const before = record.definition?.fact
    const stateBefore = TASK_STATES[record.stateRank]!
    if (!foldFact(record, fact, key)) return true
    const after = record.definition?.fact
    if (after !== undefined) {
      const stateAfter = TASK_STATES[record.stateRank]!
      if (before === undefined) {
        this.#defined.add(task)
        this.#byState.add(stateAfter, task)
        this.#byThread.add(after.thread, task)
      } else {
        this.#byState.move(stateBefore, stateAfter, task)
        this.#byThread.move(before.thread, after.thread, task)
      }
      if (before !== after) this.#topology = undefined
      if (before === undefined || stateBefore !== stateAfter) {
        this.#refreshReadiness(task)
        for (const child of this.#childrenOf.get(task) ?? []) this.#refreshReadiness(child)
      }
      this.#taskViews.delete(task)
      this.#viewsChanged()
    }
    return true
  }

  #refreshReadiness(id: string): void {
    if (this.#stateOf(id) === 'DECIDED' && this.#parentsFinal(id)) this.#ready.add(id)
    else this.#ready.delete(id)
  }

  #parentsFinal(id: string): boolean {
    for (const parent of this.#parentsOf.get(id) ?? []) {
      if (this.#stateOf(parent) !== 'FINAL') return false
    }
    return true
  }

  /** State of a defined task; undefined when the task is not defined. */
  #stateOf(id: string): TaskState | undefined {
    const record = this.#records.get(id)
    return record?.definition === undefined ? undefined : TASK_STATES[record.stateRank]
  }

  #graphChanged(): void {
    this.#topology = undefined
    this.#viewsChanged()
  }

  #viewsChanged(): void {
    this.#lists.clear()
    this.#canonical = undefined
  }

  // ------------------------------------------------------------------ task views

  /** The view of task `id`, or undefined when no ADD_TASK for it is held. */
  task(id: string): TaskView | undefined {
    let view = this.#taskViews.get(id)
    if (view === undefined) {
      const record = this.#records.get(id)
      view = record === undefined ? undefined : buildTaskView(id, record)
      if (view !== undefined) this.#taskViews.set(id, view)
    }
    return view
  }

  /** Every defined task, sorted by id. */
  tasks(): readonly TaskView[] {
    return this.#list('all', () => this.#viewsOf(this.#defined.sorted()))
  }

  /** Defined tasks in `state`, sorted by id. */
  tasksByState(state: TaskState): readonly TaskView[] {
    return this.#list(`state:${state}`, () => this.#viewsOf(this.#byState.sorted(state)))
  }

  /** Defined tasks of `thread` (the thread of their defining ADD_TASK), sorted by id. */
  tasksByThread(thread: string): readonly TaskView[] {
    return this.#list(`thread:${thread}`, () => this.#viewsOf(this.#byThread.sorted(thread)))
  }

  /**
   * Tasks ready to be claimed: DECIDED with every parent FINAL (a task without parents is ready once
   * DECIDED). A LINK from a parent whose ADD_TASK has not arrived counts as an unfinished parent, so a
   * late fact can never make a task look ready too early. Sorted by id; only `thread`'s tasks when given.
   */
  readyTasks(thread?: string): readonly TaskView[] {
    if (thread === undefined) return this.#list('ready', () => this.#viewsOf(this.#ready.sorted()))
    return this.#list(`ready:${thread}`, () => this.readyTasks().filter((task) => task.thread === thread))
  }

  #viewsOf(ids: readonly string[]): TaskView[] {
    return ids.map((id) => this.task(id)!)
  }

  #list(name: string, build: () => TaskView[]): readonly TaskView[] {
    let list = this.#lists.get(name)
    if (list === undefined) {
      list = Object.freeze(build())
      this.#lists.set(name, list)
    }
    return list
  }

  // ------------------------------------------------------------------ graph views

  /** Direct parents of task `id`, sorted (edges whose two ends are defined). */
  parents(id: string): readonly string[] {
    return this.#graph().parents(id)
  }

  /** Direct children of task `id`, sorted (edges whose two ends are defined). */
  children(id: string): readonly string[] {
    return this.#graph().children(id)
  }

  /** Transitive parents of task `id`, sorted; includes `id` itself only when it lies on a cycle. */
  ancestors(id: string): readonly string[] {
    return this.#graph().ancestors(id)
  }

  /** Transitive children of task `id`, sorted; includes `id` itself only when it lies on a cycle. */
  descendants(id: string): readonly string[] {
    return this.#graph().descendants(id)
  }

  /** Every edge `[parent, child]` whose two ends are defined, sorted. */
  edges(): readonly PlanEdge[] {
    return this.#graph().edges()
  }

  /**
   * Defined task ids in topological order (Kahn's algorithm, ties broken by smallest id). With
   * `thread`, only that thread's tasks and the edges among them. Throws {@link PlanCycleError} when
   * the graph has a cycle.
   */
  topologicalOrder(thread?: string): readonly string[] {
    return this.#graph().topologicalOrder(thread)
  }

  /**
   * Elementary cycles among defined tasks, each as task ids starting at its smallest id; the list is
   * sorted and bounded by `options.maxCycles` (default {@link DEFAULT_MAX_CYCLES}). Empty when acyclic.
   */
  findCycles(options?: FindCyclesOptions): readonly (readonly string[])[] {
    return this.#graph().findCycles(options)
  }

  #graph(): PlanTopology {
    this.#topology ??= new PlanTopology({
      taskIds: () => this.#defined.sorted(),
      taskIdsOfThread: (thread) => this.#byThread.sorted(thread),
      threadOf: (id) => this.#records.get(id)?.definition?.fact.thread,
      linkedParents: (id) => this.#parentsOf.get(id),
      linkedChildren: (id) => this.#childrenOf.get(id),
    })
    return this.#topology
  }

  // ------------------------------------------------------------------ canonical state

  /**
   * The derived state as plain, frozen, canonically ordered data (tasks with their state, epoch,
   * annotations, outputs and requires; edges). Stores holding the same facts return deep-equal values,
   * whatever the arrival order.
   */
  canonicalState(): CanonicalPlanState {
    this.#canonical ??= buildCanonicalState(this.tasks(), this.edges())
    return this.#canonical
  }

  /** What a state digest hashes: the {@link PlanStore.canonicalState}. */
  stateDigestInput(): CanonicalPlanState {
    return this.canonicalState()
  }
}

function compareEntries(a: KeyedFact, b: KeyedFact): number {
  return compareKeyedFacts(a.fact, a.key, b.fact, b.key)
}

/** Merge two arrays sorted by {@link compareEntries} into a new sorted array. */
function mergeSorted(left: readonly KeyedFact[], right: readonly KeyedFact[]): KeyedFact[] {
  if (left.length === 0) return [...right]
  const merged: KeyedFact[] = []
  let l = 0
  let r = 0
  while (l < left.length && r < right.length) {
    merged.push(compareEntries(left[l]!, right[r]!) <= 0 ? left[l++]! : right[r++]!)
  }
  while (l < left.length) merged.push(left[l++]!)
  while (r < right.length) merged.push(right[r++]!)
  return merged
}

/** Add `to` to the set under `from`; returns true when it was not there. */
function addTo(map: Map<string, Set<string>>, from: string, to: string): boolean {
  const set = map.get(from)
  if (set === undefined) {
    map.set(from, new Set([to]))
    return true
  }
  if (set.has(to)) return false
  set.add(to)
  return true
}
