/**
 * The DECIDE service's budgets (docs/PROTOCOL.md §13), in process over real libp2p on 127.0.0.1: a
 * peer over its request rate is refused before its request is read, a declared length over the
 * limit is refused before its body is read, and a request that does not fit the bytes in flight is
 * refused at once while the slow request that holds them waits — all with `QUOTA_EXCEEDED` or
 * `MALFORMED_ENVELOPE`, never by the process running out of memory.
 */

import {
  Agent,
  createIdentity,
  DECIDE_PROTOCOL,
  decodeResponse,
  MemoryArtifactStore,
  MemoryConsensusStore,
  SeededRandom,
} from '@can-swarm/peer'
import { createNetwork, type Network, systemClock } from '@can-swarm/peer/net'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testParams } from '../../../test-support/envelopes.ts'
import { serveDecide } from '../src/anchor/decide-service.ts'

const base = { webRTC: false, pubsubDiscovery: false, reputationPingMs: 0, listen: ['/ip4/127.0.0.1/tcp/0'] }
let anchorNet: Network
let client: Network
let stop: () => Promise<void>

beforeAll(async () => {
  const identity = await createIdentity()
  anchorNet = await createNetwork({ ...base, identity })
  const consensus = new MemoryConsensusStore()
  const agent = new Agent({
    identity,
    params: testParams({ anchors: [identity.did] }),
    bus: { publish: () => undefined },
    clock: systemClock(),
    random: new SeededRandom(1),
    artifacts: new MemoryArtifactStore(),
    consensus,
    roles: { decider: true },
  })
  stop = await serveDecide({
    network: anchorNet,
    agent,
    consensus,
    relay: { publish: () => undefined },
    timeoutMs: 2_000,
    perPeer: { perSecond: 0.5, burst: 6 },
    maxInFlightBytes: 1_000,
  })
  client = await createNetwork({ ...base, identity: await createIdentity() })
  await client.libp2p.dial(anchorNet.libp2p.getMultiaddrs()[0]!)
})

afterAll(async () => {
  await stop?.()
  await client?.stop()
  await anchorNet?.stop()
})

/** Opens a DECIDE stream and writes `prefix` (a raw length prefix) and `body` as they are. */
async function raw(prefix: number[], body: Uint8Array = new Uint8Array()): Promise<Stream> {
  const stream = await client.libp2p.dialProtocol(anchorNet.libp2p.peerId, DECIDE_PROTOCOL)
  // Sent as they are; the service may answer (and close) before it reads them.
  if (stream.writeStatus === 'writable') stream.send(Uint8Array.from([...prefix, ...body]))
  return stream
}

async function answer(stream: Stream): Promise<string> {
  const response = decodeResponse(
    (await lpStream(stream).read({ signal: AbortSignal.timeout(10_000) })).subarray(),
  )
  return response.outcome === 'decided' ? 'decided' : response.reason
}

describe('DECIDE service budgets', () => {
  it('refuses a declared length over the limit before reading it, and a request that does not fit the bytes in flight', async () => {
    // 2^35 bytes declared (5-byte varint), nothing sent: refused at once, by the prefix alone.
    expect(await answer(await raw([0x80, 0x80, 0x80, 0x80, 0x80]))).toMatch(
      /^MALFORMED_ENVELOPE: .*longer than 5 bytes|MALFORMED/,
    )
    expect(await answer(await raw([0xff, 0xff, 0xff, 0xff, 0x0f]))).toMatch(
      /^MALFORMED_ENVELOPE: request of \d+ bytes is over/,
    )
    // A slow request declares 900 bytes and sends 10: it holds 900 of the 1 000 in flight.
    const slow = await raw([0x84, 0x07], new Uint8Array(10))
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(await answer(await raw([200, 1], new Uint8Array(200)))).toMatch(
      /^QUOTA_EXCEEDED: the DECIDE service holds 900 of 1000/,
    )
    // When the slow one times out, its bytes come back: the same request is read (and found malformed).
    expect(await answer(slow)).toMatch(/^(MALFORMED_ENVELOPE|.*abort|.*timed out)/i)
    expect(await answer(await raw([200, 1], new Uint8Array(200)))).toMatch(/^MALFORMED_ENVELOPE/)
  })

  it('refuses a peer over its request rate before reading its request', async () => {
    const answers: string[] = []
    for (let i = 0; i < 4; i += 1) answers.push(await answer(await raw([1], new Uint8Array(1))))
    expect(
      answers.some((reason) => /^QUOTA_EXCEEDED: peer .* is over its DECIDE request rate/.test(reason)),
    ).toBe(true)
  })
})
