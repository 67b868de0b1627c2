/**
 * An anchor in hybrid NATS mode (`--nats`), with Debian's nats-server: an envelope published on
 * NATS reaches the anchor (and its log) through the same checks as gossip, one from a gossip peer
 * reaches NATS, and a forged one from NATS is refused. The bridge also runs on its own
 * (`node packages/node bridge`) beside an anchor that knows nothing of NATS.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AnyEnvelope } from '@can-swarm/peer'
import {
  createIdentity,
  createPeer,
  decodeEnvelope,
  encodeEnvelope,
  fetchNetwork,
  type Peer,
} from '@can-swarm/peer'
import { decodeFrame, encodeFrame, shardOf } from '@can-swarm/peer/net'
import { natsToken } from '@can-swarm/peer/node'
import { connect, type NatsConnection } from 'nats'
import { afterAll, describe, expect, it } from 'vitest'
import { ANCHOR_ENTRY, killAnchors, startAnchorProcess } from '../../../test-support/anchor-process.ts'
import { type NatsServer, startNatsServer } from '../../../test-support/nats-server.ts'
import { until } from '../../../test-support/peers.ts'
import { need } from '../../../test-support/prerequisites.ts'

const available = need('nats-server', import.meta.filename)
const cleanup: Array<() => Promise<unknown> | unknown> = []
afterAll(async () => {
  for (const step of cleanup.reverse()) await Promise.resolve(step()).catch(() => undefined)
  killAnchors()
})

/**
 * NEEDs signed by a peer of the network that is connected to nothing: what it publishes is only
 * captured, for a test to send one way or the other.
 */
async function needAuthor(params: Peer['params']): Promise<(text: string) => Promise<AnyEnvelope>> {
  const made: AnyEnvelope[] = []
  const author: Peer = await createPeer({
    identity: await createIdentity(),
    params,
    network: { webRTC: false },
    envelopeSync: false,
    planSync: false,
    hooks: { onPublish: (env) => void made.push(env) },
  })
  cleanup.push(() => author.stop())
  return async (text) => {
    const thread = await author.post({
      requires: ['word-frequency'],
      inputs: [new TextEncoder().encode(text)],
      budget: 5,
    })
    return made.find((env) => env.thread === thread && env.kind === 'NEED')!
  }
}

