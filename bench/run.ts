#!/usr/bin/env node
import { versionLine } from '@can-swarm/peer/node'
/**
 * `npm run bench -- [names…] [--json FILE]`: runs benchmarks and writes
 * `{"metrics":{name:{"value":…,"unit":…}}}`. Ratios between metrics of one run are the figures to
 * trust on a shared machine; absolute numbers move with load.
 */
import { Command } from 'commander'
import { printMetrics, writeMetrics } from './report.ts'
import { BENCHMARKS, type Metric } from './suite.ts'

const program = new Command()
  .name('npm run bench --')
  .version(versionLine(new URL('../package.json', import.meta.url)))
  .description('CAN Swarm benchmarks. With no names, runs them all.')
  .argument('[names...]', `benchmarks to run: ${Object.keys(BENCHMARKS).join(', ')}`)
  .option('--json <file>', 'write the metrics as JSON to FILE', 'bench-results/latest.json')
  .option('--list', 'list the benchmarks and exit')
  .parse()

const options = program.opts<{ json: string; list?: boolean }>()
if (options.list) {
  for (const [name, bench] of Object.entries(BENCHMARKS))
    console.log(`${name.padEnd(16)} ${bench.description}`)
  process.exit(0)
}
const names = program.args.length > 0 ? program.args : Object.keys(BENCHMARKS)
for (const name of names) {
  if (!(name in BENCHMARKS)) {
    console.error(`bench: unknown benchmark "${name}"; known: ${Object.keys(BENCHMARKS).join(', ')}`)
    process.exit(2)
  }
}

const metrics: Record<string, Metric> = {}
for (const name of names) {
  const bench = BENCHMARKS[name]!
  console.error(`[bench] ${name}: ${bench.description}`)
  const started = performance.now()
  Object.assign(metrics, await bench.run((line) => console.error(`[bench]   ${line}`)))
  console.error(`[bench]   done in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}

printMetrics(metrics)
await writeMetrics(options.json, metrics)
console.error(`[bench] wrote ${options.json}`)
