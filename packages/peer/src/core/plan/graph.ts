/**
 * Deterministic graph algorithms over task ids. A graph is a list of nodes (sorted ids) and a
 * `successors` function that returns, for a node, its sorted successors inside the node set.
 * Every algorithm is iterative (no recursion), so long chains of tasks cannot overflow the stack.
 */

import { compareStringLists, compareStrings } from './order.ts'

/** Sorted successors of a node, all of them inside the graph's node set. */
export type Successors = (id: string) => readonly string[]

/** Result of {@link topologicalSort}. */
export interface TopologicalSortResult {
  /** Nodes in topological order, ties broken by smallest id first. */
  readonly order: string[]
  /** Nodes that could not be ordered because they are on, or downstream of, a cycle; sorted. */
  readonly unordered: string[]
}

/**
 * Kahn's algorithm with a min-heap of ready nodes, so ties are always broken by the smallest id and
 * the order is a function of the graph alone. O((nodes + edges) · log nodes).
 */
export function topologicalSort(nodes: readonly string[], successors: Successors): TopologicalSortResult {
  const inDegree = new Map<string, number>()
  for (const node of nodes) inDegree.set(node, 0)
  for (const node of nodes) {
    for (const next of successors(node)) inDegree.set(next, (inDegree.get(next) ?? 0) + 1)
  }
  const ready = new StringHeap()
  for (const node of nodes) if (inDegree.get(node) === 0) ready.push(node)
  const order: string[] = []
  for (let node = ready.pop(); node !== undefined; node = ready.pop()) {
    order.push(node)
    for (const next of successors(node)) {
      const remaining = inDegree.get(next)! - 1
      inDegree.set(next, remaining)
      if (remaining === 0) ready.push(next)
    }
  }
  const unordered = order.length === nodes.length ? [] : nodes.filter((node) => inDegree.get(node)! > 0)
  return { order, unordered }
}

/**
 * Strongly connected components (Tarjan, iterative). Each component is sorted; components are sorted
 * by their smallest id.
 */
export function stronglyConnectedComponents(nodes: readonly string[], successors: Successors): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const onStack = new Set<string>()
  const stack: string[] = []
  const components: string[][] = []
  let counter = 0
  for (const root of nodes) {
    if (index.has(root)) continue
    const frames: { node: string; next: readonly string[]; position: number }[] = []
    const enter = (node: string): void => {
      index.set(node, counter)
      low.set(node, counter)
      counter++
      stack.push(node)
      onStack.add(node)
      frames.push({ node, next: successors(node), position: 0 })
    }
    enter(root)
    while (frames.length > 0) {
      const frame = frames[frames.length - 1]!
      if (frame.position < frame.next.length) {
        const next = frame.next[frame.position++]!
        if (!index.has(next)) enter(next)
        else if (onStack.has(next)) low.set(frame.node, Math.min(low.get(frame.node)!, index.get(next)!))
        continue
      }
      frames.pop()
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = []
        let member: string
        do {
          member = stack.pop()!
          onStack.delete(member)
          component.push(member)
        } while (member !== frame.node)
        components.push(component.sort(compareStrings))
      }
      const parent = frames[frames.length - 1]
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!))
    }
  }
  return components.sort((a, b) => compareStrings(a[0]!, b[0]!))
}

/**
 * Elementary cycles (Johnson's algorithm, iterative), at most `maxCycles` of them. Each cycle starts
 * at its smallest id (its canonical rotation); the list is sorted. Which cycles are found when the
 * limit cuts the search short is deterministic too: components are searched smallest id first.
 * Cost is O((nodes + edges) · (cycles + 1)) plus one SCC pass per node that lies on a cycle;
 * an acyclic graph costs one SCC pass.
 */
