import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { comparePlanFacts, PlanCycleError, PlanStore, planFactKey } from '../src/core/plan/index.ts'
import { type PlanFact, type PlanOp, TASK_STATES, type TaskState } from '../src/core/types.ts'

// ------------------------------------------------------------------ arbitraries (small alphabets: collisions)

const TASKS = ['a', 'b', 'c', 'd', 'e', 'f'] as const
const THREADS = ['t1', 't2'] as const
const ACTORS = ['did:key:x', 'did:key:y', 'did:key:z'] as const

const task = fc.constantFrom(...TASKS)
const meta = fc.record({
  thread: fc.constantFrom(...THREADS),
  lamport: fc.integer({ min: 0, max: 6 }),
  actor: fc.constantFrom(...ACTORS),
})

const addTaskOp: fc.Arbitrary<PlanOp> = fc.record({
  op: fc.constant('ADD_TASK' as const),
  task,
  capability: fc.constantFrom('sha256', 'wc'),
  requires: fc.array(fc.constantFrom('text', 'json', 'png'), { maxLength: 3 }),
  produces: fc.constantFrom('text', 'json'),
})
const requiresOp: fc.Arbitrary<PlanOp> = fc.record({
  op: fc.constant('REQUIRES' as const),
  task,
  artifactType: fc.constantFrom('text', 'json', 'csv'),
})
const producesOp: fc.Arbitrary<PlanOp> = fc.record({
  op: fc.constant('PRODUCES' as const),
  task,
  ref: fc.constantFrom('bafy1', 'bafy2', 'bafy3'),
})
const linkOp: fc.Arbitrary<PlanOp> = fc.record({
  op: fc.constant('LINK' as const),
  parent: task,
  child: task,
})
const stateOp: fc.Arbitrary<PlanOp> = fc.record({
  op: fc.constant('STATE' as const),
  task,
  state: fc.constantFrom(...TASK_STATES),
  epoch: fc.integer({ min: 0, max: 3 }),
})
const annotateOp: fc.Arbitrary<PlanOp> = fc.record({
  op: fc.constant('ANNOTATE' as const),
  task,
  key: fc.constantFrom('k1', 'k2'),
  value: fc.constantFrom('v1', 'v2', 'v3'),
})

/** Any plan fact, over small alphabets so tasks, edges, ties and duplicates collide often. */
const planFact: fc.Arbitrary<PlanFact> = fc
  .tuple(
    fc.oneof(
      { arbitrary: addTaskOp, weight: 3 },
      { arbitrary: linkOp, weight: 3 },
      { arbitrary: stateOp, weight: 3 },
      { arbitrary: requiresOp, weight: 1 },
      { arbitrary: producesOp, weight: 1 },
      { arbitrary: annotateOp, weight: 2 },
    ),
    meta,
  )
  .map(([op, m]) => ({ ...op, ...m }) as PlanFact)

const planFacts = fc.array(planFact, { maxLength: 40, size: 'medium' })

/** A fact list and a reordering of it with some facts repeated. */
const factsAndShuffledDuplicates = planFacts.chain((facts) =>
  fc
    .subarray(facts)
    .chain((duplicates) =>
      fc.shuffledSubarray([...facts, ...duplicates], { minLength: facts.length + duplicates.length }),
    )
    .map((shuffled) => [facts, shuffled] as const),
)

// ------------------------------------------------------------------ helpers

/** Every view of a store as plain data, so two stores can be compared in one assertion. */
function snapshot(store: PlanStore) {
  const attempt = <T>(run: () => T): T | string => {
    try {
      return run()
    } catch (error) {
      if (error instanceof PlanCycleError) return `cycle:${JSON.stringify(error.cycles)}`
      throw error
    }
  }
  const ids = (tasks: readonly { id: string }[]) => tasks.map((t) => t.id)
  return {
    size: store.size,
    facts: store.facts(),
    canonical: store.canonicalState(),
    tasks: store.tasks(),
    byState: Object.fromEntries(TASK_STATES.map((s) => [s, ids(store.tasksByState(s))])),
    byThread: Object.fromEntries(THREADS.map((t) => [t, ids(store.tasksByThread(t))])),
    ready: ids(store.readyTasks()),
    readyByThread: Object.fromEntries(THREADS.map((t) => [t, ids(store.readyTasks(t))])),
    graph: Object.fromEntries(
      TASKS.map((t) => [t, [store.parents(t), store.children(t), store.ancestors(t), store.descendants(t)]]),
    ),
    edges: store.edges(),
    topological: attempt(() => store.topologicalOrder()),
    topologicalByThread: Object.fromEntries(
      THREADS.map((t) => [t, attempt(() => store.topologicalOrder(t))]),
    ),
    cycles: store.findCycles(),
  }
}

