/**
 * The relay: `node packages/relay --help` works; two peers that can reach only the relay connect
 * through it (circuit relay v2) and ping; the relay keeps its identity across restarts.
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { runScenario } from '../../../test-support/run-script.ts'

const RELAY_DIR = fileURLToPath(new URL('..', import.meta.url))
const SCRIPT = fileURLToPath(new URL('../../peer/test/net/relay-scenario.ts', import.meta.url))

interface Result {
  relayPeerId: string
  relayPeerIdAfterRestart: string
  relayAddresses: string[]
  circuit: string
  peerB: string
  directA: string[]
  directB: string[]
  rttMs: number
  connectionsOfA: Array<{ peer: string; addr: string; limited: boolean }>
}

describe('node packages/relay', () => {
  it('prints its usage with --help', () => {
    const out = execFileSync(process.execPath, [RELAY_DIR, '--help'], { encoding: 'utf8', timeout: 30_000 })
    expect(out).toMatch(/Usage: node packages\/relay/)
    expect(out).toMatch(/--data <dir>/)
    expect(out).toMatch(/127\.0\.0\.1/)
  })

  it('rejects a bad option with a message', () => {
    expect(() =>
      execFileSync(process.execPath, [RELAY_DIR, '--tcp-port', 'x'], {
        encoding: 'utf8',
        stdio: 'pipe',
        timeout: 30_000,
      }),
    ).toThrow(/port/)
  })

  it('connects two peers that can only reach the relay, and keeps its identity', async () => {
    const result = await runScenario<Result>(SCRIPT, [], 90_000)
    expect(result.directA).toEqual([])
    expect(result.directB).toEqual([])
    for (const address of result.relayAddresses) expect(address).toMatch(/^\/ip4\/127\.0\.0\.1\//)
    expect(result.circuit).toContain(`/p2p/${result.relayPeerId}/p2p-circuit/p2p/${result.peerB}`)
    const toB = result.connectionsOfA.find((connection) => connection.peer === result.peerB)
    expect(toB).toBeDefined()
    expect(toB!.limited).toBe(true)
    expect(toB!.addr).toContain('/p2p-circuit')
    expect(result.rttMs).toBeGreaterThanOrEqual(0)
    expect(result.relayPeerIdAfterRestart).toBe(result.relayPeerId)
  }, 120_000)
})
