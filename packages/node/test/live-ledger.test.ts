/**
 * The anchor's live ledger under load (docs/PROTOCOL.md §9, §13): derived again when something
 * changed, but not more often than its cost allows; funding checks take off the budgets of NEEDs
 * decided since the last derivation (no overspending from a stale ledger) without counting those in
 * flight twice; new grants are seen at once.
 */

import type { NetworkParams } from '@can-swarm/peer'
import { ThreadReplica } from '@can-swarm/peer'
import { describe, expect, it } from 'vitest'
import { decidedOpening } from '../../../test-support/decided-thread.ts'
import { makeIdentities, testParams } from '../../../test-support/envelopes.ts'
import { type DecidedNeed, LiveLedger } from '../src/anchor/economy.ts'

const INPUT = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

/** Four parties and a NEED of budget 60 decided at `decideTs` by the anchor (never worked). */
async function decided(tag: number, params: Partial<NetworkParams> = {}, decideTs = 0) {
  const [requester, planner, verifier, anchor] = await makeIdentities(4, tag)
  const network = testParams({
    anchors: [anchor!.did],
    verifiers: [verifier!.did],
    bootstrap: true,
    ...params,
  })
  const opening = await decidedOpening({
    requester: requester!,
    planner: planner!,
    verifier: verifier!,
    decider: anchor!,
    params: network,
    requires: ['sha256'],
    inputs: [INPUT],
    produces: 'text/plain',
    budget: 60,
    price: 5,
    patch: [{ name: 'h', capability: 'sha256', inputs: [INPUT], produces: 'text/plain' }],
    decideTs,
  })
  return { requester: requester!, planner: planner!, params: network, opening }
}

describe('LiveLedger', () => {
  it('serves a stale ledger within its cost bound, but never to fund a requester that decided since', async () => {
    const { requester, planner, params, opening } = await decided(0x5a)
    const replicas: ThreadReplica[] = []
    let version = 0
    let now = 1_000
    let grantsVersion = 0
    let onDecide: (decided: DecidedNeed) => void = () => undefined
    const ledger = new LiveLedger({
      decides: (listener) => {
        onDecide = listener
        return () => undefined
      },
      params,
      replicas: () => replicas,
      version: () => version,
      clock: () => now,
      costFactor: 1e12, // every derivation counts as costly: within the bound, none runs again
      genesis: { allocations: [{ did: requester.did, amount: 100 }] },
      grants: {
        all: () => [],
        get version() {
          return grantsVersion
        },
      },
    })
    const funding = ledger.funding()
    const need = { requester: requester.did, budget: 60 } as never
    const none = new Set<string>()
    expect(await funding(need, opening.thread, 0, none)).toBeUndefined()
    expect(ledger.derivations).toBe(1)
    // While its DECIDE is in flight the agent reserves the 60 itself: not taken twice.
    ledger.noteDecided({ thread: opening.thread, requester: requester.did, budget: 60 })
    expect(
      await funding(
        { requester: requester.did, budget: 40 } as never,
        'another',
        60,
        new Set([opening.thread]),
      ),
    ).toBeUndefined()
    // The NEED is decided (60 escrowed); the ledger, derived before, is served within its cost bound…
    const replica = new ThreadReplica(opening.thread, params)
    replica.receiveAll(opening.log, 0)
    replicas.push(replica)
    version += 1
    now += 5_000
    expect(ledger.account(requester.did).balance).toBe(100)
    expect(ledger.derivations).toBe(1)
    // … but funding checks take the decided budget off: 40 left, a second 60 is refused.
    onDecide({ thread: opening.thread, requester: requester.did, budget: 60 })
    expect(await funding(need, 'another', 0, none)).toMatch(/can spend 40 credits/)
    // The rank of undecided NEEDs under a flood says the same; a key holding nothing funds nothing.
    expect(ledger.canFund(requester.did, 60)).toBe(false)
    expect(ledger.canFund(requester.did, 40)).toBe(true)
    expect(ledger.canFund(planner.did, 1)).toBe(false)
    expect(ledger.canFund(planner.did, 0)).toBe(true)
    expect(ledger.derivations).toBe(1)
    // A grant is seen at once, whatever the cost bound; the derived ledger holds the escrow itself.
    grantsVersion += 1
    expect(ledger.account(requester.did).balance).toBe(40)
    expect(ledger.derivations).toBe(2)
    expect(await funding(need, 'another', 0, none)).toMatch(/can spend 40 credits/)
    expect(
      await funding({ requester: requester.did, budget: 40 } as never, 'another', 0, none),
    ).toBeUndefined()
  })

  it('hands threads settled for good to the anchor once the horizon has passed, and keeps their effect', async () => {
    const lifetime = 10_000
    // Decided at 1 000 and never worked: it holds its budget until its lifetime is over.
    const { requester, params, opening } = await decided(0x5b, { threadLifetimeMs: lifetime }, 1_000)
    const replica = new ThreadReplica(opening.thread, params)
    replica.receiveAll(opening.log, 0)
    let replicas = [replica]
    let now = 2_000
    const handed: string[] = []
    const horizon = 5_000
    const ledger = new LiveLedger({
      params,
      replicas: () => replicas,
      version: () => 0,
      clock: () => now,
      maxAgeMs: 0,
      settleHorizonMs: horizon,
      genesis: { allocations: [{ did: requester.did, amount: 100 }] },
      onSettled: (settled) => {
        handed.push(...settled.map((one) => one.thread))
        replicas = replicas.filter((one) => !settled.includes(one))
      },
    })
    const tick = () => new Promise((resolve) => setImmediate(resolve))
    expect(ledger.account(requester.did)).toMatchObject({ balance: 40, escrowed: 60 })
    // Sealed at 11 000 (its close), but held for the horizon after that.
    now = 1_000 + lifetime + horizon - 1
    expect(ledger.account(requester.did)).toMatchObject({ balance: 100, escrowed: 0 })
    await tick()
    expect(handed).toEqual([])
    now += 1
    expect(ledger.settle()).toBe(1)
    await tick()
    expect(handed).toEqual([opening.thread])
    expect(replicas).toEqual([])
    // The base keeps what it did; the thread given again (replayed) changes nothing and is handed back.
    expect(ledger.account(requester.did)).toMatchObject({ balance: 100, escrowed: 0 })
    expect(ledger.summary()).toMatchObject({ settledThreads: 1, conservationGap: 0, openEscrows: 0 })
    replicas = [replica]
    now += 1
    expect(ledger.account(requester.did)).toMatchObject({ balance: 100, escrowed: 0 })
    await tick()
    expect(handed).toEqual([opening.thread, opening.thread])
    expect(ledger.settled).toMatchObject({ threads: 1, remembered: 1 })
  })
})
