/**
 * The plan of a thread drawn as a DAG: input artifacts → tasks (coloured by state, with their
 * lease: granted to whom, or CLAIMs waiting for an anchor's GRANT) → outputs.
 */
import type { TaskInfo, ThreadState } from '@can-swarm/peer'
import { s, shortId } from './dom.ts'
import { finalOutputs, planTasks } from './model.ts'

const NODE_W = 150
const NODE_H = 44
const GAP_X = 50
const GAP_Y = 16

interface Placed {
  id: string
  label: string
  sub: string
  cls: string
  column: number
  row: number
}

/** A task's lease in a few words: granted to whom, or how many CLAIMs wait for an anchor's GRANT. */
function leaseText(task: TaskInfo): string {
  if (task.lease) return ` · lease ${shortId(task.lease.worker.slice(8), 4)}`
  if (task.state !== 'DECIDED') return ''
  const asked = [...task.requests.values()].filter((round) => round === task.round).length
  return asked > 0 ? ` · ${asked} CLAIM${asked === 1 ? '' : 's'}` : ''
}

/** An SVG of the thread's plan, or undefined when there is no plan yet. */
export function planDag(state: ThreadState): SVGElement | undefined {
  const tasks = planTasks(state)
  if (tasks.length === 0) return undefined
  const depth = new Map<string, number>()
  const depthOf = (id: string, seen = new Set<string>()): number => {
    const known = depth.get(id)
    if (known !== undefined) return known
    if (seen.has(id)) return 1
    seen.add(id)
    const task = tasks.find((t) => t.id === id)
    const value = 1 + Math.max(0, ...(task?.parents ?? []).map((parent) => depthOf(parent, seen)))
    depth.set(id, value)
    return value
  }
  const nodes: Placed[] = []
  const rows = new Map<number, number>()
  const place = (column: number): number => {
    const row = rows.get(column) ?? 0
    rows.set(column, row + 1)
    return row
  }
  for (const cid of state.need?.inputs ?? []) {
    nodes.push({
      id: `in:${cid}`,
      label: 'input',
      sub: shortId(cid, 6),
      cls: 'artifact',
      column: 0,
      row: place(0),
    })
  }
  for (const task of tasks) {
    const column = depthOf(task.id)
    nodes.push({
      id: task.id,
      label: task.spec.capability,
      sub: task.state + leaseText(task),
      cls: `task state-${task.state.toLowerCase()}`,
      column,
      row: place(column),
    })
  }
  const lastColumn = Math.max(...nodes.map((node) => node.column)) + 1
  for (const cid of finalOutputs(state)) {
    nodes.push({
      id: `out:${cid}`,
      label: 'result',
      sub: shortId(cid, 6),
      cls: 'artifact result',
      column: lastColumn,
      row: place(lastColumn),
    })
  }
  const byId = new Map(nodes.map((node) => [node.id, node]))
  const edges: Array<[string, string]> = []
  for (const task of tasks) {
    if (task.parents.length === 0)
      for (const cid of state.need?.inputs ?? []) edges.push([`in:${cid}`, task.id])
    for (const parent of task.parents) edges.push([parent, task.id])
  }
  const parents = new Set(tasks.flatMap((task) => task.parents))
  for (const cid of finalOutputs(state)) {
    for (const task of tasks)
      if (!parents.has(task.id) && task.commit?.outputs.includes(cid)) edges.push([task.id, `out:${cid}`])
  }
  const x = (node: Placed) => 10 + node.column * (NODE_W + GAP_X)
  const y = (node: Placed) => 10 + node.row * (NODE_H + GAP_Y)
  const width = 20 + (Math.max(...nodes.map((n) => n.column)) + 1) * (NODE_W + GAP_X) - GAP_X
  const height = 20 + Math.max(...nodes.map((n) => n.row + 1)) * (NODE_H + GAP_Y) - GAP_Y
  return s(
    'svg',
    { class: 'dag', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'plan DAG' },
    s(
      'defs',
      {},
      s(
        'marker',
        {
          id: 'arrow',
          viewBox: '0 0 10 10',
          refX: 10,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: 'auto-start-reverse',
        },
        s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }),
      ),
    ),
    ...edges.flatMap(([from, to]) => {
      const a = byId.get(from)
      const b = byId.get(to)
      if (!a || !b) return []
      const x1 = x(a) + NODE_W
      const y1 = y(a) + NODE_H / 2
      const x2 = x(b)
      const y2 = y(b) + NODE_H / 2
      const mid = (x1 + x2) / 2
      return [
        s('path', {
          d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
          class: 'edge',
          'marker-end': 'url(#arrow)',
        }),
      ]
    }),
    ...nodes.map((node) =>
      s(
        'g',
        { class: `node ${node.cls}`, 'data-node': node.id },
        s('rect', { x: x(node), y: y(node), width: NODE_W, height: NODE_H, rx: 8 }),
        s('text', { x: x(node) + 10, y: y(node) + 18, class: 'label' }, node.label),
        s('text', { x: x(node) + 10, y: y(node) + 34, class: 'sub' }, node.sub),
      ),
    ),
  )
}
