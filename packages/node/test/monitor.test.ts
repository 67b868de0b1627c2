import { describe, expect, it } from 'vitest'
import { networkParams } from '../../peer/src/core/thread/params.ts'
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
