/**
 * What an anchor pins for a NEED (docs/PROTOCOL.md §14 "Pins through NEEDs"): the inputs of a NEED
 * are pinned once it is decided — its requester funded it — not when any key posts it; until then an
 * uploaded input is only unpinned cache.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Identity } from '@can-swarm/peer'
import { artifactCid, fetchNetwork, requestCredits } from '@can-swarm/peer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeIdentities, sign, signNeed } from '../../../test-support/envelopes.ts'
import { until } from '../../../test-support/peers.ts'
import type { Anchor } from '../src/anchor/anchor.ts'
import { startTestAnchor } from './helpers/in-process.ts'

let dir: string
let anchor: Anchor
let requester: Identity
let planner: Identity
let verifier: Identity

beforeAll(async () => {
  ;[requester, planner, verifier] = (await makeIdentities(3, 0x61)) as [Identity, Identity, Identity]
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-anchor-pins-'))
  anchor = await startTestAnchor(dir, { verifiers: [verifier.did] })
}, 60_000)

afterAll(async () => {
  await anchor?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('pins for a NEED', () => {
  it('pins an uploaded input when the NEED is decided, not when it is posted', async () => {
    const { params } = await fetchNetwork(anchor.url)
    const bytes = new TextEncoder().encode('the input of a NEED')
    const input = artifactCid(bytes)
    const put = await fetch(`${anchor.url}/api/artifacts/${input}`, { method: 'PUT', body: bytes })
    expect(put.status).toBeLessThan(300)
    const artifacts = anchor.swarm.artifacts
    const agent = anchor.swarm.agent
    const extra = { ts: Date.now(), net: params.network }
    expect((await requestCredits(anchor.url, requester.did)).granted).toBe(true)
    const need = await signNeed(
      requester,
      {
        epoch: 1,
        requires: ['sha256'],
        inputs: [input],
        produces: 'text/plain',
        budget: 10,
        deadlineMs: 0,
        bidWindowMs: 1,
      },
      extra,
    )
    const thread = need.thread
    expect(await agent.deliver(need)).toBeUndefined()
    await artifacts.settled()
    // Posted, not decided: the input stays unpinned cache (anyone may post a NEED for free).
    expect(artifacts.store.isPinned(input)).toBe(false)
    const propose = await sign(
      planner,
      'PROPOSE',
      thread,
      {
        need: thread,
        patch: [{ name: 'h', capability: 'sha256', inputs: [input], produces: 'text/plain' }],
        ballot: 1,
        price: 5,
        etaMs: 1,
        shardDependencies: [],
      },
      { ...extra, lamport: 2 },
    )
    const vote = await sign(
      verifier,
      'ATTEST_PLAN',
      thread,
      { need: thread, proposal: propose.id, verdict: 'accept' },
      { ...extra, lamport: 3 },
    )
    await agent.deliver(propose)
    await agent.deliver(vote)
    // The anchor decides (its funding check passes: the faucet funded the requester) and pins.
    await until('the NEED decided', () => agent.replica(thread)?.state.winner)
    const deadline = Date.now() + 30_000
    while (!artifacts.store.isPinned(input)) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the input to be pinned')
      await artifacts.settled()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(artifacts.store.isPinned(input)).toBe(true)
  })
})
