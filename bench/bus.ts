/**
 * The `bus` benchmark: publish → delivered and validated at every peer of a 10-process loopback
 * mesh at ~1 000 envelopes/s, with Debian's nats-server carrying the same envelope bytes as the
 * baseline (validated at each subscriber like the bus, and raw). Runs `bus-mesh.ts` in a private
 * network namespace when possible. Bounded: 10 processes, 300 warm-up + 3 000 measured envelopes
 * per transport.
 */
import { execFileSync } from 'node:child_process'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { runScenario } from '../test-support/run-script.ts'
import type { Metric } from './suite.ts'

const DRIVER = fileURLToPath(new URL('./bus-mesh.ts', import.meta.url))
const RATE_PER_S = 1000
const COUNT = 3000

interface Run {
  p50: number
  p99: number
  max: number
  allPeersP99: number
  missing: number
  cpuUsPerDelivery: number
}

const round = (value: number, digits = 2) => Number(value.toFixed(digits))

/** Runs the benchmark; returns its metrics. */
export async function runBusBenchmark(progress: (line: string) => void): Promise<Record<string, Metric>> {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' })
  } catch {
    throw new Error(
      "nats-server is missing: install Debian's nats-server package (apt-get install nats-server)",
    )
  }
  const load = loadavg()[0]!
  progress(
    `10 processes, ${COUNT} envelopes at ${RATE_PER_S}/s per transport (load average ${load.toFixed(1)})`,
  )
  const result = await runScenario<Record<string, Run>>(DRIVER, [String(RATE_PER_S), String(COUNT)], 600_000)
  const bus = result.bus_window_default!
  const nats = result.nats!
  const raw = result.nats_raw!
  const unit = `ms publish → delivered + validated, each of 9 peers, ${RATE_PER_S} envelopes/s`
  return {
    bus_p50_ms: { value: round(bus.p50), unit },
    bus_p99_ms: { value: round(bus.p99), unit: `${unit} (bar: < 25)` },
    bus_all_peers_p99_ms: {
      value: round(bus.allPeersP99),
      unit: 'ms until the last of 9 peers had the envelope, p99',
    },
    bus_missing: { value: bus.missing, unit: 'deliveries missing after 15 s (of 27 000)' },
    bus_cpu_us_per_delivery: {
      value: round(bus.cpuUsPerDelivery, 0),
      unit: 'µs CPU of all 10 processes per delivery',
    },
    nats_p50_ms: {
      value: round(nats.p50),
      unit: 'ms, same envelopes via nats-server, validated at each subscriber',
    },
    nats_p99_ms: {
      value: round(nats.p99),
      unit: 'ms, same envelopes via nats-server, validated at each subscriber',
    },
    nats_cpu_us_per_delivery: {
      value: round(nats.cpuUsPerDelivery, 0),
      unit: 'µs CPU of all 10 processes per delivery',
    },
    nats_raw_p99_ms: { value: round(raw.p99), unit: 'ms, same envelopes via nats-server, decoded only' },
    bus_machine_load: { value: round(load, 1), unit: '1-minute load average when the run started (2 cores)' },
  }
}
