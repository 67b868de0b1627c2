/**
 * The ConsensusStore contract, shared by MemoryConsensusStore (the reference), the embedded store
 * and the etcd store: the same sequence of calls must give the same results in all three.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CanSwarmError, type DecideRequest, MemoryConsensusStore } from '@can-swarm/peer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdCluster, etcdAvailable } from '../../../../test-support/etcd-cluster.ts'
import { EmbeddedConsensusStore } from '../../src/consensus/embedded.ts'
import { EtcdConsensusStore } from '../../src/consensus/etcd.ts'

/** What the contract needs beyond ConsensusStore: records and an epoch advance. */
interface StoreUnderTest {
  tryDecide: MemoryConsensusStore['tryDecide']
  getDecide: MemoryConsensusStore['getDecide']
  currentEpoch: MemoryConsensusStore['currentEpoch']
  advanceEpoch(): number | Promise<number>
  records(): unknown
  close(): Promise<void>
}

const did = 'did:key:z6MkContract'
const ok = (overrides: Partial<DecideRequest> = {}): DecideRequest => ({
  need: 'need-1',
  proposal: 'p1',
  epoch: 1,
  lamport: 5,
  kPlan: 2,
  decider: did,
  ...overrides,
})

/** Runs the contract sequence and returns a transcript of every result or error. */
async function transcript(store: StoreUnderTest): Promise<unknown[]> {
  const out: unknown[] = []
  const step = async (label: string, call: () => unknown) => {
    try {
      out.push([label, await call()])
    } catch (error) {
      if (!(error instanceof CanSwarmError)) throw error
      out.push([label, { code: error.code, field: error.field, name: error.name }])
    }
  }
  await step('epoch', () => store.currentEpoch())
  await step('decide', () => store.tryDecide(ok()))
  await step('idempotent retry', () => store.tryDecide(ok()))
  await step('retry with other lamport', () => store.tryDecide(ok({ lamport: 9 })))
  await step('conflict', () => store.tryDecide(ok({ proposal: 'p2', decider: 'did:key:z6MkOther' })))
  await step('stale epoch', () => store.tryDecide(ok({ need: 'need-2', epoch: 0 })))
  await step('foreign epoch', () => store.tryDecide(ok({ need: 'need-2', epoch: 2 })))
  await step('get', () => store.getDecide('need-1'))
  await step('get missing', () => store.getDecide('need-2'))
  await step('get empty', () => store.getDecide(''))
  await step('empty need', () => store.tryDecide(ok({ need: '' })))
  await step('empty proposal', () => store.tryDecide(ok({ proposal: '' })))
  await step('negative epoch', () => store.tryDecide(ok({ epoch: -1 })))
  await step('fractional lamport', () => store.tryDecide(ok({ lamport: 1.5 })))
  await step('kPlan 0', () => store.tryDecide(ok({ kPlan: 0 })))
  await step('bad decider', () => store.tryDecide(ok({ decider: 'alice' as never })))
  await step('not a string need', () => store.tryDecide(ok({ need: 7 as never })))
  await step('advance', () => store.advanceEpoch())
  await step('epoch after advance', () => store.currentEpoch())
  await step('old token after advance', () => store.tryDecide(ok({ need: 'need-3' })))
  await step('old token, idempotent retry', () => store.tryDecide(ok()))
  await step('new token, retry of an old decision', () => store.tryDecide(ok({ epoch: 2 })))
  await step('new token, conflict', () => store.tryDecide(ok({ epoch: 2, proposal: 'p3' })))
  await step('new token, new NEED', () => store.tryDecide(ok({ need: 'need-3', epoch: 2, lamport: 6 })))
  for (let i = 0; i < 20; i += 1) {
    await step(`bulk ${i}`, () => store.tryDecide(ok({ need: `bulk/${i}`, epoch: 2, proposal: `q${i % 3}` })))
  }
  await step('records', () => store.records())
  return out
}

