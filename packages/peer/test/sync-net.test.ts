/**
 * Envelope sync over real libp2p with signed envelopes (docs/PROTOCOL.md §7.6): two peers that were
 * apart while each took in its own part of three 1 004-envelope threads heal both ways when they
 * meet (verified, folded, to the same state), and a server holds every remote peer to its budgets —
 * sessions at once, requests per second — with typed refusals a puller rides out.
 */
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, describe, expect, it } from 'vitest'
import { claimedThread } from '../../../test-support/claimed-thread.ts'
import { tcpOf, until } from '../../../test-support/peers.ts'
import { artifactCid } from '../src/core/artifacts.ts'
import type { AnyEnvelope } from '../src/core/types.ts'
import { createIdentity } from '../src/crypto/ed25519.ts'
import { createNetwork, type Network } from '../src/net/network.ts'
import { createPeer, type Peer } from '../src/peer.ts'
import {
  decodeSyncResponse,
  encodeSyncRequest,
  MAX_SYNC_MESSAGE_BYTES,
  SYNC_PROTOCOL,
  type SyncResponse,
} from '../src/sync/protocol.ts'
import { pullEnvelopes, serveSync } from '../src/sync/sync.ts'
import { SyncIndex } from '../src/sync/sync-index.ts'

const peers: Peer[] = []
const networks: Network[] = []
afterAll(async () => {
  for (const peer of peers) await peer.stop().catch(() => undefined)
  for (const network of networks) await network.stop().catch(() => undefined)
})

/** Three threads of one network (same signers, different inputs): 3 012 envelopes. */
async function threads() {
  const made = await Promise.all(
    [1, 2, 3].map((n) => claimedThread(71, artifactCid(new TextEncoder().encode(`sync-net input ${n}`)))),
  )
  return { params: made[0]!.params, threads: made.map(({ log, thread }) => ({ log, thread })) }
}

