#!/usr/bin/env node
/**
 * `npm run sim -- --seeds N [--peers P] [--faults all] [--trace DIR]`: runs the deterministic
 * simulator over many seeds and prints, as its last line, a JSON summary. Exits 1 on any
 * violation, printing the command that reproduces it.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Command, InvalidArgumentError, Option } from 'commander'
import { writeTrace } from '../audit/trace.ts'
import { createIdentity } from '../crypto/ed25519.ts'
import { CapsuleRegistry, createCapsule, encodeCapsule, PolicyGates } from '../policy/index.ts'
import { readPolicyBundle } from '../policy/node.ts'
import { CHECKED_PROPERTIES, ECONOMY_PROPERTIES } from '../sim/checkers.ts'
import {
  FAULT_CLASSES,
  type FaultClass,
  runSimulation,
  type SimOptions,
  type SimResult,
} from '../sim/world.ts'
import { peerVersionLine } from './version.ts'

function positiveInt(name: string) {
  return (value: string): number => {
    const number = Number(value)
    if (!Number.isSafeInteger(number) || number < 1)
      throw new InvalidArgumentError(`${name} must be a positive integer`)
    return number
  }
}

function faultList(value: string): FaultClass[] {
  if (value === 'all') return [...FAULT_CLASSES]
  if (value === 'none') return ['none']
  const list = value.split(',').map((item) => item.trim())
  for (const item of list) {
    if (!(FAULT_CLASSES as readonly string[]).includes(item)) {
      throw new InvalidArgumentError(
        `unknown fault class "${item}"; use all, none, or some of ${FAULT_CLASSES.join(', ')}`,
      )
    }
  }
  return list as FaultClass[]
}

const program = new Command()
  .name('npm run sim --')
  .version(peerVersionLine())
  .description(
    'Deterministic CAN Swarm simulator: many agents, virtual time, a seeded faulty network and a generated attacker. Checks P1, P2, P4, P5, P6 and P9 after every delivery, P10 at the end of every run (P3 and conservation with --economy).',
  )
  .option('--seeds <n>', 'number of seeds to run (seeds first..first+n-1)', positiveInt('--seeds'), 10)
  .option('--seed <s>', 'first seed (alone: run just this seed)', (v) => Number.parseInt(v, 10))
  .option(
    '--peers <p>',
    'peers per run, two of them anchors (default 7 in bootstrap mode, 12 otherwise)',
    positiveInt('--peers'),
  )
  .addOption(
    new Option(
      '--faults <classes>',
      `fault classes, rotated over seeds: all, none, or a list of ${FAULT_CLASSES.join(',')}`,
    )
      .default(['none'], 'none')
      .argParser(faultList),
  )
  .option('--needs <n>', 'NEEDs posted per run', positiveInt('--needs'), 2)
  .option('--economy', 'settle every run through the credit ledger and check P3 and conservation')
  .option(
    '--policy',
    "run the compiled base policy (packages/peer/policy-bundle) at every peer's three gates",
  )
  .option('--trace <dir>', "write each peer's signed JSONL trace per thread under DIR/seed-S/")
  .option('--quiet', 'no progress lines on stderr')
  .addHelpText(
    'after',
    '\nThe last line of output is JSON: {"seeds","violations","finalized","properties","byFault",…}.',
  )
  .parse()

const options = program.opts<{
  seeds: number
  seed?: number
  peers?: number
  faults: FaultClass[]
  needs: number
  trace?: string
  quiet?: boolean
  economy?: boolean
  policy?: boolean
}>()

/** With --policy: one capsule of the committed base bundle, accepted by each peer into its own registry. */
async function policyGates(): Promise<NonNullable<SimOptions['policy']>> {
  const bundle = await readPolicyBundle('base')
  const author = await createIdentity({ seed: new TextEncoder().encode('can-swarm simulator policy key!!') })
  const capsule = encodeCapsule(await createCapsule(bundle, author))
  return async () => {
    const registry = new CapsuleRegistry({ trustedAuthors: [author.did] })
    const accepted = await registry.accept(capsule)
    return new PolicyGates({ engine: accepted.engine, capsule: accepted.hash, trusted: registry })
  }
}
const policy = options.policy ? await policyGates() : undefined
const policyTotals = { evaluations: 0, denials: 0, divergences: 0 }
const first = options.seed ?? 1
const count =
  options.seed !== undefined && process.argv.every((arg) => !arg.startsWith('--seeds')) ? 1 : options.seeds

interface ClassStats {
  seeds: number
  needs: number
  finalizedNeeds: number
  finalized: number
  converged: number
  violations: number
}
const byFault: Record<string, ClassStats> = {}
let violations = 0
let finalized = 0
let envelopes = 0
const observed: Record<string, number> = {}
const economy: Record<string, number> = {}
const attacks: Record<string, { tried: number; refused: number }> = {}
const refusals: Record<string, number> = {}
const failures: string[] = []
/** The run's fault intensities as `field=value` pairs. */
function intensityText(result: SimResult): string {
  return Object.entries(result.intensity)
    .map(([field, value]) => `${field}=${value}`)
    .join(' ')
}

const started = process.cpuUsage()
const startedWall = performance.now()

