import { describe, expect, it } from 'vitest'
import { CanSwarmError, InvalidArgumentError } from '../src/core/errors.ts'
import {
  comparePlanFacts,
  normalizePlanFact,
  PLAN_OPS,
  PlanCycleError,
  PlanStore,
  planFactKey,
} from '../src/core/plan/index.ts'
import type { PlanFact, PlanOp, TaskState } from '../src/core/types.ts'

const ALICE = 'did:key:z6MkAlice'
const BOB = 'did:key:z6MkBob'

/** A fact of thread `need-1` written by `actor` at `lamport`. */
function fact(op: PlanOp, lamport = 1, actor = ALICE, thread = 'need-1'): PlanFact {
  return { ...op, thread, lamport, actor } as PlanFact
}

function addTask(
  task: string,
  lamport = 1,
  extra: Partial<{ capability: string; requires: string[]; thread: string }> = {},
) {
  return fact(
    {
      op: 'ADD_TASK',
      task,
      capability: extra.capability ?? 'sha256',
      requires: extra.requires ?? [],
      produces: 'text/plain',
    },
    lamport,
    ALICE,
    extra.thread ?? 'need-1',
  )
}

const link = (parent: string, child: string, lamport = 1) => fact({ op: 'LINK', parent, child }, lamport)
const state = (task: string, s: TaskState, epoch = 1, lamport = 1, actor = ALICE) =>
  fact({ op: 'STATE', task, state: s, epoch }, lamport, actor)
const annotate = (task: string, key: string, value: string, lamport: number, actor = ALICE) =>
  fact({ op: 'ANNOTATE', task, key, value }, lamport, actor)

const ids = (tasks: readonly { id: string }[]) => tasks.map((task) => task.id)

/** a → b → d, a → c → d, plus e alone. */
function diamond(): PlanStore {
  return new PlanStore([
    ...['a', 'b', 'c', 'd', 'e'].map((id) => addTask(id)),
    link('a', 'b'),
    link('a', 'c'),
    link('b', 'd'),
    link('c', 'd'),
  ])
}

