/**
 * Rolling per-second series for the charts: envelopes received and published, and the gossip
 * latency of received envelopes (receive time minus the sender's `ts`; meaningful on one host or
 * with synchronised clocks). Bounded to the last `windowSeconds` seconds.
 */

/** One second of traffic. */
export interface SecondSample {
  /** Start of the second, ms since epoch. */
  atMs: number
  received: number
  published: number
  /** Latencies of envelopes received in this second, in ms (at most 256 kept). */
  latenciesMs: number[]
}

const MAX_LATENCIES_PER_SECOND = 256

/** Rolling traffic statistics. */
export class TrafficSeries {
  readonly windowSeconds: number
  #samples: SecondSample[] = []

  /** @param windowSeconds seconds kept. @default 60 */
  constructor(windowSeconds = 60) {
    this.windowSeconds = windowSeconds
  }

  #current(nowMs: number): SecondSample {
    const atMs = Math.floor(nowMs / 1000) * 1000
    const last = this.#samples[this.#samples.length - 1]
    if (last && last.atMs === atMs) return last
    const sample: SecondSample = { atMs, received: 0, published: 0, latenciesMs: [] }
    this.#samples.push(sample)
    while (this.#samples.length > this.windowSeconds) this.#samples.shift()
    return sample
  }

  received(nowMs: number, latencyMs: number): void {
    const sample = this.#current(nowMs)
    sample.received += 1
    if (sample.latenciesMs.length < MAX_LATENCIES_PER_SECOND) sample.latenciesMs.push(Math.max(0, latencyMs))
  }

  published(nowMs: number): void {
    this.#current(nowMs).published += 1
  }

  /** One sample per second of the window ending now (empty seconds filled with zeros). */
  series(nowMs: number): SecondSample[] {
    const end = Math.floor(nowMs / 1000) * 1000
    const byTime = new Map(this.#samples.map((sample) => [sample.atMs, sample]))
    const result: SecondSample[] = []
    for (let i = this.windowSeconds - 1; i >= 0; i -= 1) {
      const atMs = end - i * 1000
      result.push(byTime.get(atMs) ?? { atMs, received: 0, published: 0, latenciesMs: [] })
    }
    return result
  }
}

/** The `q`-quantile (0…1) of numbers, or undefined for none. */
export function quantile(values: readonly number[], q: number): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}
