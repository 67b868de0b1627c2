/**
 * The soak harness works and can fail: a short soak (one attacker rotating through every default
 * attack) against a real anchor reports every figure and a canary that finalized, and the verdict
 * fails a report over its bars.
 */
import { describe, expect, it } from 'vitest'
import { DECIDE_P95_BAR_MS, runSoak, soakVerdict } from './soak.ts'

describe('soak verdict', () => {
  const good = { decideP95Ms: 40, posted: 100, finalized: 95, anchorAlive: true }

  it('passes a report within the bars', () => {
    expect(soakVerdict(good)).toEqual([])
  })

  it('fails a DECIDE p95 at or over the bar, too few NEEDs finalized, a dead anchor, a starved canary', () => {
    expect(soakVerdict({ ...good, decideP95Ms: DECIDE_P95_BAR_MS })).toEqual([
      expect.stringMatching(/DECIDE p95 is 2000 ms/),
    ])
    expect(soakVerdict({ ...good, decideP95Ms: Number.NaN })).toHaveLength(1)
    expect(soakVerdict({ ...good, finalized: 89 })).toEqual([expect.stringMatching(/89 of the canary's 100/)])
    expect(soakVerdict({ ...good, anchorAlive: false })).toEqual(['the anchor died'])
    expect(soakVerdict({ ...good, posted: 0, finalized: 0 })).toEqual(['the canary posted no NEED'])
  })
})

describe('soak', () => {
  it('runs a real anchor under one rotating attacker and reports the canary, the anchor and the attacks', {
    timeout: 120_000,
  }, async () => {
    const report = await runSoak({ minutes: 0.4, attackers: 1, phaseMs: 5_000, drainMs: 15_000 })
    const value = (name: string) => report.metrics[name]?.value
    for (const name of [
      'soak_canary_decide_p95_ms',
      'soak_canary_final_p95_ms',
      'soak_canary_finalized',
      'soak_rss_max_mb',
      'soak_disk_max_mb',
      'soak_eventloop_p99_ms',
    ])
      expect(value(name), name).toBeGreaterThan(0)
    expect(report.failures).toEqual([])
    expect(report.ok).toBe(true)
    expect(report.anchor.alive).toBe(true)
    expect(report.anchor.exit.code).toBe(0)
    expect(value('soak_canary_finalized')).toBeGreaterThanOrEqual(0.9 * value('soak_canary_posted')!)
    // The attacker went through every kind, and each was answered.
    expect(value('soak_attack_flood_sent')).toBeGreaterThan(0)
    expect(value('soak_attack_bombs_decide_nested_refused_malformed_envelope')).toBeGreaterThan(0)
    expect(value('soak_attack_http_junk_mismatch_sent')).toBeGreaterThan(0)
    expect(value('soak_attack_sync_ranges_sent')).toBeGreaterThan(0)
    // The anchor refused the flood's votes from outside the pool.
    const refusals = (report.anchor.status?.refusals ?? {}) as Record<string, number>
    expect(refusals['not-a-verifier']).toBeGreaterThan(0)
  })
})
