/**
 * The anchor's Helia artifact store (anchor/artifacts.ts) over real libp2p nodes on 127.0.0.1:
 * the gateway's checks and bounds, uploads cached until an envelope references them and then
 * pinned, blocks and pins surviving a restart (the FsBlockstore reopened), the stand-in store of
 * earlier versions imported, artifacts referenced by envelopes pinned from their authors and served
 * after the authors have gone, and a gateway GET answered from the swarm. Under hostile load: one
 * client's junk uploads (over real HTTP, from other addresses) never get another's refused,
 * unreferenced uploads expire while referenced ones stay pinned across a restart, DAG-CBOR pins
 * stop at their depth and byte bounds, and CIDs nobody has cost bounded attempts without starving
 * the queue.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { artifactCid, createIdentity, type Identity, QuotaExceededError } from '@can-swarm/peer'
import { createHeliaArtifacts, type HeliaArtifacts } from '@can-swarm/peer/artifacts'
import { createNetwork, type Network } from '@can-swarm/peer/net'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeIdentities, sign } from '../../../test-support/envelopes.ts'
import { AnchorArtifacts, type AnchorArtifactsOptions } from '../src/anchor/artifacts.ts'
import { startTestHttp } from './helpers/http.ts'

let dir: string
const toStop: Array<{ stop(): Promise<void> }> = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-anchor-artifacts-'))
})
afterAll(async () => {
  for (const item of toStop.reverse()) await item.stop().catch(() => undefined)
  await rm(dir, { recursive: true, force: true })
})

async function network(): Promise<Network> {
  const node = await createNetwork({
    identity: await createIdentity(),
    webRTC: false,
    pubsubDiscovery: false,
    reputationPingMs: 0,
  })
  toStop.push(node)
  return node
}

async function anchorStore(
  data: string,
  options: AnchorArtifactsOptions = {},
): Promise<{ node: Network; artifacts: AnchorArtifacts; imported: number }> {
  const node = await network()
  const { artifacts, imported } = await AnchorArtifacts.open(data, node.libp2p, options)
  toStop.push(artifacts)
  return { node, artifacts, imported }
}

async function peer(): Promise<{ node: Network; store: HeliaArtifacts }> {
  const node = await network()
  const store = await createHeliaArtifacts({ libp2p: node.libp2p })
  toStop.push(store)
  return { node, store }
}

async function connect(from: Network, to: Network): Promise<void> {
  await from.libp2p.dial(to.libp2p.getMultiaddrs()[0]!)
}

const text = (value: string) => new TextEncoder().encode(value)

/** A signed NEED whose inputs are `inputs` (what makes the anchor pin them). */
async function needOf(inputs: string[], name = 'need-pinned', requester?: Identity) {
  requester ??= (await makeIdentities(1, 78))[0]!
  return sign(requester, 'NEED', name, {
    need: name,
    epoch: 1,
    requires: ['sha256'],
    inputs,
    produces: 'text/plain',
    budget: 10,
    deadlineMs: 0,
    bidWindowMs: 100,
  })
}

