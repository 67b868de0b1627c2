import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fetchNetwork, requestCredits, signManifest } from '@can-swarm/peer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAnchors, startAnchorProcess } from '../../../test-support/anchor-process.ts'
import { makeIdentities } from '../../../test-support/envelopes.ts'

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

interface Status {
  epoch: number
  pool: { epoch: number; verifiers: string[]; bootstrap: boolean }
}

async function status(url: string): Promise<Status> {
  return (await (await fetch(`${url}/api/status`)).json()) as Status
}

describe('the anchor’s verifier pool', () => {
  it('takes signed manifests of its network, bonds stake only from credits held, adopts the pool at an epoch boundary, refuses bad ones in words, and keeps them across a restart', {
    timeout: 60_000,
  }, async () => {
    const data = join(dir, 'anchor')
    const [alice, bob, carol] = await makeIdentities(3, 91)
    let anchor = await startAnchorProcess(['--data', data])
    const net = (await fetchNetwork(anchor.url)).genesis.id
    const before = await status(anchor.url)
    expect(before.pool).toMatchObject({ epoch: 0, verifiers: [], bootstrap: true })

    // A manifest mints nothing (A7): carol holds no credits, so her declared stake bonds nothing.
    const unfunded = await signManifest(carol!, {
      net,
      org: 'carolco',
      asn: 'AS64502',
      region: 'eu',
      stake: 100,
      seq: 1,
    })
    expect(await put(`${anchor.url}/api/pool/${carol!.did}`, unfunded)).toMatchObject({ status: 200 })
    expect((await fetch(`${anchor.url}/api/pool/${carol!.did}`)).status).toBe(404)
    expect(
      ((await (await fetch(`${anchor.url}/api/ledger/${carol!.did}`)).json()) as { balance: number }).balance,
    ).toBe(0)

    // Alice gets the faucet's credits, then stakes 200 of them.
    expect((await requestCredits(anchor.url, alice!.did)).granted).toBe(true)
    const manifest = await signManifest(alice!, {
      net,
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
    // The anchor adopts the new pool at an epoch boundary: it decides under it from now on.
    const adopted = await waitFor(async () => {
      const now = await status(anchor.url)
      return now.pool.verifiers.includes(alice!.did) ? now : undefined
    })
    expect(adopted.pool.epoch).toBeGreaterThan(before.pool.epoch)
    expect(adopted.epoch).toBeGreaterThan(before.epoch)
    expect(adopted.pool.verifiers).toEqual([alice!.did])
    // A manifest of another network is refused, naming the field.
    const elsewhere = await signManifest(bob!, {
      net: 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
      org: 'bobco',
      asn: 'AS64501',
      region: 'eu-west',
      stake: 10,
      seq: 1,
    })
    expect(await put(`${anchor.url}/api/pool/${bob!.did}`, elsewhere)).toMatchObject({
      status: 400,
      body: { field: 'net' },
    })

    // Refusals, each naming what is wrong.
    expect(await put(`${anchor.url}/api/pool/${alice!.did}`, manifest)).toMatchObject({
      status: 409,
      body: { field: 'seq' },
    })
    const bobs = await signManifest(bob!, {
      net,
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
      net,
      org: 'acme',
      asn: 'AS64500',
      region: 'eu-west',
      stake: 0,
      seq: 2,
    })
    expect((await put(`${anchor.url}/api/pool/${alice!.did}`, leave)).status).toBe(200)
    const after = (await (await fetch(`${anchor.url}/api/pool`)).json()) as { entries: unknown[] }
    expect(after.entries).toEqual([])
    await waitFor(async () => ((await status(anchor.url)).pool.verifiers.length === 0 ? true : undefined))
    expect(await anchor.stop()).toBe(0)
  })
})

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
