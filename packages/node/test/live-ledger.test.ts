/**
 * The anchor's live ledger under load (docs/PROTOCOL.md §9, §13): derived again when something
 * changed, but not more often than its cost allows; a funding check of a requester whose NEED was
 * decided since the last derivation always derives first (no overspending from a stale ledger);
 * new grants are seen at once.
 */
import { describe, expect, it } from 'vitest'
import { ThreadReplica } from '../../peer/src/core/thread/replica.ts'
import { decidedOpening } from '../../peer/test/decided-thread.ts'
import { makeIdentities, testParams } from '../../peer/test/helpers.ts'
import { LiveLedger } from '../src/anchor/economy.ts'

describe('LiveLedger', () => {
  it('serves a stale ledger within its cost bound, but never to fund a requester that decided since', async () => {
    const [requester, planner, verifier, anchor] = await makeIdentities(4, 0x5a)
    const params = testParams({ anchors: [anchor!.did], verifiers: [verifier!.did], bootstrap: true })
    const input = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    const opening = await decidedOpening({
      requester: requester!,
      planner: planner!,
      verifier: verifier!,
      decider: anchor!,
      params,
      requires: ['sha256'],
      inputs: [input],
      produces: 'text/plain',
      budget: 60,
      price: 5,
      patch: [{ name: 'h', capability: 'sha256', inputs: [input], produces: 'text/plain' }],
    })
    const replicas: ThreadReplica[] = []
    let version = 0
    let now = 1_000
    let grantsVersion = 0
    let onDecide: (requester: string) => void = () => undefined
    const ledger = new LiveLedger({
      decides: (listener) => {
        onDecide = listener
        return () => undefined
      },
      params,
      replicas: () => replicas,
      version: () => version,
      clock: () => now,
      costFactor: 1e12, // every derivation counts as costly: only forced ones run
      genesis: { allocations: [{ did: requester!.did, amount: 100 }] },
      grants: {
        all: () => [],
        get version() {
          return grantsVersion
        },
      },
    })
    const funding = ledger.funding()
    const need = { requester: requester!.did, budget: 60 } as never
    expect(await funding(need, opening.thread, 0)).toBeUndefined()
    expect(ledger.derivations).toBe(1)
    // The NEED is decided (its 60 escrowed); the ledger is stale but within its cost bound.
    const replica = new ThreadReplica(opening.thread, params)
    replica.receiveAll(opening.log, 0)
    replicas.push(replica)
    version += 1
    now += 5_000
    expect(ledger.account(requester!.did).balance).toBe(100)
    expect(ledger.derivations).toBe(1)
    // Told of the DECIDE, the next funding check derives first: 40 left, a second 60 is refused.
    onDecide(requester!.did)
    expect(await funding(need, 'another', 0)).toMatch(/can spend 40 credits/)
    expect(ledger.derivations).toBe(2)
    // A grant is seen at once, whatever the cost bound.
    grantsVersion += 1
    ledger.current()
    expect(ledger.derivations).toBe(3)
  })
})