describe('the anchor artifact store', () => {
  it('checks uploads, pins them once referenced, and keeps blocks and pins across a restart (stand-in store imported)', async () => {
    const data = join(dir, 'restart')
    // An earlier version's stand-in store: one good file, one whose bytes do not match its name.
    const old = text('uploaded before Helia')
    await mkdir(join(data, 'artifacts'), { recursive: true })
    await writeFile(join(data, 'artifacts', artifactCid(old)), old)
    await writeFile(join(data, 'artifacts', artifactCid(text('other'))), text('forged'))

    let { node, artifacts, imported } = await anchorStore(data, { maxArtifactBytes: 1000 })
    expect(imported).toBe(1)
    expect(existsSync(join(data, 'artifacts', artifactCid(old)))).toBe(false)
    const bytes = text('an artifact a browser uploads')
    const cid = artifactCid(bytes)
    expect(await artifacts.put(cid, bytes)).toBeUndefined()
    expect(await artifacts.put(cid, bytes)).toBeUndefined() // idempotent
    expect((await artifacts.put(artifactCid(text('x')), bytes))?.status).toBe(422)
    expect((await artifacts.put('not-a-cid', bytes))?.status).toBe(400)
    expect((await artifacts.put(artifactCid(new Uint8Array(1001)), new Uint8Array(1001)))?.status).toBe(413)
    expect(artifacts.pinned).toBe(1) // the imported one: an upload is cached until referenced…
    expect(artifacts.isCached(cid)).toBe(true)
    artifacts.pinReferenced(await needOf([cid]))
    await artifacts.settled()
    expect(artifacts.pinned).toBe(2) // …and pinned once an accepted envelope references it
    expect(artifacts.isCached(cid)).toBe(false)
    await artifacts.stop()
    await node.stop()

    ;({ node, artifacts } = await anchorStore(data))
    expect(artifacts.pinned).toBe(2)
    expect(await artifacts.store.gc()).toBe(0)
    expect(await artifacts.get(cid)).toEqual(bytes)
    expect(await artifacts.get(artifactCid(old))).toEqual(old)
    // …and serves them to peers over bitswap after the restart.
    const reader = await peer()
    await connect(reader.node, node)
    expect(await reader.store.get(cid)).toEqual(bytes)
  })

  it('pins what envelopes reference from their authors and serves it after they have gone', async () => {
    const { node, artifacts } = await anchorStore(join(dir, 'referenced'))
    const author = await peer()
    await connect(author.node, node)
    const input = text('an input only its author holds')
    const output = text('an output only its author holds')
    const inputCid = await author.store.put(input)
    const outputCid = await author.store.put(output)
    const [requester, worker] = await makeIdentities(2, 77)
    const need = await sign(requester!, 'NEED', 'need-pinned', {
      need: 'need-pinned',
      epoch: 1,
      requires: ['sha256'],
      inputs: [inputCid],
      produces: 'text/plain',
      budget: 10,
      deadlineMs: 0,
      bidWindowMs: 100,
    })
    const commit = await sign(worker!, 'COMMIT', 'need-pinned', {
      task: 'need-pinned/p/t',
      claim: artifactCid(text('claim')),
      outputs: [outputCid],
      telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 30, outputBytes: 31 },
      verifyBounty: 0,
    })
    artifacts.pinReferenced(need)
    artifacts.pinReferenced(commit)
    await artifacts.settled()
    expect(artifacts.store.isPinned(inputCid) && artifacts.store.isPinned(outputCid)).toBe(true)

    await author.store.stop()
    await author.node.stop()
    const later = await peer()
    await connect(later.node, node)
    expect(await later.store.get(inputCid)).toEqual(input)
    expect(await later.store.get(outputCid)).toEqual(output)
  })

  it('answers a gateway GET from the swarm, and refuses uploads when full of pinned blocks', async () => {
    const { node, artifacts } = await anchorStore(join(dir, 'gateway'), { maxTotalBytes: 100 })
    const holder = await peer()
    await connect(node, holder.node)
    const bytes = new Uint8Array(40).fill(7) // made by a Node peer, wanted by a browser
    const cid = await holder.store.put(bytes)
    expect(await artifacts.get(cid)).toEqual(bytes)
    expect(artifacts.store.isPinned(cid)).toBe(false) // cached, not pinned
    const upload = async (size: number, fill: number, pin: boolean) => {
      const body = new Uint8Array(size).fill(fill)
      const refusal = await artifacts.put(artifactCid(body), body)
      if (pin && refusal === undefined) {
        artifacts.pinReferenced(await needOf([artifactCid(body)], `need-full-${fill}`))
        await artifacts.settled()
      }
      return refusal
    }
    expect(await upload(50, 1, true)).toBeUndefined() // 40 cached + 50 pinned
    expect(await upload(30, 2, true)).toBeUndefined() // over 100: the cached block is collected first
    expect(await artifacts.store.has(cid)).toBe(false)
    expect(artifacts.totalBytes).toBe(80)
    expect((await upload(30, 3, false))?.status).toBe(507) // only pinned blocks left
  })
})