export function elementaryCycles(
  nodes: readonly string[],
  successors: Successors,
  maxCycles: number,
): string[][] {
  const cycles: string[][] = []
  const work: string[][] = []
  const pushCyclic = (components: string[][], inside: (id: string) => readonly string[]): void => {
    for (let position = components.length - 1; position >= 0; position--) {
      const component = components[position]!
      const only = component[0]!
      if (component.length > 1 || inside(only).includes(only)) work.push(component)
    }
  }
  pushCyclic(stronglyConnectedComponents(nodes, successors), successors)
  while (work.length > 0 && cycles.length < maxCycles) {
    const component = work.pop()!
    const members = new Set(component)
    const inside = (id: string): readonly string[] => successors(id).filter((next) => members.has(next))
    searchCircuits(component[0]!, inside, cycles, maxCycles)
    members.delete(component[0]!)
    const rest = component.slice(1)
    pushCyclic(stronglyConnectedComponents(rest, inside), inside)
  }
  return cycles.sort(compareStringLists)
}

/** Johnson's CIRCUIT procedure from `start`, without recursion. Appends the cycles through `start`. */
function searchCircuits(start: string, successors: Successors, cycles: string[][], maxCycles: number): void {
  const blocked = new Set<string>([start])
  const blockedBy = new Map<string, Set<string>>()
  const path: string[] = [start]
  const frames: { node: string; next: readonly string[]; position: number; closed: boolean }[] = [
    { node: start, next: successors(start), position: 0, closed: false },
  ]
  const unblock = (node: string): void => {
    const pending = [node]
    for (let current = pending.pop(); current !== undefined; current = pending.pop()) {
      if (!blocked.delete(current)) continue
      const waiting = blockedBy.get(current)
      if (waiting === undefined) continue
      pending.push(...waiting)
      waiting.clear()
    }
  }
  while (frames.length > 0) {
    const frame = frames[frames.length - 1]!
    if (frame.position < frame.next.length) {
      const next = frame.next[frame.position++]!
      if (next === start) {
        cycles.push([...path])
        frame.closed = true
        if (cycles.length >= maxCycles) return
      } else if (!blocked.has(next)) {
        path.push(next)
        blocked.add(next)
        frames.push({ node: next, next: successors(next), position: 0, closed: false })
      }
      continue
    }
    frames.pop()
    path.pop()
    if (frame.closed) {
      unblock(frame.node)
    } else {
      for (const next of frame.next) {
        let waiting = blockedBy.get(next)
        if (waiting === undefined) {
          waiting = new Set()
          blockedBy.set(next, waiting)
        }
        waiting.add(frame.node)
      }
    }
    const parent = frames[frames.length - 1]
    if (parent !== undefined && frame.closed) parent.closed = true
  }
}

/**
 * Every node reachable from `start` by one or more steps of `next`, sorted. `start` itself is in the
 * result only when it lies on a cycle.
 */
export function reachable(start: string, next: Successors): string[] {
  const seen = new Set<string>()
  const pending = [...next(start)]
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    if (seen.has(node)) continue
    seen.add(node)
    for (const following of next(node)) if (!seen.has(following)) pending.push(following)
  }
  return [...seen].sort(compareStrings)
}

/** A binary min-heap of strings ordered by code units. */
class StringHeap {
  readonly #items: string[] = []

  push(item: string): void {
    const items = this.#items
    items.push(item)
    let child = items.length - 1
    while (child > 0) {
      const parent = (child - 1) >> 1
      if (compareStrings(items[parent]!, items[child]!) <= 0) break
      ;[items[parent], items[child]] = [items[child]!, items[parent]!]
      child = parent
    }
  }

  pop(): string | undefined {
    const items = this.#items
    const top = items[0]
    const last = items.pop()
    if (items.length === 0 || last === undefined) return top
    items[0] = last
    let parent = 0
    for (;;) {
      const left = 2 * parent + 1
      const right = left + 1
      let smallest = parent
      if (left < items.length && compareStrings(items[left]!, items[smallest]!) < 0) smallest = left
      if (right < items.length && compareStrings(items[right]!, items[smallest]!) < 0) smallest = right
      if (smallest === parent) return top
      ;[items[parent], items[smallest]] = [items[smallest]!, items[parent]!]
      parent = smallest
    }
  }
}