const compareStrings = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
const sorted = (values: Iterable<string>) => [...values].sort(compareStrings)
const rank = (state: TaskState) => TASK_STATES.indexOf(state)

/** A naive reference model of the derived state, written straight from docs/PROTOCOL.md §6.7. */
function model(facts: readonly PlanFact[]) {
  const unique = [...new Map(facts.map((f) => [planFactKey(f), f])).values()]
  const definitions = new Map<string, Extract<PlanFact, { op: 'ADD_TASK' }>>()
  for (const f of [...unique].sort(comparePlanFacts)) {
    if (f.op === 'ADD_TASK' && !definitions.has(f.task)) definitions.set(f.task, f)
  }
  const stateOf = (id: string) => {
    let best = { state: 'DRAFT' as TaskState, epoch: 0 }
    for (const f of unique) {
      if (f.op !== 'STATE' || f.task !== id) continue
      if (f.epoch > best.epoch || (f.epoch === best.epoch && rank(f.state) > rank(best.state))) {
        best = { state: f.state, epoch: f.epoch }
      }
    }
    return best
  }
  const tasks = sorted(definitions.keys()).map((id) => {
    const definition = definitions.get(id)!
    const annotations = new Map<string, Extract<PlanFact, { op: 'ANNOTATE' }>>()
    for (const f of unique) {
      if (f.op !== 'ANNOTATE' || f.task !== id) continue
      const current = annotations.get(f.key)
      const wins =
        current === undefined ||
        f.lamport > current.lamport ||
        (f.lamport === current.lamport &&
          (f.actor > current.actor || (f.actor === current.actor && f.value > current.value)))
      if (wins) annotations.set(f.key, f)
    }
    const { state, epoch } = stateOf(id)
    return {
      annotations: sorted(annotations.keys()).map((key) => [key, annotations.get(key)!.value]),
      capability: definition.capability,
      id,
      outputs: sorted(new Set(unique.flatMap((f) => (f.op === 'PRODUCES' && f.task === id ? [f.ref] : [])))),
      produces: definition.produces,
      requires: sorted(
        new Set([
          ...definition.requires,
          ...unique.flatMap((f) => (f.op === 'REQUIRES' && f.task === id ? [f.artifactType] : [])),
        ]),
      ),
      state,
      stateEpoch: epoch,
      thread: definition.thread,
    }
  })
  const links = unique.flatMap((f) => (f.op === 'LINK' ? [[f.parent, f.child] as const] : []))
  const edgeKeys = new Set(
    links.filter(([p, c]) => definitions.has(p) && definitions.has(c)).map((e) => e.join('>')),
  )
  const edges = sorted(edgeKeys).map((k) => k.split('>'))
  const ready = tasks
    .filter(
      (t) =>
        t.state === 'DECIDED' &&
        links.every(([p, c]) => c !== t.id || (definitions.has(p) && stateOf(p).state === 'FINAL')),
    )
    .map((t) => t.id)
  return { canonical: { edges, tasks }, ready, edges }
}

/** Elementary cycles by brute force: every simple path from s through larger ids back to s. */
function bruteForceCycles(nodes: readonly string[], edges: readonly (readonly string[])[]): string[][] {
  const next = (id: string) => sorted(edges.filter(([p]) => p === id).map(([, c]) => c!))
  const cycles: string[][] = []
  for (const start of nodes) {
    const walk = (path: string[]) => {
      for (const n of next(path[path.length - 1]!)) {
        if (n === start) cycles.push([...path])
        else if (n > start && !path.includes(n)) walk([...path, n])
      }
    }
    walk([start])
  }
  return cycles.sort((a, b) => {
    for (let i = 0; i < Math.min(a.length, b.length); i++)
      if (a[i] !== b[i]) return compareStrings(a[i]!, b[i]!)
    return a.length - b.length
  })
}

