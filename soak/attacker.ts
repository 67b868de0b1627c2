#!/usr/bin/env node
import { versionLine } from '@can-swarm/peer/node'
/**
 * `node soak/attacker.ts <kinds> <anchor-url> <multiaddr> --net <id>`: one hostile process of the
 * soak (see attacks.ts). It rotates through `kinds` (comma-separated), `--phase-ms` each, starting
 * at kind number `--index`, and prints its counters as one JSON line (`{"counters":{…},"kind":…}`)
 * every 2 s and when it stops (SIGTERM, or `--duration-ms` passed, or its parent gone).
 */
import { Command, InvalidArgumentError } from 'commander'
import { ATTACK_KINDS, ATTACKS, type AttackKind, Counters } from './attacks.ts'

const number = (name: string, min: number) => (value: string) => {
  const parsed = Number(value)
  if (!Number.isFinite(parsed) || parsed < min) throw new InvalidArgumentError(`${name} must be ≥ ${min}`)
  return parsed
}

const program = new Command()
  .name('node soak/attacker.ts')
  .version(versionLine(new URL('../package.json', import.meta.url)))
  .description('One hostile process of `npm run soak`: bounded attacks on an anchor, rotating.')
  .argument('<kinds>', `attacks to rotate through, comma-separated: ${ATTACK_KINDS.join(', ')}`)
  .argument('<anchor-url>', "the anchor's HTTP URL")
  .argument('<multiaddr>', "the anchor's TCP multiaddr, with /p2p/<id>")
  .requiredOption('--net <id>', 'the network id (from the genesis)')
  .option('--index <n>', 'start the rotation at this kind', number('--index', 0), 0)
  .option('--phase-ms <ms>', 'how long each attack runs before the next', number('--phase-ms', 1000), 30_000)
  .option('--rate <x>', 'multiplies every attack rate', number('--rate', 0.01), 1)
  .option('--duration-ms <ms>', 'stop after this long', number('--duration-ms', 1000), 3_600_000)
  .parse()

const [kindList, anchorUrl, anchorTcp] = program.args as [string, string, string]
const options = program.opts<{
  net: string
  index: number
  phaseMs: number
  rate: number
  durationMs: number
}>()
const kinds = kindList.split(',').filter(Boolean) as AttackKind[]
for (const kind of kinds) {
  if (!ATTACK_KINDS.includes(kind)) {
    console.error(`attacker: unknown attack "${kind}"; known: ${ATTACK_KINDS.join(', ')}`)
    process.exit(2)
  }
}

const counters = new Counters()
const stopping = new AbortController()
let current: AttackKind | undefined
const report = () => process.stdout.write(`${JSON.stringify({ counters: counters.values, kind: current })}\n`)
const reporter = setInterval(report, 2_000)
report()
const parent = process.ppid
const watchdog = setInterval(() => {
  if (process.ppid !== parent) stopping.abort()
}, 1_000)
const stop = () => stopping.abort()
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
const deadline = setTimeout(stop, options.durationMs)
// A libp2p or socket error nobody awaited must not end the attacker: count it.
process.on('unhandledRejection', (error) => counters.add(`unhandled.${(error as Error)?.name ?? 'error'}`))

for (let phase = 0; !stopping.signal.aborted; phase += 1) {
  const kind = kinds[(options.index + phase) % kinds.length]!
  current = kind
  counters.add(`${kind}.phases`)
  const signal = AbortSignal.any([stopping.signal, AbortSignal.timeout(options.phaseMs)])
  while (!signal.aborted) {
    try {
      await ATTACKS[kind]({ anchorUrl, anchorTcp, net: options.net, rate: options.rate, counters, signal })
    } catch (error) {
      counters.add(`${kind}.failed.${(error as Error).name ?? 'error'}`)
      console.error(`attacker ${options.index}: ${kind} failed: ${(error as Error).message}`)
      await new Promise((resolve) => setTimeout(resolve, 1_000))
    }
  }
}
clearInterval(reporter)
clearInterval(watchdog)
clearTimeout(deadline)
report()
// Sockets and libp2p nodes still closing must not keep the process (and the soak) waiting.
setTimeout(() => process.exit(0), 200).unref()