const memory = (): StoreUnderTest => {
  const store = new MemoryConsensusStore({ epoch: 1 })
  return {
    tryDecide: (r) => store.tryDecide(r),
    getDecide: (n) => store.getDecide(n),
    currentEpoch: () => store.currentEpoch(),
    advanceEpoch: () => store.advanceEpoch(),
    records: () => store.records(),
    close: async () => undefined,
  }
}

let reference: unknown[]
beforeAll(async () => {
  reference = await transcript(memory())
})

describe('consensus store contract', () => {
  it('the reference transcript says what the contract is', () => {
    const byLabel = new Map(reference as Array<[string, unknown]>)
    expect(byLabel.get('decide')).toMatchObject({ outcome: 'decided' })
    expect(byLabel.get('idempotent retry')).toMatchObject({ outcome: 'existing', record: { proposal: 'p1' } })
    expect(byLabel.get('retry with other lamport')).toMatchObject({
      outcome: 'existing',
      record: { lamport: 5 },
    })
    expect(byLabel.get('conflict')).toMatchObject({ outcome: 'conflict', record: { proposal: 'p1' } })
    expect(byLabel.get('stale epoch')).toEqual({
      code: 'STALE_EPOCH',
      field: 'epoch',
      name: 'StaleEpochError',
    })
    expect(byLabel.get('foreign epoch')).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'epoch' })
    for (const [label, field] of [
      ['empty need', 'need'],
      ['empty proposal', 'proposal'],
      ['negative epoch', 'epoch'],
      ['fractional lamport', 'lamport'],
      ['kPlan 0', 'kPlan'],
      ['bad decider', 'decider'],
    ]) {
      expect(byLabel.get(label!), label).toMatchObject({ code: 'INVALID_ARGUMENT', field })
    }
    expect(byLabel.get('old token, idempotent retry')).toMatchObject({ code: 'STALE_EPOCH' })
    expect(byLabel.get('new token, retry of an old decision')).toMatchObject({ outcome: 'existing' })
  })

  it('the embedded store gives the same transcript', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'can-swarm-contract-'))
    try {
      const store = await EmbeddedConsensusStore.open({ path: join(dir, 'consensus.sqlite') })
      try {
        expect(await transcript(store)).toEqual(reference)
      } finally {
        await store.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  describe.skipIf(!etcdAvailable(import.meta.filename))('on a real 3-member etcd cluster', () => {
    let cluster: EtcdCluster
    beforeAll(async () => {
      cluster = await EtcdCluster.start({ size: 3 })
    }, 90_000)
    afterAll(async () => {
      await cluster?.stop()
    })

    it('the etcd store gives the same transcript', async () => {
      const store = await EtcdConsensusStore.open({ hosts: cluster.clientUrls, prefix: 'contract' })
      try {
        expect(await transcript(store)).toEqual(reference)
      } finally {
        await store.close()
      }
    }, 60_000)

    it('bad options name the field; an unreachable cluster is a typed error, not a hang', async () => {
      await expect(EtcdConsensusStore.open({ hosts: [] })).rejects.toMatchObject({ field: 'hosts' })
      await expect(
        EtcdConsensusStore.open({ hosts: cluster.clientUrls, prefix: 'x/' }),
      ).rejects.toMatchObject({
        field: 'prefix',
      })
      await expect(
        EtcdConsensusStore.open({ hosts: cluster.clientUrls, timeoutMs: -1 }),
      ).rejects.toMatchObject({ field: 'timeoutMs' })
      // nothing listens on port 1
      await expect(
        EtcdConsensusStore.open({ hosts: ['http://127.0.0.1:1'], timeoutMs: 1_500 }),
      ).rejects.toMatchObject({ code: 'CONSENSUS_UNAVAILABLE' })
      const signal = AbortSignal.timeout(300)
      await expect(
        EtcdConsensusStore.open({ hosts: ['http://127.0.0.1:1'], timeoutMs: 60_000 }, { signal }),
      ).rejects.toMatchObject({ name: 'TimeoutError' })
    }, 60_000)
  })
})