/** Lexicographically smallest topological order (what Kahn with a min-heap must give), naively. */
function smallestTopologicalOrder(
  nodes: readonly string[],
  edges: readonly (readonly string[])[],
): string[] | null {
  const remaining = new Set(nodes)
  const order: string[] = []
  while (remaining.size > 0) {
    const free = sorted(remaining).find((n) => !edges.some(([p, c]) => c === n && remaining.has(p!)))
    if (free === undefined) return null
    order.push(free)
    remaining.delete(free)
  }
  return order
}

function storeOf(facts: Iterable<PlanFact>): PlanStore {
  return new PlanStore(facts)
}

// ------------------------------------------------------------------ properties

describe('PlanStore properties', () => {
  it('matches a naive reference model of docs/PROTOCOL.md §6.7', () => {
    fc.assert(
      fc.property(planFacts, (facts) => {
        const store = storeOf(facts)
        const expected = model(facts)
        expect(store.canonicalState()).toEqual(expected.canonical)
        expect(store.readyTasks().map((t) => t.id)).toEqual(expected.ready)
        expect(store.size).toBe(new Set(facts.map(planFactKey)).size)
        expect(store.facts()).toEqual([...store.facts()].sort(comparePlanFacts))
        const nodes = store.tasks().map((t) => t.id)
        expect(store.findCycles()).toEqual(bruteForceCycles(nodes, expected.edges))
        for (const id of nodes) {
          const reach = (from: string, forward: boolean) => {
            const seen = new Set<string>()
            const pending = [from]
            while (pending.length > 0) {
              const at = pending.pop()!
              for (const [p, c] of expected.edges) {
                const [here, there] = forward ? [p, c] : [c, p]
                if (here === at && !seen.has(there!)) {
                  seen.add(there!)
                  pending.push(there!)
                }
              }
            }
            return sorted(seen)
          }
          expect(store.descendants(id)).toEqual(reach(id, true))
          expect(store.ancestors(id)).toEqual(reach(id, false))
        }
      }),
      { numRuns: 1000 },
    )
  })

  it('any permutation of the facts, with duplicates, gives the same state and views', () => {
    fc.assert(
      fc.property(factsAndShuffledDuplicates, ([facts, shuffled]) => {
        expect(snapshot(storeOf(shuffled))).toEqual(snapshot(storeOf(facts)))
      }),
      { numRuns: 300 },
    )
  })

  it('incremental application with views read in between gives what one batch gives', () => {
    fc.assert(
      fc.property(planFacts, fc.array(fc.nat(), { minLength: 40, maxLength: 40 }), (facts, reads) => {
        const store = new PlanStore()
        facts.forEach((f, index) => {
          store.apply(f)
          // read a changing subset of views so that caches of many shapes are live when facts arrive
          const pick = reads[index]! % 4
          if (pick === 0) snapshot(store)
          else if (pick === 1) store.readyTasks()
          else if (pick === 2) store.tasksByState('DECIDED')
          else store.edges()
          if (index % 7 === 0) expect(snapshot(store)).toEqual(snapshot(storeOf(facts.slice(0, index + 1))))
        })
        expect(snapshot(store)).toEqual(snapshot(storeOf(facts)))
      }),
      { numRuns: 200 },
    )
  })

  it('merge is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(planFacts, planFacts, planFacts, (x, y, z) => {
        const [a, b, c] = [storeOf(x), storeOf(y), storeOf(z)]
        const join = (...stores: PlanStore[]) => {
          const result = stores[0]!.clone()
          for (const other of stores.slice(1)) result.merge(other)
          return result
        }
        expect(snapshot(join(a, b))).toEqual(snapshot(join(b, a)))
        const leftFirst = join(join(a, b), c)
        const rightFirst = join(a, join(b, c))
        expect(snapshot(leftFirst)).toEqual(snapshot(rightFirst))
        expect(snapshot(leftFirst)).toEqual(snapshot(storeOf([...x, ...y, ...z])))
        const again = leftFirst.clone()
        expect(again.merge(leftFirst)).toBe(0)
        expect(again.merge(a)).toBe(0)
        expect(snapshot(again)).toEqual(snapshot(leftFirst))
        expect(snapshot(join(a, a))).toEqual(snapshot(a))
        // merging did not change its inputs
        expect(snapshot(a)).toEqual(snapshot(storeOf(x)))
      }),
      { numRuns: 200 },
    )
  })

  it('facts split across N replicas converge whatever the gossip and merge order', () => {
    const scenario = fc.integer({ min: 2, max: 5 }).chain((replicas) =>
      fc.record({
        replicas: fc.constant(replicas),
        facts: fc.array(fc.tuple(planFact, fc.nat({ max: replicas - 1 })), { maxLength: 40 }),
        gossip: fc.array(fc.tuple(fc.nat({ max: replicas - 1 }), fc.nat({ max: replicas - 1 })), {
          maxLength: 12,
        }),
        finalOrder: fc.shuffledSubarray(
          Array.from({ length: replicas }, (_, i) => i),
          { minLength: replicas },
        ),
      }),
    )
    fc.assert(
      fc.property(scenario, ({ replicas, facts, gossip, finalOrder }) => {
        const stores = Array.from({ length: replicas }, () => new PlanStore())
        for (const [f, at] of facts) stores[at]!.apply(f)
        for (const [into, from] of gossip) stores[into]!.merge(stores[from]!)
        const expected = snapshot(storeOf(facts.map(([f]) => f)))
        // one replica collects everything in a random order
        const collector = new PlanStore()
        for (const index of finalOrder) collector.merge(stores[index]!)
        expect(snapshot(collector)).toEqual(expected)
        // and then every replica pulls from it
        for (const store of stores) {
          store.merge(collector)
          expect(snapshot(store)).toEqual(expected)
        }
      }),
      { numRuns: 200 },
    )
  })

  it('topological order respects every edge and is the smallest such order when acyclic', () => {
    // LINK facts only from a smaller to a larger index of a random ranking: always acyclic
    const dag = fc
      .tuple(fc.shuffledSubarray<string>([...TASKS], { minLength: TASKS.length }), planFacts)
      .map(([ranking, facts]) =>
        facts.filter((f) => f.op !== 'LINK' || ranking.indexOf(f.parent) < ranking.indexOf(f.child)),
      )
    fc.assert(
      fc.property(dag, (facts) => {
        const store = storeOf(facts)
        expect(store.findCycles()).toEqual([])
        const order = store.topologicalOrder()
        expect(sorted(order)).toEqual(store.tasks().map((t) => t.id))
        for (const [parent, child] of store.edges())
          expect(order.indexOf(parent)).toBeLessThan(order.indexOf(child))
        expect(order).toEqual(smallestTopologicalOrder(sorted(order), store.edges()))
        for (const thread of THREADS) {
          const threadOrder = store.topologicalOrder(thread)
          expect(sorted(threadOrder)).toEqual(store.tasksByThread(thread).map((t) => t.id))
          for (const [parent, child] of store.edges()) {
            if (threadOrder.includes(parent) && threadOrder.includes(child)) {
              expect(threadOrder.indexOf(parent)).toBeLessThan(threadOrder.indexOf(child))
            }
          }
        }
      }),
      { numRuns: 300 },
    )
  })

  it('topological order throws PlanCycleError exactly when there is a cycle', () => {
    fc.assert(
      fc.property(planFacts, (facts) => {
        const store = storeOf(facts)
        const cyclic = store.findCycles().length > 0
        if (cyclic) expect(() => store.topologicalOrder()).toThrow(PlanCycleError)
        else expect(store.topologicalOrder()).toHaveLength(store.tasks().length)
        for (const cycle of store.findCycles()) {
          expect(cycle[0]).toBe(sorted(cycle)[0])
          cycle.forEach((id, index) => {
            expect(store.children(id)).toContain(cycle[(index + 1) % cycle.length])
          })
        }
      }),
      { numRuns: 300 },
    )
  })

  it('within an epoch, a task state never decreases as facts are added', () => {
    fc.assert(
      fc.property(planFacts, (facts) => {
        const store = new PlanStore()
        const last = new Map<string, { state: TaskState; epoch: number }>()
        for (const f of facts) {
          store.apply(f)
          for (const view of store.tasks()) {
            const before = last.get(view.id)
            if (before !== undefined) {
              expect(view.stateEpoch).toBeGreaterThanOrEqual(before.epoch)
              if (view.stateEpoch === before.epoch)
                expect(rank(view.state)).toBeGreaterThanOrEqual(rank(before.state))
            }
            last.set(view.id, { state: view.state, epoch: view.stateEpoch })
          }
        }
      }),
      { numRuns: 300 },
    )
  })
})