describe('the artifacts of settled threads', () => {
  it('give way when room is needed, oldest settled first, never one a thread under way references', async () => {
    const { artifacts } = await anchorStore(join(dir, 'settled'), { maxTotalBytes: 100 })
    const body = (size: number, fill: number) => new Uint8Array(size).fill(fill)
    const pinFor = async (bytes: Uint8Array, thread: string) => {
      expect(await artifacts.put(artifactCid(bytes), bytes)).toBeUndefined()
      artifacts.pinReferenced(await needOf([artifactCid(bytes)], thread))
      await artifacts.settled()
      expect(artifacts.store.isPinned(artifactCid(bytes))).toBe(true)
    }
    const [a, b, c, d] = [body(40, 11), body(30, 12), body(30, 13), body(30, 14)]
    await pinFor(a, 'thread-a')
    await pinFor(b, 'thread-b')
    artifacts.pinReferenced(await needOf([artifactCid(b)], 'thread-b2')) // a second thread needs b
    await pinFor(c, 'thread-c') // 100 bytes pinned: the store is full
    expect((await artifacts.put(artifactCid(d), d))?.status).toBe(507)
    // b's first thread settles; its second is under way: b stays, the store is still full.
    artifacts.threadSettled('thread-b')
    expect(artifacts.stats().settledPins).toBe(0)
    expect((await artifacts.put(artifactCid(d), d))?.status).toBe(507)
    // a settles, then b's second thread: a settled first, and freeing a alone makes room.
    artifacts.threadSettled('thread-a')
    artifacts.threadSettled('thread-b2')
    expect(artifacts.stats().settledPins).toBe(2)
    expect(await artifacts.put(artifactCid(d), d)).toBeUndefined()
    expect(artifacts.store.isPinned(artifactCid(a))).toBe(false)
    expect(await artifacts.store.has(artifactCid(a))).toBe(false)
    for (const kept of [b, c]) expect(artifacts.store.isPinned(artifactCid(kept))).toBe(true)
    expect(artifacts.stats()).toMatchObject({ settledPins: 1, releasedPins: 1 })
    // A settled artifact referenced again by a new thread is under way again: it no longer gives way.
    artifacts.pinReferenced(await needOf([artifactCid(b)], 'thread-b3'))
    expect(artifacts.stats().settledPins).toBe(0)
    expect(artifacts.totalBytes).toBe(90)
  })
})

/** Stores `value` as a DAG-CBOR block in `store` (what a peer making a thread tree does). */
async function putDagCbor(store: HeliaArtifacts, value: unknown): Promise<string> {
  const bytes = dagCbor.encode(value)
  const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes))
  await store.helia.blockstore.put(cid, bytes)
  return cid.toString()
}

/** PUTs `body` to `/api/artifacts/<cid>` from the local address `from` (a client of its own). */
function upload(port: number, from: string, body: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        host: '127.0.0.1',
        port,
        localAddress: from,
        method: 'PUT',
        path: `/api/artifacts/${artifactCid(body)}`,
        headers: { 'content-length': String(body.length) },
        agent: false,
      },
      (response) => {
        response.resume()
        response.on('end', () => resolve(response.statusCode ?? 0))
      },
    )
    request.on('error', reject)
    request.end(body)
  })
}

