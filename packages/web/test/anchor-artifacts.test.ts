import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { artifactCid } from '@can-swarm/peer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, type RunningAnchor, startAnchorProcess } from '../../../e2e/support/anchor.ts'
import { AnchorArtifactStore, ArtifactUploadError } from '../src/app/artifacts.ts'

let dir: string
let anchor: RunningAnchor | undefined

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-web-artifacts-'))
  anchor = await startAnchorProcess({
    data: join(dir, 'anchor'),
    port: await freePort(),
    p2pPort: await freePort(),
    wsPort: await freePort(),
  })
}, 90_000)

afterAll(async () => {
  await anchor?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe("the artifact exchange through the anchor's Helia gateway", () => {
  it('hands an artifact from one peer to another by CID', async () => {
    const bytes = new TextEncoder().encode('an input for a worker in another process')
    const cid = await new AnchorArtifactStore({ anchorUrl: anchor!.url }).put(bytes)
    expect(cid).toBe(artifactCid(bytes))
    const other = new AnchorArtifactStore({ anchorUrl: anchor!.url })
    expect(await other.get(cid)).toEqual(bytes)
    expect(await other.get(artifactCid(new TextEncoder().encode('never uploaded')))).toBeUndefined()
  })

  it('refuses bytes that do not hash to the CID, and oversized uploads, saying why', async () => {
    const bytes = new TextEncoder().encode('honest bytes')
    const wrong = artifactCid(new TextEncoder().encode('other bytes'))
    const forged = await fetch(`${anchor!.url}/api/artifacts/${wrong}`, { method: 'PUT', body: bytes })
    expect(forged.status).toBe(422)
    expect(((await forged.json()) as { error: string }).error).toContain(artifactCid(bytes))
    expect((await fetch(`${anchor!.url}/api/artifacts/${wrong}`)).status).toBe(404)
    const big = new Uint8Array(4 * 1024 * 1024 + 1)
    const oversized = await fetch(`${anchor!.url}/api/artifacts/${artifactCid(big)}`, {
      method: 'PUT',
      body: big,
    })
    expect(oversized.status).toBe(413)
    expect(
      (await fetch(`${anchor!.url}/api/artifacts/not-a-cid`, { method: 'PUT', body: bytes })).status,
    ).toBe(400)
    // Other writes stay refused.
    expect((await fetch(`${anchor!.url}/api/status`, { method: 'POST' })).status).toBe(405)
  })

  it('a reader never accepts bytes that do not match the CID it asked for', async () => {
    const liar = new AnchorArtifactStore({
      anchorUrl: 'http://anchor.invalid',
      fetch: async () => new Response(new TextEncoder().encode('forged')),
    })
    expect(await liar.get(artifactCid(new TextEncoder().encode('genuine')))).toBeUndefined()
  })

  it('says in words when the anchor is unreachable', async () => {
    const store = new AnchorArtifactStore({ anchorUrl: `http://127.0.0.1:${await freePort()}` })
    await expect(store.put(new TextEncoder().encode('x'))).rejects.toThrow(ArtifactUploadError)
    await expect(store.put(new TextEncoder().encode('x'))).rejects.toThrow(/is the anchor running/)
  })

  it('serves a thread the anchor does not know as 404', async () => {
    expect((await fetch(`${anchor!.url}/api/threads/need-unknown`)).status).toBe(404)
  })
})
