/**
 * The fuzzer in CI: every target takes ≥ 10 000 inputs (its seeds first, then mutants) and every
 * one must be accepted or refused with a typed error, within 50 ms and 8 × its size + 10 MB of
 * heap. And the oracle itself: decoders that throw untyped errors, stall or hoard heap are caught.
 * `FUZZ_SEED` picks another run seed (the default keeps CI reproducible); `FUZZ_RUNS` more inputs.
 */

import { encodeEnvelope, MalformedEnvelopeError } from '@can-swarm/peer'
import * as dagCbor from '@ipld/dag-cbor'
import { describe, expect, it } from 'vitest'
import { type Crash, check, type FuzzTarget, fuzzTarget, inputOf } from './engine.ts'
import { loadCorpus } from './seeds.ts'
import { TARGETS } from './targets.ts'

const SEED = Number(process.env.FUZZ_SEED ?? 1)
const RUNS = Math.max(10_000, Number(process.env.FUZZ_RUNS ?? 10_000))

const shown = (crash: Crash) =>
  `${crash.target} seed ${crash.seed} index ${crash.index}: ${crash.reason}: ${crash.detail} (npm run fuzz -- --target ${crash.target} --seed ${crash.seed} --index ${crash.index})`

describe('fuzzing the decoders', () => {
  for (const spec of TARGETS) {
    it(`${spec.name}: ${RUNS} inputs, each accepted or refused with a typed error, in time and heap`, async () => {
      const target = await spec.create()
      try {
        // The seeds are valid: the decoder under test still accepts them (the router answers some
        // requests with a 4xx on purpose: a DELETE, an OPTIONS).
        for (const seed of target.seeds) {
          const result = await check(target, seed)
          expect(result).not.toHaveProperty('crash')
          if (spec.name !== 'http') expect(result).toMatchObject({ outcome: 'accepted' })
        }
        const report = await fuzzTarget(target, { runs: RUNS, seed: SEED })
        expect(report.crashes.map(shown)).toEqual([])
        expect(report.inputs).toBe(RUNS)
        expect(report.accepted).toBeGreaterThan(0)
        expect(report.refused).toBeGreaterThan(RUNS / 4)
      } finally {
        await target.close?.()
      }
    })
  }
})

describe('the fuzz oracle', () => {
  /** A target over envelope wire bytes whose decoder is `run`. */
  async function broken(run: (input: Uint8Array) => unknown): Promise<FuzzTarget> {
    const corpus = await loadCorpus()
    return {
      name: 'broken',
      description: 'a deliberately broken decoder',
      seeds: corpus.envelopes.slice(0, 4).map(encodeEnvelope),
      run,
    }
  }

  it('catches a decoder that throws untyped errors (a TypeError on a missing field)', async () => {
    const target = await broken((input) => {
      const value = dagCbor.decode(input) as { payload: { need: string } }
      return value.payload.need.length
    })
    const report = await fuzzTarget(target, { runs: 300, seed: SEED, maxCrashes: 3 })
    expect(report.crashes.length).toBe(3)
    expect(report.crashes.every((crash) => crash.reason === 'untyped-error')).toBe(true)
    expect(report.crashes.map((crash) => crash.detail).join('\n')).toMatch(/TypeError|Error/)
    // The crash names its input: the same bytes again from (seed, index).
    const first = report.crashes[0]!
    expect(inputOf(target, first.seed, first.index)).toEqual(first.input)
    expect(await check(target, first.input)).toMatchObject({ crash: 'untyped-error' })
  })

  it('counts typed refusals as refusals, not crashes', async () => {
    const target = await broken(() => {
      throw new MalformedEnvelopeError('refused', 'envelope')
    })
    const report = await fuzzTarget(target, { runs: 200, seed: SEED })
    expect(report.crashes).toEqual([])
    expect(report.refused).toBe(200)
  })

  it('catches a decoder that takes over 50 ms, measured twice', async () => {
    const target = await broken((input) => {
      if (input.length % 7 === 3) {
        const until = performance.now() + 60
        while (performance.now() < until) {
          // stall
        }
      }
      throw new MalformedEnvelopeError('refused', 'envelope')
    })
    const report = await fuzzTarget(target, { runs: 200, seed: SEED, maxCrashes: 1 })
    expect(report.crashes.map((crash) => crash.reason)).toEqual(['slow'])
  })

  it('catches a decoder that keeps more than 8 × the input + 10 MB of heap', async () => {
    const hoard: number[][] = []
    const target = await broken((input) => {
      if (input.length % 5 === 1) hoard.push(new Array(1_600_000).fill(input.length + 0.5))
      throw new MalformedEnvelopeError('refused', 'envelope')
    })
    const report = await fuzzTarget(target, { runs: 200, seed: SEED, maxCrashes: 1 })
    hoard.length = 0
    expect(report.crashes.map((crash) => crash.reason)).toEqual(['heap'])
  })

  it('makes each input a function of the seed, the target and the index', async () => {
    const target = await broken(() => undefined)
    const again = await broken(() => undefined)
    for (const index of [0, 5, 77, 1234]) expect(inputOf(target, 7, index)).toEqual(inputOf(again, 7, index))
    expect(inputOf(target, 7, 500)).not.toEqual(inputOf(target, 8, 500))
  })
})
