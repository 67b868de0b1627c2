/**
 * The multi-process harness (`npm run mesh`) finalizes NEEDs end to end through a real anchor
 * process and real peer processes, with the full verifier rules (an anchor and 4 peers: 4
 * verifiers, not bootstrap mode).
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { runScenario } from '../test-support/run-script.ts'

const MESH = fileURLToPath(new URL('./mesh.ts', import.meta.url))

interface Report {
  peers: number
  needs: number
  finalized: number
  finalizedEverywhere: number
  finalizedAtAnchor: number
  anchor: { did: string; consensus: string }
  envelopes: { published: number; delivered: number; rejected: Record<string, number>; perNeed: number[] }
  latencyMs: { p50: number | null; max: number | null; each: Array<number | null> }
  bootstrapMode: boolean
  agentErrors: string[]
}

describe('npm run mesh', () => {
  it('prints its usage with --help', () => {
    const out = execFileSync(process.execPath, [MESH, '--help'], { encoding: 'utf8', timeout: 30_000 })
    expect(out).toMatch(/--peers <n>/)
    expect(out).toMatch(/--needs <n>/)
  })

  it('finalizes NEEDs end to end across separate processes', async () => {
    const report = await runScenario<Report>(
      MESH,
      ['--peers', '5', '--needs', '3', '--timeout-ms', '60000'],
      150_000,
    )
    expect(report.bootstrapMode).toBe(false)
    expect(report.finalized).toBe(3)
    expect(report.finalizedEverywhere).toBe(3)
    expect(report.finalizedAtAnchor).toBe(3)
    expect(report.anchor.did).toMatch(/^did:key:z6Mk/)
    for (const latency of report.latencyMs.each) expect(latency).toBeGreaterThan(0)
    // NEED, PROPOSE, ATTEST_PLANs, DECIDE, CLAIM, COMMIT, ATTESTs, FINALIZE: at least 8 per NEED
    for (const count of report.envelopes.perNeed) expect(count).toBeGreaterThanOrEqual(8)
    // every envelope a peer published reached the other three peers (and the anchor's reached all four)
    expect(report.envelopes.delivered).toBeGreaterThanOrEqual(report.envelopes.published * 3)
    expect(Object.values(report.envelopes.rejected).every((count) => count === 0)).toBe(true)
    expect(report.agentErrors).toEqual([])
  }, 180_000)
})