describe('PlanStore facts', () => {
  it('adds a fact once: apply is idempotent and size counts distinct facts', () => {
    const store = new PlanStore()
    expect(store.apply(addTask('a'))).toBe(true)
    expect(store.apply(addTask('a'))).toBe(false)
    expect(store.apply({ ...addTask('a') })).toBe(false)
    expect(store.size).toBe(1)
    expect(store.applyAll([addTask('a'), addTask('b'), addTask('b')])).toBe(1)
    expect(store.size).toBe(2)
    expect(store.has(addTask('b'))).toBe(true)
    expect(store.has(addTask('c'))).toBe(false)
  })

  it('keys a fact by its whole content, in a fixed field order', () => {
    const a = link('p', 'c', 3)
    const reordered = {
      actor: a.actor,
      child: 'c',
      lamport: 3,
      thread: a.thread,
      parent: 'p',
      op: 'LINK',
    } as PlanFact
    expect(planFactKey(a)).toBe(planFactKey(reordered))
    expect(planFactKey(a)).toBe(`["LINK","need-1",3,"${ALICE}","p","c"]`)
    expect(planFactKey(a)).not.toBe(planFactKey(link('p', 'c', 4)))
    expect(planFactKey(a)).not.toBe(planFactKey({ ...a, thread: 'need-2' }))
  })

  it('returns facts in canonical order (lamport, actor, key) whatever the arrival order', () => {
    const facts = [
      link('a', 'b', 2),
      addTask('b', 1),
      state('a', 'DECIDED', 1, 2, BOB),
      addTask('a', 1),
      link('a', 'c', 2),
    ]
    const store = new PlanStore(facts)
    const sorted = [...facts].sort(comparePlanFacts)
    expect(store.facts()).toEqual(sorted)
    expect(store.facts().map((f) => f.lamport)).toEqual([1, 1, 2, 2, 2])
    expect(store.facts()[4]!.actor).toBe(BOB)
    expect(new PlanStore([...facts].reverse()).facts()).toEqual(sorted)
  })

  it('keeps facts() consistent as facts keep arriving between reads', () => {
    const store = new PlanStore()
    const all = [5, 1, 4, 2, 3, 0].map((lamport) => link('x', `c${lamport}`, lamport))
    for (const f of all) {
      store.apply(f)
      expect(store.facts()).toEqual(store.facts().toSorted(comparePlanFacts))
    }
    expect(store.facts().map((f) => f.lamport)).toEqual([0, 1, 2, 3, 4, 5])
  })

  it('copies and freezes facts: a caller cannot change what the store holds', () => {
    const requires = ['text/plain']
    const input = Object.assign(addTask('a', 1, { requires }), { extra: 'dropped' })
    const store = new PlanStore([input])
    requires.push('image/png')
    const held = store.facts()[0]!
    expect(held).toEqual(addTask('a', 1, { requires: ['text/plain'] }))
    expect(Object.isFrozen(held)).toBe(true)
    expect(Object.isFrozen(store.facts())).toBe(true)
    expect(store.task('a')!.requires).toEqual(['text/plain'])
  })

  it('rejects malformed facts with a typed error naming the field, and applyAll is all-or-nothing', () => {
    const store = new PlanStore()
    const bad: [unknown, string][] = [
      [null, 'fact'],
      [{ ...addTask('a'), op: 'DELETE' }, 'fact.op'],
      [{ ...addTask('a'), lamport: -1 }, 'fact.lamport'],
      [{ ...addTask('a'), lamport: 1.5 }, 'fact.lamport'],
      [{ ...addTask('a'), lamport: Number.NaN }, 'fact.lamport'],
      [{ ...addTask('a'), actor: '' }, 'fact.actor'],
      [{ ...addTask('a'), task: 7 }, 'fact.task'],
      [{ ...addTask('a'), requires: 'text/plain' }, 'fact.requires'],
      [{ ...addTask('a'), requires: [1] }, 'fact.requires.0'],
      [{ ...state('a', 'FINAL'), state: 'DONE' }, 'fact.state'],
      [{ ...state('a', 'FINAL'), epoch: -2 }, 'fact.epoch'],
      [{ ...link('a', 'b'), child: '' }, 'fact.child'],
    ]
    for (const [input, field] of bad) {
      const error = (() => {
        try {
          store.apply(input as PlanFact)
        } catch (caught) {
          return caught
        }
      })()
      expect(error, field).toBeInstanceOf(InvalidArgumentError)
      expect((error as InvalidArgumentError).code).toBe('INVALID_ARGUMENT')
      expect((error as InvalidArgumentError).field).toBe(field)
    }
    expect(() => store.applyAll([addTask('a'), { ...addTask('b'), lamport: -1 }])).toThrow(
      InvalidArgumentError,
    )
    expect(store.size).toBe(0)
  })

  it('normalises -0 to 0', () => {
    expect(Object.is(normalizePlanFact({ ...addTask('a'), lamport: -0 }).lamport, 0)).toBe(true)
  })

  it('lists every op', () => {
    expect(PLAN_OPS).toEqual(['ADD_TASK', 'REQUIRES', 'PRODUCES', 'LINK', 'STATE', 'ANNOTATE'])
  })
})