describe('envelope sync over libp2p', () => {
  it('two peers that were apart heal both ways, to the same state', async () => {
    const {
      params,
      threads: [one, two, three],
    } = await threads()
    const options = { params, network: { webRTC: false }, syncIntervalMs: 0, planSync: false as const }
    const a = await createPeer(options)
    const b = await createPeer(options)
    peers.push(a, b)
    // Apart: A holds thread one and the start of two; B holds two and three and the start of one.
    await a.agent.restore([...one!.log, ...two!.log.slice(0, 400)])
    await b.agent.restore([...two!.log, ...three!.log, ...one!.log.slice(0, 300)])
    const total = one!.log.length + two!.log.length + three!.log.length
    const held = (peer: Peer) =>
      [one!, two!, three!].reduce((sum, t) => sum + (peer.agent.replica(t.thread)?.size ?? 0), 0)
    expect(held(a)).toBe(1_404)

    const started = performance.now()
    await a.network.libp2p.dial(multiaddr(tcpOf(b)))
    await until(
      'both peers to hold all three threads',
      () => (held(a) === total && held(b) === total ? true : undefined),
      45_000,
    )
    console.info(
      `healed ${total - 1_404} + ${total - 2_308} envelopes both ways in ${(performance.now() - started).toFixed(0)} ms`,
    )
    for (const t of [one!, two!, three!]) {
      const mine = a.agent.replica(t.thread)!
      expect(mine.stateHash()).toBe(b.agent.replica(t.thread)!.stateHash())
      expect([...mine.state.rejected.values()]).toEqual([])
    }
    expect(a.sync!.index.size).toBe(total)
    // In step: a pull now takes nothing in.
    expect(await a.sync!.pullNow()).toBe(0)
  })

  it('a server refuses sessions and requests beyond each peer’s budget, and a puller rides out the rate', async () => {
    const { threads: made } = await threads()
    const envelopes: AnyEnvelope[] = made.flatMap((t) => t.log)
    const server = await createNetwork({ identity: await createIdentity(), webRTC: false })
    const client = await createNetwork({ identity: await createIdentity(), webRTC: false })
    networks.push(server, client)
    const index = new SyncIndex<AnyEnvelope>()
    for (const env of envelopes) index.add(env)
    await serveSync(server.libp2p, index, {
      maxSessionsPerPeer: 1,
      requestsPerSecond: 20,
      requestBurst: 3,
      pageBytes: 64 * 1024,
    })
    const address = multiaddr(server.libp2p.getMultiaddrs().find((a) => !a.toString().includes('/ws'))!)
    await client.libp2p.dial(address)

    const open = async () => {
      const stream: Stream = await client.libp2p.dialProtocol(address, SYNC_PROTOCOL)
      const framed = lpStream(stream, {
        maxDataLength: MAX_SYNC_MESSAGE_BYTES,
        maxBufferSize: MAX_SYNC_MESSAGE_BYTES + 16,
      })
      return {
        stream,
        async ask(bytes: Uint8Array): Promise<SyncResponse> {
          await framed.write(bytes)
          return decodeSyncResponse((await framed.read()).subarray())
        },
      }
    }
    const scan = encodeSyncRequest({ op: 'scan', lo: null, hi: null })

    // One session at a time from this peer: a second is refused as busy.
    const first = await open()
    expect((await first.ask(scan)).op).toBe('scan')
    const second = await open()
    expect(await second.ask(scan)).toMatchObject({ op: 'refused', reason: 'busy' })
    // A burst past the bucket is refused with the time to wait.
    const answers = []
    for (let i = 0; i < 5; i += 1) answers.push(await first.ask(scan))
    const refused = answers.find((answer) => answer.op === 'refused')
    expect(refused).toMatchObject({ op: 'refused', reason: 'rate' })
    expect((refused as { retryMs: number }).retryMs).toBeGreaterThan(0)
    // A malformed request is refused naming the field, and the session ends.
    expect(await first.ask(encodeSyncRequest({ op: 'get', ids: [] }))).toMatchObject({
      op: 'refused',
      reason: 'malformed',
      field: 'ids',
    })
    await first.stream.close().catch(() => undefined)
    await second.stream.close().catch(() => undefined)

    // A whole pull, page by page (64 KiB pages), waits out every rate refusal.
    const mine = new SyncIndex<AnyEnvelope>()
    const report = await pullEnvelopes(client.libp2p, address, {
      index: mine,
      async deliver(page) {
        for (const env of page) mine.add(env)
      },
      maxRetries: 50,
    })
    expect(report.complete).toBe(true)
    expect(mine.size).toBe(envelopes.length)
    expect(report.requests).toBeGreaterThan(3)
  })

  it('a pull stops when its signal aborts, also while it waits out a rate refusal', async () => {
    const { threads: made } = await threads()
    const server = await createNetwork({ identity: await createIdentity(), webRTC: false })
    const client = await createNetwork({ identity: await createIdentity(), webRTC: false })
    networks.push(server, client)
    const index = new SyncIndex<AnyEnvelope>()
    for (const env of made.flatMap((t) => t.log)) index.add(env)
    // One request per 4 s: the second is refused with a wait of seconds (capped at 5 s).
    await serveSync(server.libp2p, index, { requestsPerSecond: 0.25, requestBurst: 1 })
    const address = multiaddr(server.libp2p.getMultiaddrs().find((a) => !a.toString().includes('/ws'))!)
    const controller = new AbortController()
    const pulling = pullEnvelopes(client.libp2p, address, {
      index: new SyncIndex<AnyEnvelope>(),
      async deliver() {},
      signal: controller.signal,
    })
    const stoppedAt = new Promise<number>((resolve) => {
      pulling.catch(() => resolve(performance.now()))
    })
    await new Promise((resolve) => setTimeout(resolve, 300))
    const abortedAt = performance.now()
    controller.abort(new Error('the caller gave up'))
    await expect(pulling).rejects.toThrow('the caller gave up')
    // It stopped on the abort, not when the refusal's wait (seconds) ran out.
    expect((await stoppedAt) - abortedAt).toBeLessThan(2_000)
  })
})
