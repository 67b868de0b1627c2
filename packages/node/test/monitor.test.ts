import type { Agent, AnyEnvelope } from '@can-swarm/peer'
import { networkParams } from '@can-swarm/peer'
import { describe, expect, it } from 'vitest'
import { BootstrapMonitor } from '../src/anchor/monitor.ts'

const pool = Array.from({ length: 12 }, (_, i) => `did:key:z6Mkpool${String(i).padStart(2, '0')}`)
const hour = 3_600_000

describe('BootstrapMonitor', () => {
  it('recommends leaving bootstrap only after ≥ 10 active verifiers for 24 h, with progressive K', () => {
    const monitor = new BootstrapMonitor(networkParams({ verifiers: pool, bootstrap: true }), {
      activeWindowMs: hour,
    })
    for (const did of pool.slice(0, 9)) monitor.seen(did, 0)
    expect(monitor.observe(0)).toMatchObject({
      activeVerifiers: 9,
      recommended: { bootstrap: true, kPlan: 1, kResult: 1 },
    })
    for (let t = 0; t <= 25 * hour; t += hour / 2) {
      for (const did of pool.slice(0, 11)) monitor.seen(did, t)
      const report = monitor.observe(t)
      expect(report.activeVerifiers).toBe(11)
      expect(report.recommended.bootstrap).toBe(t < 24 * hour)
    }
    const report = monitor.observe(25 * hour)
    expect(report.recommended).toMatchObject({ bootstrap: false, kPlan: 3, kResult: 3 })
    expect(report.current.bootstrap).toBe(true)
    monitor.seen('did:key:z6Mkstranger', 25 * hour)
    // Verifiers not seen within the window stop counting; below 10 the network is back in bootstrap.
    expect(monitor.observe(27 * hour)).toMatchObject({ activeVerifiers: 0, recommended: { bootstrap: true } })
  })
})

describe('BootstrapMonitor, incremental', () => {
  it('looks at each placed envelope once: its ticks cost nothing more however many envelopes are held', () => {
    const monitor = new BootstrapMonitor(networkParams({ verifiers: pool.slice(0, 6), bootstrap: true }), {
      activeWindowMs: hour,
    })
    // A stand-in for the agent: placing an envelope calls its observers, as Agent.observe does.
    const observers = new Set<(env: AnyEnvelope) => void>()
    const agent = {
      observe: (observer: (env: AnyEnvelope) => void) => {
        observers.add(observer)
        return () => observers.delete(observer)
      },
      replica: () => ({ receivedAt: () => 1_000 }),
    } as unknown as Agent
    const detach = monitor.attach(agent)
    const place = (kind: string, sender: string, index: number) => {
      for (const observer of observers)
        observer({ kind, sender, thread: `need-${index % 50}`, id: `e${index}` } as AnyEnvelope)
    }
    for (let index = 0; index < 5_000; index += 1) place('HEARTBEAT', 'did:key:z6Mkworker', index)
    expect(monitor.examined).toBe(5_000)
    for (let tick = 1; tick <= 100; tick += 1) monitor.observe(1_000 + tick * 5_000)
    expect(monitor.examined).toBe(5_000) // a tick walks no envelope
    place('ATTEST', pool[0]!, 5_000)
    place('ATTEST_PLAN', pool[8]!, 5_001) // not in the pool (yet)
    expect(monitor.examined).toBe(5_002)
    expect(monitor.observe(2_000).activeVerifiers).toBe(1)
    // A verifier that joins the pool counts with the attestations it made before.
    monitor.setPool(pool.slice(0, 9))
    expect(monitor.observe(2_000).activeVerifiers).toBe(2)
    detach()
    place('ATTEST', pool[1]!, 5_002)
    expect(monitor.examined).toBe(5_002)
  })
})