describe('PlanStore task semantics', () => {
  it('ADD_TASK defines a task: DRAFT at epoch 0 with no STATE fact', () => {
    const store = new PlanStore([
      addTask('a', 1, { requires: ['b/json', 'a/text', 'b/json'], capability: 'wc' }),
    ])
    expect(store.task('a')).toEqual({
      id: 'a',
      thread: 'need-1',
      capability: 'wc',
      requires: ['a/text', 'b/json'],
      produces: 'text/plain',
      outputs: [],
      state: 'DRAFT',
      stateEpoch: 0,
      annotations: {},
    })
    expect(store.task('missing')).toBeUndefined()
    expect(Object.isFrozen(store.task('a'))).toBe(true)
  })

  it('the first ADD_TASK in (lamport, actor, key) order defines a task, whatever the arrival order', () => {
    const early = fact(
      { op: 'ADD_TASK', task: 'a', capability: 'late-bob', requires: [], produces: 'x' },
      2,
      BOB,
    )
    const first = fact(
      { op: 'ADD_TASK', task: 'a', capability: 'alice', requires: ['r'], produces: 'y' },
      2,
      ALICE,
    )
    const later = fact(
      { op: 'ADD_TASK', task: 'a', capability: 'later', requires: [], produces: 'z' },
      3,
      ALICE,
    )
    for (const order of [
      [early, first, later],
      [later, early, first],
      [first, later, early],
    ]) {
      const store = new PlanStore(order)
      expect(store.task('a')).toMatchObject({ capability: 'alice', requires: ['r'], produces: 'y' })
      expect(store.tasks()).toHaveLength(1)
    }
    const tie = (capability: string) =>
      fact({ op: 'ADD_TASK', task: 'a', capability, requires: [], produces: 'x' }, 2, ALICE)
    expect(new PlanStore([tie('zz'), tie('aa')]).task('a')!.capability).toBe('aa')
    expect(new PlanStore([tie('aa'), tie('zz')]).task('a')!.capability).toBe('aa')
  })

  it('REQUIRES and PRODUCES add to sets', () => {
    const store = new PlanStore([
      addTask('a', 1, { requires: ['text/plain'] }),
      fact({ op: 'REQUIRES', task: 'a', artifactType: 'application/json' }, 2),
      fact({ op: 'REQUIRES', task: 'a', artifactType: 'text/plain' }, 3),
      fact({ op: 'PRODUCES', task: 'a', ref: 'bafy2' }, 4),
      fact({ op: 'PRODUCES', task: 'a', ref: 'bafy1' }, 5),
      fact({ op: 'PRODUCES', task: 'a', ref: 'bafy2' }, 6, BOB),
    ])
    expect(store.task('a')!.requires).toEqual(['application/json', 'text/plain'])
    expect(store.task('a')!.outputs).toEqual(['bafy1', 'bafy2'])
  })

  it('STATE is monotone within an epoch', () => {
    const store = new PlanStore([addTask('a')])
    const seen: TaskState[] = []
    for (const s of ['CLAIMED', 'DECIDED', 'VERIFIED', 'COMMITTED', 'DRAFT', 'FINAL', 'CLAIMED'] as const) {
      store.apply(state('a', s, 1, seen.length + 2))
      seen.push(store.task('a')!.state)
    }
    expect(seen).toEqual(['CLAIMED', 'CLAIMED', 'VERIFIED', 'VERIFIED', 'VERIFIED', 'FINAL', 'FINAL'])
    expect(store.task('a')!.stateEpoch).toBe(1)
  })

  it('a higher epoch reopens a task (INVALIDATE), and a lower epoch never overrides it', () => {
    const store = new PlanStore([addTask('a'), state('a', 'FINAL', 1, 5)])
    expect(store.task('a')).toMatchObject({ state: 'FINAL', stateEpoch: 1 })
    store.apply(state('a', 'DECIDED', 2, 6))
    expect(store.task('a')).toMatchObject({ state: 'DECIDED', stateEpoch: 2 })
    store.apply(state('a', 'FINAL', 1, 9))
    store.apply(state('a', 'VERIFIED', 0, 10))
    expect(store.task('a')).toMatchObject({ state: 'DECIDED', stateEpoch: 2 })
    expect(
      new PlanStore([state('a', 'DECIDED', 2, 6), addTask('a'), state('a', 'FINAL', 1, 5)]).task('a'),
    ).toMatchObject({ state: 'DECIDED', stateEpoch: 2 })
  })

  it('ANNOTATE: last writer wins by (lamport, actor), ties broken by the greater value', () => {
    const facts = [
      annotate('a', 'owner', 'first', 1),
      annotate('a', 'owner', 'alice-at-5', 5, ALICE),
      annotate('a', 'owner', 'bob-at-5', 5, BOB),
      annotate('a', 'note', 'm', 4, ALICE),
      annotate('a', 'note', 'z', 4, ALICE),
      annotate('a', 'note', 'a', 4, ALICE),
      annotate('a', 'old', 'kept', 3),
    ]
    for (const order of [
      facts,
      [...facts].reverse(),
      [facts[2]!, facts[5]!, facts[0]!, facts[4]!, facts[1]!, facts[3]!, facts[6]!],
    ]) {
      const store = new PlanStore([addTask('a'), ...order])
      expect(store.task('a')!.annotations).toEqual({ note: 'z', old: 'kept', owner: 'bob-at-5' })
      expect(Object.keys(store.task('a')!.annotations)).toEqual(['note', 'old', 'owner'])
    }
  })

  it('annotation keys are data, never prototype pollution', () => {
    const store = new PlanStore([
      addTask('a'),
      annotate('a', '__proto__', 'x', 1),
      annotate('a', 'constructor', 'y', 1),
    ])
    const annotations = store.task('a')!.annotations
    expect(Object.keys(annotations)).toEqual(['__proto__', 'constructor'])
    expect(Object.getPrototypeOf(annotations)).toBe(Object.prototype)
    expect(store.canonicalState().tasks[0]!.annotations).toEqual([
      ['__proto__', 'x'],
      ['constructor', 'y'],
    ])
  })

  it('keeps facts about a task whose ADD_TASK arrives late (LINK first, then the task)', () => {
    const store = new PlanStore([
      link('a', 'b', 1),
      state('b', 'DECIDED', 1, 2),
      annotate('b', 'k', 'v', 3),
      fact({ op: 'PRODUCES', task: 'b', ref: 'bafy' }, 4),
      addTask('a', 5),
    ])
    expect(store.task('b')).toBeUndefined()
    expect(store.edges()).toEqual([])
    expect(store.children('a')).toEqual([])
    expect(ids(store.tasks())).toEqual(['a'])
    store.apply(addTask('b', 6))
    expect(store.task('b')).toMatchObject({
      state: 'DECIDED',
      stateEpoch: 1,
      annotations: { k: 'v' },
      outputs: ['bafy'],
    })
    expect(store.edges()).toEqual([['a', 'b']])
    expect(store.parents('b')).toEqual(['a'])
    expect(store.children('a')).toEqual(['b'])
  })
})

