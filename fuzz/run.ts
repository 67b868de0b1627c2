#!/usr/bin/env node
/**
 * `npm run fuzz -- [--target T…] [--runs N] [--seed S] [--json FILE]`: structure-aware fuzzing of
 * every wire decoder and the anchor's HTTP router (see targets.ts). Exits 1 when an input crashed
 * a target: it is printed (target, seed, index, hex) and saved under fuzz/crashes/, and
 * `--target T --seed S --index I` or `--replay FILE` runs it again.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { versionLine } from '@can-swarm/peer/node'
import { Command, InvalidArgumentError } from 'commander'
import { type Crash, check, fuzzMetrics, TIME_LIMIT_MS } from './engine.ts'
import { fuzzTargets, TARGET_NAMES, TARGETS } from './targets.ts'

const CRASH_DIR = new URL('./crashes/', import.meta.url)
/** Hex printed per crash (the whole input is in its file). */
const PRINTED_HEX_BYTES = 256

const integer = (name: string, min: number) => (value: string) => {
  const parsed = Number(value)
  if (!Number.isSafeInteger(parsed) || parsed < min)
    throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`)
  return parsed
}

const program = new Command()
  .name('npm run fuzz --')
  .version(versionLine(new URL('../package.json', import.meta.url)))
  .description(
    `Structure-aware fuzzing of the wire decoders and the HTTP router. Every input must be accepted or refused with a typed error, within ${TIME_LIMIT_MS} ms and 8 × its size + 10 MB of heap.`,
  )
  .option(
    '--target <names>',
    `targets, comma-separated or repeated (default: all): ${TARGET_NAMES.join(', ')}`,
    (value: string, previous: string[] = []) => [...previous, ...value.split(',').filter(Boolean)],
  )
  .option('--runs <n>', 'inputs per target (the seeds first)', integer('--runs', 1), 10_000)
  .option(
    '--seed <s>',
    'run seed: with the target and the index it fixes each input',
    integer('--seed', 0),
    1,
  )
  .option('--index <i>', 'run only input I (to reproduce a crash)', integer('--index', 0))
  .option('--replay <file>', 'run a saved crash (fuzz/crashes/*.json) again')
  .option('--json <file>', 'write {"metrics":{…}} as JSON to FILE')
  .option('--list', 'list the targets and exit')
  .parse()

const options = program.opts<{
  target?: string[]
  runs: number
  seed: number
  index?: number
  replay?: string
  json?: string
  list?: boolean
}>()

if (options.list) {
  for (const target of TARGETS) console.log(`${target.name.padEnd(16)} ${target.description}`)
  process.exit(0)
}

const toHex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex')

if (options.replay) {
  const saved = JSON.parse(readFileSync(options.replay, 'utf8')) as { target: string; hex: string }
  const spec = TARGETS.find((target) => target.name === saved.target)
  if (!spec) {
    console.error(`fuzz: the crash names an unknown target "${saved.target}"`)
    process.exit(2)
  }
  const target = await spec.create()
  const result = await check(target, new Uint8Array(Buffer.from(saved.hex, 'hex')))
  await target.close?.()
  console.log('crash' in result ? `CRASH ${result.crash}: ${result.detail}` : `ok: ${result.outcome}`)
  process.exit('crash' in result ? 1 : 0)
}

const names = options.target ?? TARGET_NAMES
for (const name of names) {
  if (!TARGET_NAMES.includes(name)) {
    console.error(`fuzz: unknown target "${name}"; known: ${TARGET_NAMES.join(', ')}`)
    process.exit(2)
  }
}

function report(crash: Crash): void {
  const file = new URL(`${crash.target}-seed${crash.seed}-index${crash.index}.json`, CRASH_DIR)
  mkdirSync(CRASH_DIR, { recursive: true })
  const hex = toHex(crash.input)
  writeFileSync(
    file,
    `${JSON.stringify({ ...crash, input: undefined, bytes: crash.input.length, hex }, null, 2)}\n`,
  )
  console.error(
    `[fuzz] CRASH ${crash.target} seed ${crash.seed} index ${crash.index}: ${crash.reason}: ${crash.detail}`,
  )
  console.error(
    `[fuzz]   input (${crash.input.length} bytes): ${hex.slice(0, PRINTED_HEX_BYTES * 2)}${crash.input.length > PRINTED_HEX_BYTES ? '…' : ''}`,
  )
  console.error(
    `[fuzz]   saved ${file.pathname}; again: npm run fuzz -- --target ${crash.target} --seed ${crash.seed} --index ${crash.index}`,
  )
}

const runs = options.index === undefined ? options.runs : options.index + 1
console.error(
  `[fuzz] ${names.length} targets × ${options.index === undefined ? runs : `input ${options.index}`}, seed ${options.seed}`,
)
const reports = await fuzzTargets(names, {
  runs,
  seed: options.seed,
  ...(options.index === undefined ? {} : { only: options.index }),
  progress: (line) => console.error(`[fuzz]   ${line}`),
})
for (const entry of reports) {
  console.error(
    `[fuzz] ${entry.target.padEnd(16)} ${String(entry.inputs).padStart(9)} inputs  ${String(entry.accepted).padStart(8)} accepted  ${String(entry.crashes.length).padStart(3)} crashes  ${String(Math.round(entry.inputsPerS)).padStart(7)}/s${entry.rechecked > 0 ? `  (${entry.rechecked} rechecked)` : ''}`,
  )
  for (const crash of entry.crashes) report(crash)
}
const metrics = fuzzMetrics(reports)
console.log(
  `fuzz_inputs ${metrics.fuzz_inputs!.value}  fuzz_crashes ${metrics.fuzz_crashes!.value}  fuzz_inputs_per_s ${metrics.fuzz_inputs_per_s!.value}`,
)
if (options.json) {
  mkdirSync(dirname(options.json), { recursive: true })
  writeFileSync(
    options.json,
    `${JSON.stringify({ metrics, environment: { node: process.version, seed: options.seed, runs, at: new Date().toISOString() } }, null, 2)}\n`,
  )
  console.error(`[fuzz] wrote ${options.json}`)
}
process.exit(metrics.fuzz_crashes!.value > 0 ? 1 : 0)