describe.skipIf(!available)('an anchor bridging NATS', () => {
  it('takes envelopes from NATS through its gate, and gives gossip’s to NATS', {
    timeout: 120_000,
  }, async () => {
    const server: NatsServer = await startNatsServer()
    cleanup.push(() => server.stop())
    const dir = await mkdtemp(join(tmpdir(), 'can-swarm-anchor-nats-'))
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    const anchor = await startAnchorProcess(['--data', join(dir, 'anchor'), '--nats', server.url])
    const { params } = await fetchNetwork(anchor.url)
    const prefix = `can-swarm.${natsToken(params.network)}`

    const client: NatsConnection = await connect({ servers: server.url, noEcho: true })
    cleanup.push(() => client.close())
    const heard = new Set<string>()
    const heardThreads = new Set<string>()
    client.subscribe(`${prefix}.*`, {
      callback: (_error, message) => {
        for (const bytes of decodeFrame(message.data)) {
          const env = decodeEnvelope(bytes)
          heard.add(env.id)
          heardThreads.add(env.thread)
        }
      },
    })
    await client.flush()

    const post = await needAuthor(params)
    const threadAt = async (thread: string) => (await fetch(`${anchor.url}/api/threads/${thread}`)).status

    // NATS → anchor.
    const viaNats = await post('from nats')
    // The anchor's bridge connects in the background: the same envelope again until it is in.
    await until('the anchor to hold the NEED from NATS', async () => {
      client.publish(`${prefix}.${shardOf(viaNats.thread)}`, encodeFrame([encodeEnvelope(viaNats)]))
      await new Promise((resolve) => setTimeout(resolve, 200))
      return (await threadAt(viaNats.thread)) === 200 ? true : undefined
    })

    // A forged one (payload changed after signing) is refused: the anchor never holds it.
    const signed = await post('forged')
    const forged = { ...signed, payload: { ...signed.payload, budget: 4 } } as AnyEnvelope
    client.publish(`${prefix}.${shardOf(forged.thread)}`, encodeFrame([encodeEnvelope(forged)]))

    // Gossip → NATS: a peer connected to the anchor publishes; the NATS side hears it.
    const ws = anchor.multiaddrs.find((address) => address.includes('/ws/'))!
    const gossiping: Peer = await createPeer({
      identity: await createIdentity(),
      params,
      bootstrap: [ws],
      network: { webRTC: false },
      envelopeSync: false,
      planSync: false,
    })
    cleanup.push(() => gossiping.stop())
    let round = 0
    const heardGossip = await until('a gossiped NEED on NATS', async () => {
      const thread = await gossiping.post({
        requires: ['word-frequency'],
        inputs: [new TextEncoder().encode(`gossip ${round++}`)],
        budget: 5,
      })
      await new Promise((resolve) => setTimeout(resolve, 500))
      return heardThreads.has(thread) ? thread : undefined
    })
    expect(heardGossip).toBeDefined()
    // What came from NATS was not sent back to it, and the forgery never got in.
    expect(heard.has(viaNats.id)).toBe(false)
    expect(await threadAt(forged.thread)).toBe(404)
    // The anchor's status says what its bridge did.
    const status = (await (await fetch(`${anchor.url}/api/status`)).json()) as {
      nats?: {
        connected: boolean
        fromNats: { envelopes: number; rejected: Record<string, number> }
        toNats: { envelopes: number }
      }
    }
    expect(status.nats?.connected).toBe(true)
    expect(status.nats?.fromNats.envelopes).toBeGreaterThanOrEqual(1)
    expect(status.nats?.fromNats.rejected['bad-signature']).toBe(1)
    expect(status.nats?.toNats.envelopes).toBeGreaterThanOrEqual(1)
  })

  it('runs on its own: NATS envelopes reach an anchor through the bridge process, which stops on SIGTERM', {
    timeout: 120_000,
  }, async () => {
    const server: NatsServer = await startNatsServer()
    cleanup.push(() => server.stop())
    const dir = await mkdtemp(join(tmpdir(), 'can-swarm-bridge-'))
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    const anchor = await startAnchorProcess(['--data', join(dir, 'anchor')])
    const { params } = await fetchNetwork(anchor.url)
    const root = new URL('../../../', import.meta.url).pathname
    const child = spawn(
      process.execPath,
      [ANCHOR_ENTRY, 'bridge', '--anchor', anchor.url, '--nats', server.url, '--stats-ms', '0'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: process.env },
    )
    cleanup.push(() => child.kill('SIGKILL'))
    const lines: string[] = []
    child.stdout.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)))
    child.stderr.on('data', (chunk: Buffer) => lines.push(chunk.toString()))
    const ready = await until('the bridge ready', () => {
      const line = lines.find((entry) => entry.includes('"bridge ready"'))
      return line ? (JSON.parse(line) as { subjectPrefix: string; network: string }) : undefined
    })
    expect(ready.network).toBe(params.network)
    expect(ready.subjectPrefix).toBe(`can-swarm.${natsToken(params.network)}`)

    const client: NatsConnection = await connect({ servers: server.url })
    cleanup.push(() => client.close())
    const post = await needAuthor(params)
    let round = 0
    // Until the bridge's gossip mesh with the anchor has formed, a NEED may not get through.
    await until('a NEED from NATS at the anchor', async () => {
      const env = await post(`through the bridge ${round++}`)
      const thread = env.thread
      client.publish(`${ready.subjectPrefix}.${shardOf(thread)}`, encodeFrame([encodeEnvelope(env)]))
      await new Promise((resolve) => setTimeout(resolve, 500))
      return (await fetch(`${anchor.url}/api/threads/${thread}`)).status === 200 ? true : undefined
    })
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(lines.some((line) => line.includes('"bridge stopped"'))).toBe(true)
  })
})
