/**
 * Helia artifacts over real libp2p nodes on 127.0.0.1 (artifacts/helia.ts): bitswap between
 * peers, a late joiner served by a peer that only cached the artifact, pins surviving gc and a
 * restart of a disk store, bytes checked against their CID, thread trees fetched by a light peer,
 * and pins bounded by their limits (depth, blocks, bytes).
 */
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeIdentities, sign } from '../../../test-support/envelopes.ts'
import { createHeliaArtifacts, type HeliaArtifacts, MAX_ARTIFACT_BYTES } from '../src/artifacts/helia.ts'
import { openArtifactStorage } from '../src/artifacts/storage.ts'
import { fetchThreadEnvelope, storeThreadTree } from '../src/artifacts/thread-tree.ts'
import { artifactCid } from '../src/core/artifacts.ts'
import { OversizedArtifactError, QuotaExceededError } from '../src/core/errors.ts'
import { verifyInclusion } from '../src/core/thread/merkle.ts'
import { createIdentity } from '../src/crypto/ed25519.ts'
import { createNetwork, type Network } from '../src/net/network.ts'

const started: Array<{ stop(): Promise<void> }> = []
let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-helia-'))
})
afterAll(async () => {
  // Stores first (they leave the libp2p node running), then the networks.
  for (const item of started.reverse()) await item.stop().catch(() => undefined)
  await rm(dir, { recursive: true, force: true })
})

async function node(
  options: { fetchTimeoutMs?: number } = {},
): Promise<{ network: Network; store: HeliaArtifacts }> {
  const network = await createNetwork({
    identity: await createIdentity(),
    webRTC: false,
    pubsubDiscovery: false,
    reputationPingMs: 0,
  })
  started.push(network)
  const store = await createHeliaArtifacts({
    libp2p: network.libp2p,
    fetchTimeoutMs: options.fetchTimeoutMs ?? 20_000,
  })
  started.push(store)
  return { network, store }
}

async function connect(from: Network, to: Network): Promise<void> {
  await from.libp2p.dial(to.libp2p.getMultiaddrs()[0]!)
}

function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length)
  for (let index = 0; index < length; index += 1) bytes[index] = (index * 31 + seed * 7) & 0xff
  return bytes
}

