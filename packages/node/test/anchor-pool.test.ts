import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { signManifest } from '../../peer/src/crypto/manifest.ts'
import { makeIdentities } from '../../peer/test/helpers.ts'
import { killAnchors, startAnchorProcess } from './helpers/anchor-process.ts'

let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-pool-'))
})
afterAll(async () => {
  killAnchors()
  await rm(dir, { recursive: true, force: true })
})

async function put(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

describe('the anchor’s verifier pool', () => {
  it('takes signed manifests, bonds their stake in the live ledger, refuses bad ones in words, and keeps them across a restart', {
    timeout: 60_000,
  }, async () => {
    const data = join(dir, 'anchor')
    const [alice, bob] = await makeIdentities(2, 91)
    let anchor = await startAnchorProcess(['--data', data])
    const manifest = await signManifest(alice!, {
      org: 'acme',
      asn: 'AS64500',
      region: 'eu-west',
      stake: 200,
      seq: 1,
    })

    expect(await put(`${anchor.url}/api/pool/${alice!.did}`, manifest)).toMatchObject({ status: 200 })
    const pool = (await (await fetch(`${anchor.url}/api/pool`)).json()) as {
      entries: Array<Record<string, unknown>>
    }
    expect(pool.entries).toEqual([
      expect.objectContaining({
        did: alice!.did,
        stake: 200,
        org: 'acme',
        asn: 'AS64500',
        region: 'eu-west',
      }),
    ])
    const one = await fetch(`${anchor.url}/api/pool/${alice!.did}`)
    expect(one.status).toBe(200)
    expect(((await one.json()) as { entry: { stake: number } }).entry.stake).toBe(200)
    expect((await fetch(`${anchor.url}/api/pool/${bob!.did}`)).status).toBe(404)
    const account = (await (await fetch(`${anchor.url}/api/ledger/${alice!.did}`)).json()) as Record<
      string,
      number
    >
    expect(account).toMatchObject({ staked: 200, balance: 800 })

    // Refusals, each naming what is wrong.
    expect(await put(`${anchor.url}/api/pool/${alice!.did}`, manifest)).toMatchObject({
      status: 409,
      body: { field: 'seq' },
    })
    const bobs = await signManifest(bob!, {
      org: 'bobco',
      asn: 'AS64501',
      region: 'eu-west',
      stake: 10,
      seq: 1,
    })
    expect(await put(`${anchor.url}/api/pool/${alice!.did}`, bobs)).toMatchObject({
      status: 400,
      body: { field: 'did' },
    })
    expect(await put(`${anchor.url}/api/pool/${bob!.did}`, { ...bobs, stake: 11 })).toMatchObject({
      status: 400,
      body: { field: 'sig' },
    })
    expect(await put(`${anchor.url}/api/pool/${bob!.did}`, { ...bobs, region: '' })).toMatchObject({
      status: 400,
      body: { field: 'region' },
    })
    expect((await put(`${anchor.url}/api/pool/${bob!.did}`, '{not json')).status).toBe(400)

    // The manifests are durable: after a restart the pool is the same.
    expect(await anchor.stop()).toBe(0)
    anchor = await startAnchorProcess(['--data', data])
    const again = (await (await fetch(`${anchor.url}/api/pool`)).json()) as {
      entries: Array<Record<string, unknown>>
    }
    expect(again.entries.map((entry) => entry.did)).toEqual([alice!.did])
    // Leaving: stake 0 takes the verifier out of the pool.
    const leave = await signManifest(alice!, {
      org: 'acme',
      asn: 'AS64500',
      region: 'eu-west',
      stake: 0,
      seq: 2,
    })
    expect((await put(`${anchor.url}/api/pool/${alice!.did}`, leave)).status).toBe(200)
    const after = (await (await fetch(`${anchor.url}/api/pool`)).json()) as { entries: unknown[] }
    expect(after.entries).toEqual([])
    expect(await anchor.stop()).toBe(0)
  })
})
