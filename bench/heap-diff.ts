/**
 * `node bench/heap-diff.ts A.heapsnapshot B.heapsnapshot [--top N]`: which objects the heap holds
 * more of in B than in A, by constructor name (V8 node type and name), with the change in count and
 * in self size, largest growth first. For finding what grows per thread in the growth bench
 * (`GROWTH_SNAPSHOTS=<dir>`); it reads each snapshot whole, so give it a few times their size in memory.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
}

/** Per "type:name", how many objects and their self size in bytes. */
function summarize(path: string): Map<string, { count: number; bytes: number }> {
  const heap = JSON.parse(readFileSync(path, 'utf8')) as Snapshot
  const fields = heap.snapshot.meta.node_fields
  const types = heap.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const totals = new Map<string, { count: number; bytes: number }>()
  for (let i = 0; i < heap.nodes.length; i += width) {
    const type = types[heap.nodes[i + typeAt]!]!
    const name =
      type === 'string' || type === 'concatenated string' || type === 'sliced string'
        ? ''
        : heap.strings[heap.nodes[i + nameAt]!]!
    const key = `${type}:${name.slice(0, 80)}`
    const entry = totals.get(key) ?? { count: 0, bytes: 0 }
    entry.count += 1
    entry.bytes += heap.nodes[i + sizeAt]!
    totals.set(key, entry)
  }
  return totals
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' }, help: { type: 'boolean', short: 'h' } },
})
if (values.help || positionals.length !== 2) {
  process.stdout.write('usage: node bench/heap-diff.ts A.heapsnapshot B.heapsnapshot [--top N]\n')
  process.exit(values.help ? 0 : 2)
}
const [before, after] = positionals.map(summarize) as [
  ReturnType<typeof summarize>,
  ReturnType<typeof summarize>,
]
const rows = [...new Set([...before.keys(), ...after.keys()])]
  .map((key) => {
    const a = before.get(key) ?? { count: 0, bytes: 0 }
    const b = after.get(key) ?? { count: 0, bytes: 0 }
    return { key, count: b.count - a.count, bytes: b.bytes - a.bytes }
  })
  .sort((x, y) => y.bytes - x.bytes)
  .slice(0, Number(values.top))
for (const row of rows)
  process.stdout.write(`${String(row.bytes).padStart(12)} B ${String(row.count).padStart(9)}  ${row.key}\n`)