describe('Helia artifacts between peers', () => {
  it('puts on A and gets on B through bitswap; a late third peer gets it from B, which only cached it', async () => {
    const a = await node()
    const b = await node()
    await connect(b.network, a.network)
    // Safe by default: no content router (no DHT here, never HTTP or delegated routing), no gateway broker.
    expect((a.store.helia.routing as unknown as { routers: unknown[] }).routers).toEqual([])
    expect(a.store.helia.hasBlockBroker('bitswap')).toBe(true)
    expect(a.store.helia.hasBlockBroker('trustless-gateway')).toBe(false)
    const bytes = pattern(1024 * 1024, 1)
    const cid = await a.store.put(bytes)
    expect(cid).toBe(artifactCid(bytes))
    expect(await b.store.has(cid)).toBe(false)
    expect(await b.store.get(cid)).toEqual(bytes)
    expect(await b.store.has(cid)).toBe(true)

    // C joins late and knows only B; A is not even reachable from C.
    const c = await node()
    await connect(c.network, b.network)
    expect(c.network.libp2p.getConnections(a.network.peerId)).toHaveLength(0)
    expect(await c.store.get(cid)).toEqual(bytes)
    // The largest artifact crosses too.
    const largest = pattern(MAX_ARTIFACT_BYTES, 2)
    expect(await b.store.get(await a.store.put(largest))).toEqual(largest)
  })

  it('says undefined for what nobody holds, at once when offline, and honours an abort', async () => {
    const a = await node({ fetchTimeoutMs: 300 })
    const b = await node()
    await connect(a.network, b.network)
    const missing = artifactCid(new TextEncoder().encode('nobody has this'))
    expect(await a.store.get(missing)).toBeUndefined()
    expect(await a.store.get(missing, { offline: true })).toBeUndefined()
    expect(await a.store.get('not-a-cid')).toBeUndefined()
    const controller = new AbortController()
    const pending = b.store.get(missing, { signal: controller.signal })
    controller.abort(new Error('caller gave up'))
    await expect(pending).rejects.toThrow('caller gave up')
    await expect(a.store.put(new Uint8Array(MAX_ARTIFACT_BYTES + 1))).rejects.toThrow(OversizedArtifactError)
  })

  it('pins keep artifacts through gc; unpinned ones go; pinning fetches from a peer first', async () => {
    const a = await node()
    const b = await node()
    await connect(b.network, a.network)
    const kept = await a.store.put(pattern(1000, 3))
    const dropped = await a.store.put(pattern(1000, 4))
    await a.store.pin(kept)
    await a.store.pin(kept) // idempotent
    expect(a.store.pins()).toEqual([kept])
    expect(await a.store.gc()).toBe(1)
    expect(await a.store.has(kept)).toBe(true)
    expect(await a.store.has(dropped)).toBe(false)

    await b.store.pin(kept) // B does not hold it: pinning fetches it from A
    expect(await b.store.has(kept)).toBe(true)
    expect(await b.store.gc()).toBe(0)

    await a.store.unpin(kept)
    expect(a.store.pins()).toEqual([])
    expect(await a.store.gc()).toBe(1)
    expect(await a.store.has(kept)).toBe(false)
    await expect(a.store.pin('not-a-cid')).rejects.toThrow(/not a CID/)
  })

  it('a light peer fetches root → inner nodes → an envelope of a thread and checks the proof', async () => {
    const a = await node()
    const light = await node()
    await connect(light.network, a.network)
    const [alice, bob] = await makeIdentities(2, 41)
    const claim = artifactCid(new TextEncoder().encode('a claim'))
    const envelopes = []
    for (let index = 0; index < 40; index += 1) {
      const payload = { task: 'need-tree/p/t', claim, progress: index }
      envelopes.push(await sign(index % 2 ? alice! : bob!, 'HEARTBEAT', 'need-tree', payload))
    }
    const tree = await storeThreadTree(a.store, envelopes, { pin: true })
    expect(a.store.pins()).toEqual([tree.root])
    expect(await a.store.gc()).toBe(0) // the pinned root holds every node and envelope
    const { envelope, proof } = await fetchThreadEnvelope(light.store, tree.root, 17)
    expect(envelope.id).toBe(tree.leaves[17])
    expect(verifyInclusion(tree.root, envelope.id, proof)).toBe(true)
    // The light peer holds the path, not the thread.
    let held = 0
    for (const leaf of tree.leaves) if (await light.store.has(leaf)) held += 1
    expect(held).toBe(1)
  })
})

describe('Helia content routing', () => {
  it('finds providers through the swarm DHT when the network runs one, and fetches from them', async () => {
    const base = { webRTC: false, pubsubDiscovery: false, reputationPingMs: 0, dialDiscoveredBelow: 0 }
    const hub = await createNetwork({ ...base, identity: await createIdentity(), dht: 'server' })
    started.push(hub)
    const bootstrap = [hub.libp2p.getMultiaddrs()[0]!.toString()]
    const [a, b] = await Promise.all(
      (['server', 'client'] as const).map(async (dht) => {
        const network = await createNetwork({ ...base, identity: await createIdentity(), bootstrap, dht })
        started.push(network)
        const store = await createHeliaArtifacts({ libp2p: network.libp2p, fetchTimeoutMs: 3000 })
        started.push(store)
        return { network, store }
      }),
    )
    const bytes = pattern(5000, 9)
    const cid = await a!.store.put(bytes)
    await a!.store.helia.routing.provide(CID.parse(cid), { signal: AbortSignal.timeout(20_000) })
    // B's Helia asks the swarm DHT (its only content router) who provides the CID.
    const providers: string[] = []
    for (let attempt = 0; attempt < 20 && providers.length === 0; attempt += 1) {
      for await (const provider of b!.store.helia.routing.findProviders(CID.parse(cid), {
        signal: AbortSignal.timeout(3000),
      })) {
        providers.push(provider.id.toString())
      }
    }
    expect(providers).toContain(a!.network.peerId.toCID().toString())
    expect(await b!.store.get(cid)).toEqual(bytes)
  }, 60_000)
})