/** `count` distinct artifacts of `size` bytes. */
function junk(count: number, size: number, tag: number): Uint8Array[] {
  return Array.from({ length: count }, (_, index) => {
    const bytes = new Uint8Array(size).fill(tag)
    new DataView(bytes.buffer).setUint32(0, index)
    return bytes
  })
}

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  for (const started = Date.now(); !condition(); ) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('the anchor artifact store under hostile load', () => {
  it("one client's junk uploads never get another client's upload refused, nor its cached uploads evicted", async () => {
    const KiB = 1024
    const { artifacts } = await anchorStore(join(dir, 'junk'), {
      maxArtifactBytes: 64 * KiB,
      maxTotalBytes: 1024 * KiB,
      maxCacheBytes: 512 * KiB,
      maxCacheBytesPerClient: 128 * KiB,
    })
    const { port, close } = await startTestHttp({
      artifacts,
      quotas: { requests: { perSecond: 1e6, burst: 1e6 }, uploadBytes: { perSecond: 1e9, burst: 1e9 } },
    })
    toStop.push({ stop: close })
    const honest = junk(4, 16 * KiB, 1)
    for (const body of honest.slice(0, 2)) expect(await upload(port, '127.0.0.3', body)).toBe(201)
    // 1.6 MiB of junk from one address, then 128 KiB from each of six more: everything is taken
    // (a cache entry), the flooders' oldest entries go, the honest client's stay.
    for (const body of junk(100, 16 * KiB, 2)) expect(await upload(port, '127.0.0.2', body)).toBe(201)
    expect(artifacts.cachedBytesOf('127.0.0.2')).toBeLessThanOrEqual(128 * KiB)
    for (let client = 4; client < 10; client += 1) {
      for (const body of junk(8, 16 * KiB, client))
        expect(await upload(port, `127.0.0.${client}`, body)).toBe(201)
    }
    expect(artifacts.stats().cachedBytes).toBeLessThanOrEqual(512 * KiB)
    expect(artifacts.totalBytes).toBeLessThanOrEqual(1024 * KiB)
    for (const body of honest.slice(2)) expect(await upload(port, '127.0.0.3', body)).toBe(201)
    for (const body of honest) expect(artifacts.isCached(artifactCid(body))).toBe(true)
    expect(artifacts.cachedBytesOf('127.0.0.3')).toBe(64 * KiB)
  })

  it('evicts unreferenced uploads after their time while referenced ones stay pinned across a restart', async () => {
    const data = join(dir, 'expiry')
    let clock = 0
    const options = { cacheTtlMs: 1000, now: () => clock }
    let { node, artifacts } = await anchorStore(data, options)
    const [referenced, forgotten, late] = junk(3, 100, 9)
    expect(await artifacts.put(artifactCid(referenced!), referenced!, 'alice')).toBeUndefined()
    expect(await artifacts.put(artifactCid(forgotten!), forgotten!, 'bob')).toBeUndefined()
    artifacts.pinReferenced(await needOf([artifactCid(referenced!)], 'need-expiry'))
    await artifacts.settled()
    clock = 900
    expect(await artifacts.put(artifactCid(late!), late!, 'carol')).toBeUndefined()
    clock = 1500
    await artifacts.sweep()
    expect(await artifacts.store.has(artifactCid(forgotten!))).toBe(false) // expired, deleted
    expect(artifacts.isCached(artifactCid(late!))).toBe(true) // younger than the TTL
    expect(artifacts.store.isPinned(artifactCid(referenced!))).toBe(true)
    await artifacts.stop()
    await node.stop()

    ;({ node, artifacts } = await anchorStore(data, options))
    expect(artifacts.store.isPinned(artifactCid(referenced!))).toBe(true)
    expect(await artifacts.get(artifactCid(referenced!))).toEqual(referenced)
    // The unpinned upload of the earlier run is a cache entry again: referenced now, it is pinned from disk.
    expect(artifacts.isCached(artifactCid(late!))).toBe(true)
    artifacts.pinReferenced(await needOf([artifactCid(late!)], 'need-late'))
    await artifacts.settled()
    expect(artifacts.store.isPinned(artifactCid(late!))).toBe(true)
    expect(await artifacts.store.gc()).toBe(0)
  })

  it('walks a referenced DAG-CBOR input no deeper and no larger than the pin limits', async () => {
    const errors: unknown[] = []
    const { node, artifacts } = await anchorStore(join(dir, 'dag'), {
      pinLimits: { maxDepth: 4, maxBlocks: 1024, maxBytes: 4096 },
      onPinError: (_cid, error) => errors.push(error),
    })
    const author = await peer()
    await connect(author.node, node)
    // A chain 40 links deep: the anchor pins its root and the 4 levels below, and fetches nothing deeper.
    const chain: string[] = [await putDagCbor(author.store, { level: 40 })]
    for (let level = 39; level >= 0; level -= 1)
      chain.unshift(await putDagCbor(author.store, { level, next: CID.parse(chain[0]!) }))
    artifacts.pinReferenced(await needOf([chain[0]!], 'need-deep'))
    await artifacts.settled()
    expect(artifacts.store.isPinned(chain[0]!)).toBe(true)
    const held = []
    for (const cid of chain) held.push(await artifacts.store.has(cid))
    expect(held.indexOf(false)).toBe(5)
    expect(held.slice(5).every((has) => !has)).toBe(true)
    expect(await artifacts.store.gc()).toBe(0) // the 5 blocks are pinned, nothing else is held
    // A root over 20 blocks of 1 KiB: refused once the walk passes 4 096 bytes, nothing pinned.
    const leaves = []
    for (let index = 0; index < 20; index += 1)
      leaves.push(CID.parse(await putDagCbor(author.store, { index, pad: new Uint8Array(1024) })))
    const wide = await putDagCbor(author.store, { leaves })
    artifacts.pinReferenced(await needOf([wide], 'need-wide'))
    await artifacts.settled()
    expect(artifacts.store.isPinned(wide)).toBe(false)
    expect(errors.at(-1)).toBeInstanceOf(QuotaExceededError)
    let fetched = 0
    for (const leaf of leaves) if (await artifacts.store.has(leaf.toString())) fetched += 1
    expect(fetched).toBeLessThanOrEqual(4)
    expect(artifacts.stats().wanted).toBe(0) // a DAG too large is not waited for either
  })

  it('spends bounded attempts on CIDs nobody has, without starving the queue', async () => {
    const errors: string[] = []
    const { node, artifacts } = await anchorStore(join(dir, 'starve'), {
      pinFetchTimeoutMs: 300,
      pinAttempts: 2,
      pinRetryMs: 100,
      pinConcurrency: 1,
      maxPendingPinsPerSender: 4,
      onPinError: (cid) => errors.push(cid),
    })
    const author = await peer()
    await connect(author.node, node)
    const [mallory, alice] = await makeIdentities(2, 91)
    const missing = junk(10, 64, 7) // bytes nobody offers
    artifacts.pinReferenced(
      await needOf(
        missing.map((bytes) => artifactCid(bytes)),
        'need-missing',
        mallory,
      ),
    )
    expect(artifacts.stats().pendingPins).toBe(3) // the sender's 4 outstanding: one in flight, 3 queued
    const input = await author.store.put(text('an input its author holds'))
    // How many attempts had been made when the honest input was pinned.
    let attemptsWhenPinned = Number.NaN
    const pin = artifacts.store.pin.bind(artifacts.store)
    artifacts.store.pin = async (cid, options) => {
      await pin(cid, options)
      if (cid === input) attemptsWhenPinned = artifacts.stats().pinAttemptsMade
    }
    artifacts.pinReferenced(await needOf([input], 'need-honest', alice))
    await until(() => !Number.isNaN(attemptsWhenPinned))
    // Served in turn: mallory's first attempt, her second, then alice's, not 10 × 300 ms of misses.
    expect(attemptsWhenPinned).toBeLessThanOrEqual(3)
    await until(() => artifacts.stats().pendingPins === 0 && artifacts.stats().retryingPins === 0)
    await artifacts.settled()
    // Each of the 4 outstanding misses had exactly 2 attempts; the 6 over the sender's share none.
    expect(artifacts.stats().pinAttemptsMade).toBe(1 + 4 * 2)
    expect(errors).toHaveLength(4)
    // What could not be pinned is remembered: uploaded later, it is pinned at once.
    expect(artifacts.stats().wanted).toBe(10)
    expect(await artifacts.put(artifactCid(missing[9]!), missing[9]!, 'mallory')).toBeUndefined()
    await artifacts.settled()
    expect(artifacts.store.isPinned(artifactCid(missing[9]!))).toBe(true)
  })
})