describe('PlanStore views', () => {
  it('indexes tasks by state and by thread, sorted by id', () => {
    const store = new PlanStore([
      addTask('c'),
      addTask('a'),
      addTask('b', 1, { thread: 'need-2' }),
      state('a', 'DECIDED'),
      state('c', 'DECIDED'),
    ])
    expect(ids(store.tasks())).toEqual(['a', 'b', 'c'])
    expect(ids(store.tasksByState('DECIDED'))).toEqual(['a', 'c'])
    expect(ids(store.tasksByState('DRAFT'))).toEqual(['b'])
    expect(store.tasksByState('FINAL')).toEqual([])
    expect(ids(store.tasksByThread('need-1'))).toEqual(['a', 'c'])
    expect(ids(store.tasksByThread('need-2'))).toEqual(['b'])
    expect(store.tasksByThread('nope')).toEqual([])
    store.apply(state('a', 'FINAL', 1, 2))
    expect(ids(store.tasksByState('DECIDED'))).toEqual(['c'])
    expect(ids(store.tasksByState('FINAL'))).toEqual(['a'])
  })

  it('ready tasks: DECIDED with every parent FINAL', () => {
    const store = diamond()
    expect(store.readyTasks()).toEqual([])
    store.applyAll(['a', 'b', 'c', 'd', 'e'].map((id) => state(id, 'DECIDED')))
    expect(ids(store.readyTasks())).toEqual(['a', 'e'])
    store.apply(state('a', 'FINAL', 1, 2))
    expect(ids(store.readyTasks())).toEqual(['b', 'c', 'e'])
    store.apply(state('b', 'FINAL', 1, 3))
    expect(ids(store.readyTasks())).toEqual(['c', 'e'])
    store.apply(state('c', 'VERIFIED', 1, 3))
    expect(ids(store.readyTasks())).toEqual(['e'])
    store.apply(state('c', 'FINAL', 1, 4))
    expect(ids(store.readyTasks())).toEqual(['d', 'e'])
    // INVALIDATE reopens a at epoch 2: a is ready again; d's parents b and c are still FINAL
    store.apply(state('a', 'DECIDED', 2, 5))
    expect(ids(store.readyTasks())).toEqual(['a', 'd', 'e'])
  })

  it('ready tasks filter by thread, and a parent in another thread must be FINAL too', () => {
    const store = new PlanStore([
      addTask('x', 1, { thread: 'need-2' }),
      addTask('y'),
      addTask('z'),
      link('x', 'y'),
      state('x', 'DECIDED'),
      state('y', 'DECIDED'),
      state('z', 'DECIDED'),
    ])
    expect(ids(store.readyTasks())).toEqual(['x', 'z'])
    expect(ids(store.readyTasks('need-1'))).toEqual(['z'])
    expect(ids(store.readyTasks('need-2'))).toEqual(['x'])
    store.apply(state('x', 'FINAL', 1, 2))
    expect(ids(store.readyTasks('need-1'))).toEqual(['y', 'z'])
  })

  it('a LINK from a parent not yet defined blocks readiness', () => {
    const store = new PlanStore([addTask('b'), state('b', 'DECIDED'), link('a', 'b')])
    expect(store.parents('b')).toEqual([])
    expect(store.readyTasks()).toEqual([])
    store.apply(addTask('a'))
    expect(store.readyTasks().map((t) => t.id)).toEqual([])
    store.apply(state('a', 'FINAL'))
    expect(ids(store.readyTasks())).toEqual(['b'])
  })

  it('parents, children, ancestors and descendants (sorted, transitive)', () => {
    const store = diamond()
    expect(store.parents('d')).toEqual(['b', 'c'])
    expect(store.children('a')).toEqual(['b', 'c'])
    expect(store.parents('a')).toEqual([])
    expect(store.ancestors('d')).toEqual(['a', 'b', 'c'])
    expect(store.ancestors('b')).toEqual(['a'])
    expect(store.descendants('a')).toEqual(['b', 'c', 'd'])
    expect(store.descendants('d')).toEqual([])
    expect(store.descendants('e')).toEqual([])
    expect(store.ancestors('unknown')).toEqual([])
    expect(store.edges()).toEqual([
      ['a', 'b'],
      ['a', 'c'],
      ['b', 'd'],
      ['c', 'd'],
    ])
    expect(Object.isFrozen(store.ancestors('d'))).toBe(true)
  })

  it('ancestors include the task itself only on a cycle', () => {
    const store = new PlanStore([
      addTask('a'),
      addTask('b'),
      addTask('c'),
      link('a', 'b'),
      link('b', 'a'),
      link('b', 'c'),
    ])
    expect(store.ancestors('a')).toEqual(['a', 'b'])
    expect(store.descendants('a')).toEqual(['a', 'b', 'c'])
    expect(store.ancestors('c')).toEqual(['a', 'b'])
  })

  it('topological order: Kahn with ties broken by smallest id', () => {
    const store = new PlanStore([
      ...['m', 'b', 'z', 'a', 'k'].map((id) => addTask(id)),
      link('z', 'a'),
      link('m', 'b'),
      link('b', 'a'),
    ])
    // ready at first: k, m, z → k; then m → b ready; b < z → b; then z → a
    expect(store.topologicalOrder()).toEqual(['k', 'm', 'b', 'z', 'a'])
    expect(diamond().topologicalOrder()).toEqual(['a', 'b', 'c', 'd', 'e'])
  })

  it('topological order per thread uses only the edges inside the thread', () => {
    const store = new PlanStore([
      addTask('a'),
      addTask('b'),
      addTask('c', 1, { thread: 'need-2' }),
      link('b', 'a'),
      link('a', 'c'),
      link('c', 'b'), // cross-thread cycle b → a → c → b
    ])
    expect(store.topologicalOrder('need-1')).toEqual(['b', 'a'])
    expect(store.topologicalOrder('need-2')).toEqual(['c'])
    expect(store.topologicalOrder('need-3')).toEqual([])
    expect(() => store.topologicalOrder()).toThrow(PlanCycleError)
  })

  it('reports cycles: typed error from topologicalOrder, canonical cycles from findCycles', () => {
    const store = new PlanStore([
      ...['a', 'b', 'c', 'd', 'e', 'f'].map((id) => addTask(id)),
      link('c', 'a'),
      link('a', 'b'),
      link('b', 'c'),
      link('b', 'a'),
      link('e', 'e'),
      link('d', 'f'),
    ])
    expect(store.findCycles()).toEqual([['a', 'b'], ['a', 'b', 'c'], ['e']])
    expect(store.findCycles({ maxCycles: 1 })).toHaveLength(1)
    let error: unknown
    try {
      store.topologicalOrder()
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(PlanCycleError)
    expect(error).toBeInstanceOf(CanSwarmError)
    const cycleError = error as PlanCycleError
    expect(cycleError.code).toBe('INVALID_ARGUMENT')
    expect(cycleError.cycles).toEqual([['a', 'b'], ['a', 'b', 'c'], ['e']])
    expect(cycleError.thread).toBeUndefined()
    expect(cycleError.message).toContain('a → b → a')
    expect(() => store.findCycles({ maxCycles: 0 })).toThrow(InvalidArgumentError)
    expect(diamond().findCycles()).toEqual([])
  })

  it('a cycle through a task not yet defined is not a cycle of the graph', () => {
    const store = new PlanStore([addTask('a'), addTask('b'), link('a', 'b'), link('b', 'c'), link('c', 'a')])
    expect(store.findCycles()).toEqual([])
    expect(store.topologicalOrder()).toEqual(['a', 'b'])
    store.apply(addTask('c'))
    expect(store.findCycles()).toEqual([['a', 'b', 'c']])
    expect(() => store.topologicalOrder()).toThrow(PlanCycleError)
  })

  it('canonical state: sorted plain data, equal for equal fact sets', () => {
    const store = diamond()
    store.applyAll([
      state('d', 'DECIDED', 3),
      annotate('d', 'z', '1', 2),
      annotate('d', 'a', '2', 2),
      fact({ op: 'PRODUCES', task: 'd', ref: 'bafy' }, 3),
    ])
    const canonical = store.canonicalState()
    expect(canonical.edges).toEqual(store.edges())
    expect(canonical.tasks.map((t) => t.id)).toEqual(['a', 'b', 'c', 'd', 'e'])
    expect(canonical.tasks[3]).toEqual({
      annotations: [
        ['a', '2'],
        ['z', '1'],
      ],
      capability: 'sha256',
      id: 'd',
      outputs: ['bafy'],
      produces: 'text/plain',
      requires: [],
      state: 'DECIDED',
      stateEpoch: 3,
      thread: 'need-1',
    })
    expect(Object.keys(canonical.tasks[3]!)).toEqual(Object.keys(canonical.tasks[3]!).toSorted())
    expect(Object.isFrozen(canonical.tasks[3]!.annotations[0])).toBe(true)
    expect(store.stateDigestInput()).toBe(canonical)
    expect(new PlanStore([...store.facts()].reverse()).canonicalState()).toEqual(canonical)
    expect(JSON.stringify(new PlanStore([...store.facts()].reverse()).canonicalState())).toBe(
      JSON.stringify(canonical),
    )
  })

  it('views are recomputed after a new fact, and kept when a fact is a duplicate', () => {
    const store = diamond()
    const before = store.tasks()
    store.apply(addTask('a'))
    expect(store.tasks()).toBe(before)
    store.apply(state('e', 'DECIDED'))
    expect(store.tasks()).not.toBe(before)
    expect(store.task('a')).toBe(before[0])
  })

  it('merge and clone', () => {
    const left = new PlanStore([addTask('a'), state('a', 'DECIDED')])
    const right = new PlanStore([addTask('b'), link('a', 'b'), state('a', 'DECIDED')])
    const copy = left.clone()
    expect(copy.merge(right)).toBe(2)
    expect(copy.merge(right)).toBe(0)
    expect(left.size).toBe(2)
    expect(copy.size).toBe(4)
    expect(copy.edges()).toEqual([['a', 'b']])
    expect(left.edges()).toEqual([])
    expect(copy.clone().canonicalState()).toEqual(copy.canonicalState())
  })
})

describe('PlanStore at scale', () => {
  it('handles a 20 000-task chain without recursion limits, acyclic and then closed into one cycle', () => {
    const count = 20_000
    const facts: PlanFact[] = []
    const name = (index: number) => `t${String(index).padStart(6, '0')}`
    for (let index = 0; index < count; index++) {
      facts.push(addTask(name(index), index + 1), state(name(index), 'DECIDED', 1, index + 1))
      if (index > 0) facts.push(link(name(index - 1), name(index), index + 1))
    }
    const store = new PlanStore(facts.reverse())
    expect(store.topologicalOrder()).toHaveLength(count)
    expect(store.topologicalOrder()[0]).toBe(name(0))
    expect(store.ancestors(name(count - 1))).toHaveLength(count - 1)
    expect(ids(store.readyTasks())).toEqual([name(0)])
    expect(store.findCycles()).toEqual([])
    // close the chain into one big cycle
    store.apply(link(name(count - 1), name(0), count + 1))
    expect(store.findCycles()).toEqual([Array.from({ length: count }, (_, index) => name(index))])
    expect(() => store.topologicalOrder()).toThrow(PlanCycleError)
  })

  it('answers a view after each of thousands of single applies quickly', () => {
    const store = new PlanStore()
    const started = performance.now()
    for (let index = 0; index < 3000; index++) {
      const id = `t${String(index).padStart(5, '0')}`
      store.apply(addTask(id, index + 1))
      if (index > 0) store.apply(link(`t${String(index - 1).padStart(5, '0')}`, id, index + 1))
      store.apply(state(id, 'DECIDED', 1, index + 1))
      expect(store.readyTasks()).toHaveLength(1)
    }
    expect(store.size).toBe(3 * 3000 - 1)
    expect(ids(store.readyTasks())).toEqual(['t00000'])
    expect(performance.now() - started).toBeLessThan(5000)
  })
})