describe('Helia artifacts on disk', () => {
  it('blocks and pins survive a restart; a damaged block is never returned', async () => {
    const location = join(dir, 'store')
    let store = await createHeliaArtifacts({ storage: await openArtifactStorage(location), pinOnPut: true })
    const bytes = pattern(70_000, 5)
    const cid = await store.put(bytes)
    const loose = await createHeliaArtifacts({ storage: await openArtifactStorage(location) })
    await loose.stop()
    await store.stop()

    store = await createHeliaArtifacts({ storage: await openArtifactStorage(location) })
    expect(store.pins()).toEqual([cid])
    expect(await store.gc()).toBe(0)
    expect(await store.get(cid)).toEqual(bytes)
    const other = await store.put(pattern(10, 6))
    await store.stop()

    // Flip one byte of the unpinned block's file: the store refuses to hand it out.
    const files = await listFiles(join(location, 'blocks'))
    let damaged = 0
    for (const file of files) {
      if ((await stat(file)).size === 10) {
        await writeFile(file, pattern(10, 7))
        damaged += 1
      }
    }
    expect(damaged).toBe(1)
    store = await createHeliaArtifacts({ storage: await openArtifactStorage(location) })
    expect(await store.get(other)).toBeUndefined()
    expect(await store.get(cid)).toEqual(bytes)
    await store.stop()
  })
})

async function listFiles(root: string): Promise<string[]> {
  const result: string[] = []
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const path = join(root, entry.name)
    if (entry.isDirectory()) result.push(...(await listFiles(path)))
    else result.push(path)
  }
  return result
}

describe('Helia pin limits', () => {
  it('pins a raw block alone, walks DAG-CBOR only as deep as allowed, and refuses a DAG over its block or byte bound having pinned nothing', async () => {
    const store = await createHeliaArtifacts({
      pinLimits: { maxDepth: 2, maxBlocks: 8, maxBytes: 64 * 1024 },
    })
    started.push(store)
    const putCbor = async (value: unknown) => {
      const bytes = dagCbor.encode(value)
      const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes))
      await store.helia.blockstore.put(cid, bytes)
      return cid
    }
    // A chain of 6: pinned with its 2 levels below the root; gc takes the 3 deeper blocks.
    let chain = await putCbor({ level: 5 })
    for (let level = 4; level >= 0; level -= 1) chain = await putCbor({ level, next: chain })
    const seen: string[] = []
    await store.pin(chain.toString(), { onBlock: (cid) => seen.push(cid) })
    expect(seen).toHaveLength(3)
    expect(await store.gc()).toBe(3)
    // A root linking 20 blocks (and one twice): refused at the 9th block before it is read.
    const leaves = []
    for (let index = 0; index < 20; index += 1) leaves.push(await putCbor({ index }))
    const wide = await putCbor({ leaves: [...leaves, leaves[0]] })
    await expect(store.pin(wide.toString())).rejects.toThrow(QuotaExceededError)
    expect(store.isPinned(wide.toString())).toBe(false)
    // …and over its bytes (the same root with room for all its blocks but not their bytes).
    await expect(
      store.pin(wide.toString(), { limits: { maxDepth: 2, maxBlocks: 100, maxBytes: 200 } }),
    ).rejects.toThrow(/more than 200 bytes/)
    expect(await store.gc()).toBe(21) // nothing of the refused DAG was pinned
    const raw = await store.put(new TextEncoder().encode('a raw artifact'))
    await store.pin(raw, { limits: { maxDepth: 0, maxBlocks: 1, maxBytes: 100 } })
    expect(await store.gc()).toBe(0)
    expect(store.pins()).toEqual([chain.toString(), raw])
  })
})
