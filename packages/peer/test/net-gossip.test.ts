/**
 * Gossip across a 10-process mesh on loopback (in a private network namespace where possible):
 * every peer delivers every valid envelope exactly once; forged, policy-denied and replayed
 * envelopes are rejected by the adversary's only neighbour and reach nobody else; the adversary's
 * gossipsub and application scores fall and it is disconnected.
 */
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import { runScenario } from '../../../test-support/run-script.ts'

interface PeerResult {
  index: number
  delivered: string[]
  rejected: Record<string, number>
  rejectedIds: string[]
  rejectedFrom: string[]
  adversaryScore: { gossip: number; app: number } | null
  adversaryReputation: { score: number; invalid: number; deniedUntilMs: number } | null
  connectedToAdversary: boolean
}
interface Result {
  peerIds: string[]
  adversary: string
  honestIds: string[][]
  forged: string[]
  denied: string[]
  replayed: string
  redialRefused: boolean
  peers: PeerResult[]
}

const SCRIPT = fileURLToPath(new URL('./net/gossip-scenario.ts', import.meta.url))
const HONEST = 9

describe('gossip across a 10-process mesh', () => {
  let result: Result
  beforeAll(async () => {
    result = await runScenario<Result>(SCRIPT, [], 150_000)
  }, 180_000)

  it('delivers every valid envelope exactly once at every other peer', () => {
    const all = result.honestIds.flat()
    expect(all).toHaveLength(HONEST * 4)
    for (const peer of result.peers) {
      const own = new Set(result.honestIds[peer.index] ?? [])
      const counts = new Map<string, number>()
      for (const id of peer.delivered) counts.set(id, (counts.get(id) ?? 0) + 1)
      for (const id of all) {
        if (own.has(id)) expect(counts.get(id), `peer ${peer.index} delivered its own ${id}`).toBeUndefined()
        else expect(counts.get(id), `peer ${peer.index}, envelope ${id}`).toBe(1)
      }
    }
  })

  it('drops forged, policy-denied and replayed envelopes at the first hop', () => {
    const bad = [...result.forged, ...result.denied]
    const first = result.peers[0]!
    expect(first.rejected['bad-signature']).toBe(result.forged.length)
    expect(first.rejected.denied).toBe(result.denied.length)
    expect(first.rejected.stale).toBe(1)
    expect(first.rejectedIds).toEqual(expect.arrayContaining([...bad, result.replayed]))
    expect(first.rejectedFrom).toEqual([result.adversary])
    for (const peer of result.peers.slice(0, HONEST)) {
      for (const id of bad) expect(peer.delivered).not.toContain(id)
      // the replayed envelope was delivered once, long before the replay, and never again
      expect(peer.delivered.filter((id) => id === result.replayed).length).toBeLessThanOrEqual(1)
      if (peer.index > 0) {
        expect(peer.rejectedIds, `peer ${peer.index} never saw the bad frames`).toEqual([])
        expect(Object.values(peer.rejected).every((count) => count === 0)).toBe(true)
      }
    }
  })

  it('lowers the sender scores and disconnects the adversary', () => {
    const first = result.peers[0]!
    expect(first.adversaryScore).not.toBeNull()
    expect(first.adversaryScore!.gossip).toBeLessThan(0)
    expect(first.adversaryScore!.app).toBeLessThan(-35)
    // Forgeries and the replay count against the adversary; the policy denial does not.
    expect(first.adversaryReputation!.invalid).toBe(result.forged.length + 1)
    expect(first.adversaryReputation!.deniedUntilMs).toBeGreaterThan(0)
    expect(first.connectedToAdversary).toBe(false)
    expect(result.redialRefused).toBe(true)
  })
})