for (let index = 0; index < count; index += 1) {
  const seed = first + index
  const faults = options.faults[index % options.faults.length]!
  let result: SimResult
  try {
    result = await runSimulation({
      seed,
      faults,
      needs: options.needs,
      economy: options.economy === true,
      ...(policy === undefined ? {} : { policy }),
      ...(options.peers === undefined ? {} : { peers: options.peers }),
      ...(options.trace === undefined
        ? {}
        : {
            onTrace: async (log) => {
              const dir = join(options.trace!, `seed-${seed}`, `peer-${log.peer}`)
              await mkdir(dir, { recursive: true })
              const text = await writeTrace({
                recorder: log.identity,
                params: log.params,
                thread: log.thread,
                entries: log.entries,
              })
              await writeFile(join(dir, `${log.thread}.jsonl`), text)
            },
          }),
    })
  } catch (error) {
    console.error(`seed ${seed} (${faults}): ${(error as Error).message}`)
    process.exit(2)
  }
  byFault[faults] ??= { seeds: 0, needs: 0, finalizedNeeds: 0, finalized: 0, converged: 0, violations: 0 }
  const stats = byFault[faults]
  stats.seeds += 1
  stats.needs += result.needs
  stats.finalizedNeeds += result.finalizedNeeds
  stats.finalized += result.finalizedTasks
  stats.converged += result.converged ? 1 : 0
  stats.violations += result.violations.length
  violations += result.violations.length
  finalized += result.finalizedTasks
  envelopes += result.envelopes
  for (const [key, value] of Object.entries(result.observed)) observed[key] = (observed[key] ?? 0) + value
  for (const [key, value] of Object.entries(result.economy ?? {}))
    economy[key] = (economy[key] ?? 0) + (value as number)
  observed.forgedDropped = (observed.forgedDropped ?? 0) + result.droppedForged
  for (const [name, counts] of Object.entries(result.attacks ?? {})) {
    const total = attacks[name] ?? { tried: 0, refused: 0 }
    attacks[name] = total
    total.tried += counts.tried
    total.refused += counts.refused
  }
  for (const [code, count] of Object.entries(result.refusals)) refusals[code] = (refusals[code] ?? 0) + count
  if (result.policy) {
    policyTotals.divergences += result.policy.divergences.length
    for (const stats of result.policy.stats) {
      for (const gate of [stats?.preflight, stats?.ingress, stats?.commit]) {
        policyTotals.evaluations += gate?.evaluations ?? 0
        policyTotals.denials += gate?.denials ?? 0
      }
    }
  }
  for (const violation of result.violations.slice(0, 5)) {
    const where = `${violation.peer === undefined ? '' : ` peer ${violation.peer}`}${violation.thread ? ` thread ${violation.thread}` : ''}`
    failures.push(`${violation.property} seed ${seed} (${faults})${where}: ${violation.message}`)
    console.error(
      `VIOLATION ${violation.property} seed=${seed} faults=${faults}${where}: ${violation.message}`,
    )
    console.error(
      `  reproduce: npm run sim -- --seed ${seed} --faults ${faults}${options.peers ? ` --peers ${options.peers}` : ''}${
        options.needs !== 2 ? ` --needs ${options.needs}` : ''
      }${options.economy ? ' --economy' : ''}${options.policy ? ' --policy' : ''}`,
    )
    console.error(`  intensity (drawn from the seed): ${intensityText(result)}`)
  }
  if (count === 1)
    console.error(`[sim] seed ${seed} (${faults}), intensity drawn from the seed: ${intensityText(result)}`)
  if (!options.quiet && ((index + 1) % 25 === 0 || index + 1 === count)) {
    console.error(`[sim] ${index + 1}/${count} seeds, ${finalized} tasks finalized, ${violations} violations`)
  }
}

const cpu = process.cpuUsage(started)
const cpuSeconds = (cpu.user + cpu.system) / 1e6
const summary = {
  seeds: count,
  violations,
  finalized,
  properties: options.economy ? [...CHECKED_PROPERTIES, ...ECONOMY_PROPERTIES] : CHECKED_PROPERTIES,
  ...(options.economy ? { economy } : {}),
  ...(options.policy ? { policy: policyTotals } : {}),
  byFault,
  observed,
  ...(Object.keys(attacks).length > 0
    ? {
        attacker: {
          tried: Object.values(attacks).reduce((sum, a) => sum + a.tried, 0),
          refused: Object.values(attacks).reduce((sum, a) => sum + a.refused, 0),
          catalogue: Object.fromEntries(Object.entries(attacks).sort(([a], [b]) => (a < b ? -1 : 1))),
        },
      }
    : {}),
  refusals: Object.fromEntries(Object.entries(refusals).sort(([a], [b]) => (a < b ? -1 : 1))),
  envelopes,
  cpuSeconds: Number(cpuSeconds.toFixed(3)),
  wallSeconds: Number(((performance.now() - startedWall) / 1000).toFixed(3)),
  tasksPerCpuSecond: Number((finalized / cpuSeconds).toFixed(1)),
}
console.log(JSON.stringify(summary))
process.exit(violations > 0 ? 1 : 0)
