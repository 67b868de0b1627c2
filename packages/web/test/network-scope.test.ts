/**
 * What the tab keeps per network (src/app/storage.ts) and says about the faucet (src/app/session.ts):
 * envelopes stored for another network (an anchor whose data directory was reset) are never read
 * back into the network the tab follows, records of an earlier envelope format are reported as
 * unreadable, and the faucet's answers are put in words.
 */
import {
  Agent,
  type AnyEnvelope,
  createIdentity,
  encodeEnvelope,
  MemoryArtifactStore,
  SeededRandom,
} from '@can-swarm/peer'
import { systemClock } from '@can-swarm/peer/net'
import { describe, expect, it } from 'vitest'
import { faucetWords } from '../src/app/session.ts'
import { readStoredEnvelopes, type StoredEnvelope } from '../src/app/storage.ts'
import { testNetwork } from './network.ts'

async function needOf(seed: number): Promise<{ network: string; env: AnyEnvelope }> {
  const anchor = await createIdentity({ seed: new Uint8Array(32).fill(seed) })
  const { genesis, params } = await testNetwork({ anchors: [anchor] })
  const published: AnyEnvelope[] = []
  const agent = new Agent({
    identity: await createIdentity({ seed: new Uint8Array(32).fill(seed + 1) }),
    params,
    bus: { publish: (env: AnyEnvelope) => void published.push(env) },
    clock: systemClock(),
    random: new SeededRandom(seed),
    artifacts: new MemoryArtifactStore(),
  })
  await agent.post({ requires: ['sha256'], inputs: [new TextEncoder().encode(`input ${seed}`)], budget: 5 })
  agent.stop()
  return { network: genesis.id, env: published[0]! }
}

function stored(env: AnyEnvelope, withNet: boolean): StoredEnvelope {
  return {
    id: env.id,
    ...(withNet ? { net: env.net } : {}),
    thread: env.thread,
    bytes: encodeEnvelope(env),
    atMs: 1_000,
  }
}

describe('the envelopes a tab keeps, by network', () => {
  it('reads back only the network it follows, whether or not the record names its network', async () => {
    const mine = await needOf(1)
    const old = await needOf(11)
    expect(mine.network).not.toBe(old.network)
    expect(mine.env.net).toBe(mine.network)
    const items = [
      stored(mine.env, true),
      stored(old.env, true),
      stored(old.env, false), // a record written before records named their network
      { id: 'bafy-broken', thread: 'need-1', bytes: new Uint8Array([1, 2, 3]), atMs: 5 },
    ]
    const history = readStoredEnvelopes(items, mine.network)
    expect(history.envelopes.map((item) => item.env.id)).toEqual([mine.env.id])
    expect(history.envelopes[0]!.atMs).toBe(1_000)
    expect(history.otherNetworks).toBe(2)
    expect(history.unreadable.map((item) => item.id)).toEqual(['bafy-broken'])
    // The same storage read for the old network gives the old network's envelopes only.
    const back = readStoredEnvelopes(items, old.network)
    expect(back.envelopes.map((item) => item.env.id)).toEqual([old.env.id, old.env.id])
  })
})

describe("the faucet's answers in words", () => {
  it('names the grant, a second request and a refusal', () => {
    expect(faucetWords({ state: 'granted', amount: 1000, atMs: 0 })).toBe(
      "Granted 1000 credits by the network's faucet.",
    )
    expect(faucetWords({ state: 'had', error: 'did:key:z6Mk… has had the 1000 credits' })).toContain(
      'this one has had them',
    )
    expect(
      faucetWords({
        state: 'refused',
        status: 429,
        error:
          "the faucet refuses: the network's faucet has granted 20000 of its 20000 credits per 3600000 ms; try again later",
      }),
    ).toBe(
      "The network's faucet refused: the network's faucet has granted 20000 of its 20000 credits per 3600000 ms; try again later.",
    )
  })
})
