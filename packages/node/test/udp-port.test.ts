/**
 * The anchor's WebRTC-direct listener on "any port": @libp2p/webrtc probes a free UDP port and
 * binds it later (libjuice cannot bind 0), so another process can take it in between; the anchor
 * then tries another port instead of exiting (a CI run lost an anchor to it: errno 98).
 */
import { describe, expect, it } from 'vitest'
import { startOnAFreeUdpPort } from '../src/anchor/swarm.ts'

const TAKEN = new Error('Failed to register ICE UDP mux listener')

describe('starting on a free UDP port', () => {
  it('tries another port when the probed one was taken meanwhile, and gives up after a few', async () => {
    const tried: number[] = []
    const started = await startOnAFreeUdpPort('127.0.0.1', 0, async (port) => {
      tried.push(port)
      if (tried.length < 3) throw TAKEN
      return `on ${port}`
    })
    expect(tried).toHaveLength(3)
    for (const port of tried) expect(port).toBeGreaterThan(0)
    expect(started).toBe(`on ${tried[2]}`)
    let attempts = 0
    await expect(
      startOnAFreeUdpPort('127.0.0.1', 0, async () => {
        attempts += 1
        throw TAKEN
      }),
    ).rejects.toBe(TAKEN)
    expect(attempts).toBe(5)
  })

  it('does not retry other failures, nor a port the operator chose', async () => {
    let calls = 0
    const other = new Error('EACCES')
    await expect(
      startOnAFreeUdpPort('127.0.0.1', 0, async () => {
        calls += 1
        throw other
      }),
    ).rejects.toBe(other)
    expect(calls).toBe(1)
    const ports: number[] = []
    await expect(
      startOnAFreeUdpPort('127.0.0.1', 4242, async (port) => {
        ports.push(port)
        throw TAKEN
      }),
    ).rejects.toBe(TAKEN)
    expect(ports).toEqual([4242])
  })
})
