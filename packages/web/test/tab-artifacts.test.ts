/**
 * The tab's artifact store (src/app/tab-artifacts.ts) over real Helia on real libp2p nodes on
 * 127.0.0.1: what is put is read back locally; what a connected peer holds comes by bitswap; the
 * gateway is asked only when bitswap finds nothing in time, and its bytes are kept only when they
 * match the CID; a store reopened on the same storage still holds what it had (in the browser
 * that storage is IndexedDB, checked by the e2e across a reload).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { artifactCid, createIdentity } from '@can-swarm/peer'
import { createHeliaArtifacts, openArtifactStorage } from '@can-swarm/peer/artifacts'
import { createNetwork, type Network } from '@can-swarm/peer/net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ArtifactReader, TabArtifacts } from '../src/app/tab-artifacts.ts'

const stoppable: Array<{ stop(): Promise<void> }> = []
let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-tab-artifacts-'))
})
afterAll(async () => {
  for (const item of stoppable.reverse()) await item.stop().catch(() => undefined)
  await rm(dir, { recursive: true, force: true })
})

async function network(): Promise<Network> {
  const started = await createNetwork({
    identity: await createIdentity(),
    webRTC: false,
    pubsubDiscovery: false,
    reputationPingMs: 0,
  })
  stoppable.push(started)
  return started
}

/** A tab-like store on `on`, blocks under `directory` (or in memory), bitswap waiting `waitMs`. */
function tabStore(
  on: Network,
  options: { directory?: string; gateway?: ArtifactReader; waitMs?: number } = {},
) {
  const store = new TabArtifacts({
    open: async () =>
      createHeliaArtifacts({
        libp2p: on.libp2p,
        fetchTimeoutMs: options.waitMs ?? 10_000,
        ...(options.directory ? { storage: await openArtifactStorage(options.directory) } : {}),
      }),
    ...(options.gateway ? { gateway: options.gateway } : {}),
  })
  stoppable.push(store)
  return store
}

const text = (value: string) => new TextEncoder().encode(value)

describe('the tab artifact store', () => {
  it('reads its own puts locally and fetches what a connected peer holds by bitswap', async () => {
    const a = await network()
    const b = await network()
    await b.libp2p.dial(a.libp2p.getMultiaddrs()[0]!)
    const tabA = tabStore(a)
    const tabB = tabStore(b)
    const bytes = text('a NEED input kept in tab A')
    const cid = await tabA.put(bytes)
    expect(cid).toBe(artifactCid(bytes))
    expect(await tabA.get(cid)).toEqual(bytes)
    expect(tabA.sourceOf(cid)).toBe('this browser')
    expect(await tabB.get(cid)).toEqual(bytes)
    expect(tabB.sourceOf(cid)).toBe('bitswap')
    expect(tabB.stats()).toMatchObject({ bitswap: 1, gateway: 0, missing: 0 })
    // Now tab B holds it: a second read stays local.
    expect(await tabB.get(cid)).toEqual(bytes)
    expect(tabB.stats()).toMatchObject({ local: 1, bitswap: 1 })
  })

  it('asks the gateway only when bitswap finds nothing in time, and keeps only bytes that match the CID', async () => {
    const held = text('an artifact only the anchor holds')
    const forgedFor = artifactCid(text('what was asked for'))
    const asked: string[] = []
    const gateway: ArtifactReader = {
      async get(cid) {
        asked.push(cid)
        if (cid === artifactCid(held)) return held
        if (cid === forgedFor) return text('forged bytes')
        return undefined
      },
    }
    const alone = tabStore(await network(), { gateway, waitMs: 300 })
    const cid = artifactCid(held)
    expect(await alone.get(cid)).toEqual(held)
    expect(alone.sourceOf(cid)).toBe('anchor gateway')
    // Kept in the tab: the next read neither waits for bitswap nor asks the gateway.
    expect(await alone.get(cid)).toEqual(held)
    expect(asked).toEqual([cid])
    expect(await alone.get(forgedFor)).toBeUndefined()
    expect(alone.sourceOf(forgedFor)).toBeUndefined()
    expect(alone.stats()).toMatchObject({ gateway: 1, local: 1, missing: 1 })
  })

  it('still holds what it had when reopened on the same storage', async () => {
    const directory = join(dir, 'tab')
    const node = await network()
    const first = tabStore(node, { directory })
    const bytes = text('kept across a reload')
    const cid = await first.put(bytes)
    await first.stop()
    const second = tabStore(node, { directory, waitMs: 300 })
    expect(await second.get(cid)).toEqual(bytes)
    expect(second.sourceOf(cid)).toBe('this browser')
  })
})
