#!/usr/bin/env node
import { versionLine } from '@can-swarm/peer/node'
/**
 * `npm run soak -- [--minutes M] [--attackers N] [--json FILE]`: a real anchor, an honest canary
 * and N hostile processes for M minutes (see soak.ts). Progress goes to stderr every ~10 s, the
 * metrics table to stdout, `{"metrics":{…},"verdict":{…},"report":{…}}` to FILE. Exits 1 when the
 * verdict fails: the canary's DECIDE p95 ≥ 2 000 ms, under 90 % of its NEEDs FINAL, or the anchor
 * died.
 */
import { Command, InvalidArgumentError } from 'commander'
import { printMetrics, writeMetrics } from '../bench/report.ts'
import { killAnchors } from '../test-support/anchor-process.ts'
import { ATTACK_KINDS, type AttackKind, DEFAULT_ATTACK_KINDS } from './attacks.ts'
import { runSoak } from './soak.ts'

const positive = (name: string, min: number) => (value: string) => {
  const parsed = Number(value)
  if (!Number.isFinite(parsed) || parsed < min)
    throw new InvalidArgumentError(`${name} must be a number ≥ ${min}`)
  return parsed
}

const program = new Command()
  .name('npm run soak --')
  .version(versionLine(new URL('../package.json', import.meta.url)))
  .description(
    'A real anchor under bounded hostile load (gossip floods from rotating keys, decode bombs, slow HTTP clients and junk uploads, sync abuse) while an honest canary posts NEEDs and carries them to FINAL. Reports the anchor’s RSS, disk and event-loop delay, the canary’s DECIDE and FINAL times, and what each attack got. Exits 1 when the canary’s DECIDE p95 ≥ 2 000 ms, under 90 % of its NEEDs finalize, or the anchor dies.',
  )
  .option('--minutes <m>', 'how long the canary posts under attack', positive('--minutes', 0.05), 2)
  .option('--attackers <n>', 'hostile processes', positive('--attackers', 0), 3)
  .option(
    '--kinds <list>',
    `attacks to rotate through, comma-separated: ${ATTACK_KINDS.join(', ')}`,
    DEFAULT_ATTACK_KINDS.join(','),
  )
  .option('--rate <x>', 'multiplies every attack rate', positive('--rate', 0.01), 1)
  .option(
    '--phase-s <s>',
    'seconds each attack runs before an attacker moves on (default: minutes / (2 × kinds), 5–60)',
    positive('--phase-s', 1),
  )
  .option('--canary-rate <n>', 'canary NEEDs per second', positive('--canary-rate', 0.1), 2)
  .option('--json <file>', 'write the metrics and the report as JSON to FILE')
  .parse()

const options = program.opts<{
  minutes: number
  attackers: number
  kinds: string
  rate: number
  phaseS?: number
  canaryRate: number
  json?: string
}>()
const kinds = options.kinds.split(',').filter(Boolean) as AttackKind[]
for (const kind of kinds) {
  if (!ATTACK_KINDS.includes(kind)) {
    console.error(`soak: unknown attack "${kind}"; known: ${ATTACK_KINDS.join(', ')}`)
    process.exit(2)
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAnchors()
    process.exit(130)
  })
}

const report = await runSoak({
  minutes: options.minutes,
  attackers: Math.floor(options.attackers),
  kinds,
  rate: options.rate,
  ...(options.phaseS === undefined ? {} : { phaseMs: options.phaseS * 1000 }),
  canaryPerSecond: options.canaryRate,
  progress: (line) => console.error(`[soak] ${line}`),
})

printMetrics(report.metrics)
console.error(report.ok ? '[soak] PASS' : `[soak] FAIL: ${report.failures.join('; ')}`)

if (options.json) {
  const { metrics, ok, failures, ...rest } = report
  await writeMetrics(options.json, metrics, { verdict: { ok, failures }, report: rest })
  console.error(`[soak] wrote ${options.json}`)
}
process.exit(report.ok ? 0 : 1)
