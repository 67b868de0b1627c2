/**
 * The anchor's Helia artifact store (anchor/artifacts.ts) over real libp2p nodes on 127.0.0.1:
 * the gateway's checks and bounds, blocks and pins surviving a restart (the FsBlockstore reopened),
 * the stand-in store of earlier versions imported, artifacts referenced by envelopes pinned from
 * their authors and served after the authors have gone, and a gateway GET answered from the swarm.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHeliaArtifacts, type HeliaArtifacts } from '../../peer/src/artifacts/helia.ts'
import { artifactCid } from '../../peer/src/core/artifacts.ts'
import { createIdentity } from '../../peer/src/crypto/ed25519.ts'
import { createNetwork, type Network } from '../../peer/src/net/network.ts'
import { makeIdentities, sign } from '../../peer/test/helpers.ts'
import { AnchorArtifacts, type AnchorArtifactsOptions } from '../src/anchor/artifacts.ts'

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

describe('the anchor artifact store', () => {
  it('checks uploads, pins them, and keeps blocks and pins across a restart (stand-in store imported)', async () => {
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
    expect(artifacts.pinned).toBe(2)
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
    const upload = (size: number, fill: number) => {
      const body = new Uint8Array(size).fill(fill)
      return artifacts.put(artifactCid(body), body)
    }
    expect(await upload(50, 1)).toBeUndefined() // 40 cached + 50 pinned
    expect(await upload(30, 2)).toBeUndefined() // over 100: the cached block is collected first
    expect(await artifacts.store.has(cid)).toBe(false)
    expect(artifacts.totalBytes).toBe(80)
    expect((await upload(30, 3))?.status).toBe(507) // only pinned blocks left
  })
})
