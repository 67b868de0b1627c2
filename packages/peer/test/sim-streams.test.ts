/**
 * The simulator's random streams (sim/streams.ts): one per subsystem, derived from the seed, so
 * that a change to one subsystem leaves the others' draws alone, and fault intensities drawn from
 * the seed within each class's range.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { drawIntensity, INTENSITY_RANGES, streamOf, streamSeed } from '../src/sim/streams.ts'
import { runSimulation } from '../src/sim/world.ts'

describe('random streams', () => {
  it('are a function of (seed, name), and differ between names and between seeds', () => {
    const draws = (seed: number, label: string) => {
      const random = streamOf(seed, label)
      return Array.from({ length: 4 }, () => random.next())
    }
    expect(draws(7, 'network')).toEqual(draws(7, 'network'))
    const labels = [
      'network',
      'sync',
      'workload',
      'faults',
      'adversary',
      'attacker',
      'agent:3:1',
      'agent:3:2',
    ]
    const states = new Set(labels.map((label) => streamSeed(7, label)))
    expect(states.size).toBe(labels.length)
    const seeds = new Set(Array.from({ length: 1000 }, (_, seed) => streamSeed(seed, 'network')))
    expect(seeds.size).toBe(1000)
  })

  it('draw every fault intensity inside its class range, and seeds spread over the range', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), (seed) => {
        const intensity = drawIntensity(seed)
        for (const [field, [low, high]] of Object.entries(INTENSITY_RANGES)) {
          const value = intensity[field as keyof typeof intensity]
          expect(value).toBeGreaterThanOrEqual(low)
          expect(value).toBeLessThanOrEqual(high)
        }
      }),
    )
    const losses = Array.from({ length: 200 }, (_, seed) => drawIntensity(seed).lossP)
    expect(Math.min(...losses)).toBeLessThan(0.08)
    expect(Math.max(...losses)).toBeGreaterThan(0.27)
  })
})

describe('a seed’s faults do not depend on its workload', () => {
  it('the same seed with more NEEDs keeps its intensities, Byzantine peers, skews and crashes', async () => {
    const [small, large] = await Promise.all([
      runSimulation({ seed: 11, faults: 'combined', needs: 1, workloadMs: 8_000, settleMs: 6_000 }),
      runSimulation({ seed: 11, faults: 'combined', needs: 3, workloadMs: 8_000, settleMs: 6_000 }),
    ])
    expect(large.intensity).toEqual(small.intensity)
    expect(large.schedule.byzantine).toEqual(small.schedule.byzantine)
    expect(large.schedule.skew).toEqual(small.schedule.skew)
    expect(large.schedule.crashes).toEqual(small.schedule.crashes)
    expect(small.schedule.crashes.length).toBe(small.intensity.crashes)
    expect(small.schedule.byzantine.length).toBeGreaterThan(0)
    expect(small.schedule.skew.length).toBeGreaterThan(0)
    // Another seed draws another scenario.
    const other = await runSimulation({
      seed: 12,
      faults: 'combined',
      needs: 1,
      workloadMs: 8_000,
      settleMs: 6_000,
    })
    expect(other.intensity).not.toEqual(small.intensity)
  }, 120_000)
})
