/**
 * NEED floods at the undecided-thread bound: CPU per NEED delivered to an agent that holds
 * `maxUndecidedThreads` undecided threads (each NEED evicts one), against the same NEEDs delivered
 * below the bound (no eviction), in the same run. The ratio is the figure: eviction must cost a
 * constant per NEED, not a scan of every thread held.
 */

import type { Envelope } from '@can-swarm/peer'
import { Agent, artifactCid, MemoryArtifactStore, SeededRandom } from '@can-swarm/peer'
import { makeIdentities, signNeed, testParams } from '../test-support/envelopes.ts'
import type { Metric } from './suite.ts'

const HELD = 4096
const FLOOD = 4096

export async function runEvictBenchmark(progress: (line: string) => void): Promise<Record<string, Metric>> {
  const [planner, anchor, verifier, ...keys] = await makeIdentities(3 + 64, 0x45)
  const params = testParams({ anchors: [anchor!.did], verifiers: [verifier!.did], bootstrap: true })
  const input = artifactCid(new TextEncoder().encode('flood'))
  progress(`signing ${HELD + FLOOD} NEEDs from ${keys.length} keys`)
  const needs: Envelope<'NEED'>[] = []
  for (let i = 0; i < HELD + FLOOD; i += 1) {
    needs.push(
      await signNeed(keys[i % keys.length]!, {
        epoch: 1,
        requires: ['sha256'],
        inputs: [input],
        produces: 'text/plain',
        budget: i + 1,
        deadlineMs: 0,
        bidWindowMs: 1,
      }),
    )
  }
  const perNeedUs = async (bound: number): Promise<number> => {
    let now = 0
    const agent = new Agent({
      identity: planner!,
      params,
      bus: { publish: () => undefined },
      clock: { now: () => now, setTimer: () => () => undefined },
      random: new SeededRandom(1),
      artifacts: new MemoryArtifactStore(),
      maxUndecidedThreads: bound,
    })
    for (let i = 0; i < HELD; i += 1) {
      now += 1
      await agent.deliver(needs[i]!)
    }
    const started = process.cpuUsage()
    for (let i = HELD; i < HELD + FLOOD; i += 1) {
      now += 1
      await agent.deliver(needs[i]!)
    }
    const cpu = process.cpuUsage(started)
    const evicted = agent.evictedThreads
    agent.stop()
    progress(`bound ${bound}: ${evicted} evicted`)
    return (cpu.user + cpu.system) / FLOOD
  }
  const free = await perNeedUs(HELD + FLOOD)
  const full = await perNeedUs(HELD)
  return {
    evict_need_us_below_bound: { value: Number(free.toFixed(1)), unit: 'µs of CPU per NEED, no eviction' },
    evict_need_us_at_bound: {
      value: Number(full.toFixed(1)),
      unit: `µs of CPU per NEED, each evicting one of ${HELD} undecided threads`,
    },
  }
}
