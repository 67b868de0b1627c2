/**
 * Joining a network through an anchor's HTTP endpoint, without a network: `fetchNetwork` takes the
 * network only from a genesis every anchor signed (and refuses another network than expected), and
 * adopts the anchor's current pool only when it is of that network; `requestCredits` hands back the
 * faucet's grant or its refusal in words.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { makeIdentities, testParams } from '../../../test-support/envelopes.ts'
import { type Genesis, genesisBody, genesisToJson } from '../src/core/genesis.ts'
import { poolSnapshotOf } from '../src/core/thread/params.ts'
import type { Identity } from '../src/crypto/ed25519.ts'
import { signGenesis } from '../src/crypto/genesis.ts'
import { signGrant } from '../src/crypto/grants.ts'
import { fetchNetwork, requestCredits } from '../src/join.ts'

const ANCHOR_URL = 'http://anchor.test:7700/'

let anchor: Identity
let other: Identity
let verifier: Identity
let genesis: Genesis

beforeAll(async () => {
  ;[anchor, other, verifier] = (await makeIdentities(3, 0x44)) as [Identity, Identity, Identity]
  genesis = await signGenesis(genesisBody({ createdMs: 1_000, anchors: [anchor.did] }), [anchor])
})

/** A fetch that answers from a table of path → response, recording the requests. */
function fakeFetch(routes: Record<string, () => Response>, seen: string[] = []): typeof fetch {
  return (async (url: string | URL | Request, init?: RequestInit) => {
    const path = decodeURIComponent(new URL(String(url)).pathname)
    seen.push(`${init?.method ?? 'GET'} ${path}`)
    const route = routes[path]
    return route ? route() : new Response('not found', { status: 404 })
  }) as typeof fetch
}

const json = (value: unknown, status = 200) => new Response(JSON.stringify(value), { status })

describe('fetchNetwork', () => {
  it('takes the network from the signed genesis and the pool the anchor decides under now', async () => {
    const pool = {
      ...poolSnapshotOf(testParams({ verifiers: [verifier.did], bootstrap: false })),
      epoch: 3,
      snapshotMs: 5_000,
    }
    const seen: string[] = []
    const { params, genesis: fetched } = await fetchNetwork(ANCHOR_URL, {
      fetch: fakeFetch(
        {
          '/api/genesis': () => new Response(genesisToJson(genesis)),
          '/api/status': () => json({ network: genesis.id, pool }),
        },
        seen,
      ),
    })
    expect(seen).toEqual(['GET /api/genesis', 'GET /api/status'])
    expect(fetched.id).toBe(genesis.id)
    expect(params).toMatchObject({
      network: genesis.id,
      anchors: [anchor.did],
      bootstrap: false,
      poolEpoch: 3,
    })
    expect(params.verifiers).toEqual([verifier.did])
  })

  it('keeps the genesis pool when the status is of another network or missing', async () => {
    for (const status of [
      () => json({ network: 'bafy-other', pool: { verifiers: [verifier.did] } }),
      () => json({}, 500),
    ]) {
      const { params } = await fetchNetwork(ANCHOR_URL, {
        fetch: fakeFetch({
          '/api/genesis': () => new Response(genesisToJson(genesis)),
          '/api/status': status,
        }),
      })
      expect(params).toMatchObject({ network: genesis.id, bootstrap: true, poolEpoch: 0, verifiers: [] })
    }
  })

  it('refuses a genesis not signed by every anchor, of another network than expected, or none', async () => {
    const unsigned = { ...genesis, signatures: [] }
    await expect(
      fetchNetwork(ANCHOR_URL, {
        fetch: fakeFetch({ '/api/genesis': () => new Response(genesisToJson(unsigned)) }),
      }),
    ).rejects.toMatchObject({ field: 'anchorUrl', message: expect.stringMatching(/invalid genesis/) })
    const foreign = await signGenesis(genesisBody({ createdMs: 2_000, anchors: [other.did] }), [other])
    await expect(
      fetchNetwork(ANCHOR_URL, {
        fetch: fakeFetch({ '/api/genesis': () => new Response(genesisToJson(foreign)) }),
        network: genesis.id,
      }),
    ).rejects.toMatchObject({ field: 'network' })
    await expect(fetchNetwork(ANCHOR_URL, { fetch: fakeFetch({}) })).rejects.toMatchObject({
      field: 'anchorUrl',
    })
    const unreachable = (() => Promise.reject(new Error('ECONNREFUSED'))) as typeof fetch
    await expect(fetchNetwork(ANCHOR_URL, { fetch: unreachable })).rejects.toThrow(/unreachable/)
  })
})

describe('requestCredits', () => {
  it('hands back the faucet’s signed grant, or why there is none', async () => {
    const grant = await signGrant(anchor, { net: genesis.id, to: verifier.did, amount: 1_000, atMs: 7 })
    const seen: string[] = []
    const granted = await requestCredits(ANCHOR_URL, verifier.did, {
      fetch: fakeFetch({ [`/api/faucet/${verifier.did}`]: () => json(grant, 201) }, seen),
    })
    expect(seen).toEqual([`POST /api/faucet/${verifier.did}`])
    expect(granted).toEqual({ granted: true, grant })
    const refused = await requestCredits(ANCHOR_URL, verifier.did, {
      fetch: fakeFetch({ [`/api/faucet/${verifier.did}`]: () => json({ error: 'already granted' }, 409) }),
    })
    expect(refused).toEqual({ granted: false, status: 409, error: 'already granted' })
  })
})
