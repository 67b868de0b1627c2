/**
 * The simulator's randomness, split by subsystem. Each subsystem draws from a stream of its own,
 * derived from the seed and the subsystem's name, so that changing one (a larger workload, one
 * more attack in the catalogue, another peer) leaves the draws of the others as they were: an old
 * failing seed keeps its partition times, crash victims, skews and fault intensities.
 *
 * Streams: `intensity` (how hard each fault class hits, drawn once per run), `faults` (scheduled
 * faults: partitions, crashes, skew, which peers are Byzantine), `network` (per-message loss,
 * duplication and delay), `sync` (anti-entropy schedule and partner), `workload` (when NEEDs go
 * out and what they hold), `adversary` (what Byzantine peers do), `attacker` (the generated
 * attacker), and `agent:<peer>:<incarnation>` (each agent's own choices).
 */
import { SeededRandom } from '../agent/ports.ts'

/** A 32-bit avalanche (MurmurHash3's finaliser): nearby inputs give unrelated outputs. */
function mix32(value: number): number {
  let h = value >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85eb_ca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2_ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The 32-bit state of the stream named `label` under `seed` (FNV-1a of the label, mixed with the seed). */
export function streamSeed(seed: number, label: string): number {
  let h = 0x811c_9dc5
  for (let i = 0; i < label.length; i += 1) {
    h ^= label.charCodeAt(i)
    h = Math.imul(h, 0x0100_0193) >>> 0
  }
  const low = seed >>> 0
  const high = Math.floor(seed / 4_294_967_296) >>> 0
  return mix32(h ^ mix32(low ^ mix32(high + 0x9e37_79b9)))
}

/** The random stream named `label` of the run with `seed`. */
export function streamOf(seed: number, label: string): SeededRandom {
  return new SeededRandom(streamSeed(seed, label))
}

/** How hard each fault class hits in one run: drawn from the seed within the class's range. */
export interface FaultIntensity {
  /** Probability that a message (or a sync pull) is lost. Range 0.05–0.30. */
  lossP: number
  /** Probability that a message is delivered twice. Range 0.05–0.30. */
  duplicateP: number
  /** Extra random delay on every message, up to this, in ms (reordering). Range 40–250. */
  jitterMs: number
  /** Probability that a message is held back for up to `extraDelayMs`. Range 0.1–0.5. */
  extraDelayP: number
  /** The longest hold-back, in ms. Range 100–800. */
  extraDelayMs: number
  /** How long a partition lasts, in ms. Range 2 000–6 000. */
  partitionMs: number
  /** Crashes in the run. Range 1–3. */
  crashes: number
  /** Largest clock offset of a skewed peer, in ms. Range 500–2 500. */
  skewMs: number
  /** Largest clock-rate error of a skewed peer (a rate in 1 ± this). Range 0.05–0.25. */
  driftRate: number
}

/** The ranges {@link drawIntensity} draws from: [low, high] per field. */
export const INTENSITY_RANGES: { readonly [K in keyof FaultIntensity]: readonly [number, number] } = {
  lossP: [0.05, 0.3],
  duplicateP: [0.05, 0.3],
  jitterMs: [40, 250],
  extraDelayP: [0.1, 0.5],
  extraDelayMs: [100, 800],
  partitionMs: [2_000, 6_000],
  crashes: [1, 3],
  skewMs: [500, 2_500],
  driftRate: [0.05, 0.25],
}

const INTEGER_FIELDS = new Set<keyof FaultIntensity>([
  'jitterMs',
  'extraDelayMs',
  'partitionMs',
  'crashes',
  'skewMs',
])

/**
 * The run's fault intensities, every field drawn (whatever classes are on, so that turning one on
 * changes no other's draw) from the `intensity` stream, in the order of {@link INTENSITY_RANGES}.
 */
export function drawIntensity(seed: number): FaultIntensity {
  const random = streamOf(seed, 'intensity')
  const drawn = {} as FaultIntensity
  for (const [field, [low, high]] of Object.entries(INTENSITY_RANGES) as [
    keyof FaultIntensity,
    readonly [number, number],
  ][]) {
    const value = low + random.next() * (high - low)
    drawn[field] = INTEGER_FIELDS.has(field) ? Math.round(value) : Math.round(value * 1000) / 1000
  }
  return drawn
}
