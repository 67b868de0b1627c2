/**
 * Three anchor processes share one real 3-member etcd cluster and race for the same NEEDs: each
 * is asked, through its DECIDE service, to decide a different proposal. Exactly one DECIDE wins
 * per NEED, every anchor answers with that one, and nothing contradictory reaches the gossip.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AnyEnvelope, Envelope } from '../../peer/src/core/types.ts'
import { createIdentity } from '../../peer/src/crypto/ed25519.ts'
import { requestDecide } from '../../peer/src/decide/client.ts'
import { createBus } from '../../peer/src/net/bus.ts'
import { createNetwork, type Network } from '../../peer/src/net/network.ts'
import { makeIdentities } from '../../peer/test/helpers.ts'
import { EtcdConsensusStore } from '../src/consensus/etcd.ts'
import { EtcdCluster, etcdAvailable } from './consensus/helpers/etcd-cluster.ts'
import { killAnchors, type StartedAnchor, startAnchorProcess } from './helpers/anchor-process.ts'
import { planQuorum } from './helpers/quorum.ts'

const available = etcdAvailable()
const NEEDS = 30

let dir: string
let cluster: EtcdCluster | undefined
let network: Network | undefined

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-anchors-race-'))
})
afterAll(async () => {
  await network?.stop().catch(() => undefined)
  killAnchors()
  await cluster?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe.skipIf(!available)('anchors racing through etcd', () => {
  it('one DECIDE per NEED across three anchors, in every answer and on the gossip', async () => {
    cluster = await EtcdCluster.start({ size: 3 })
    const etcd = cluster.clientUrls.join(',')
    const [requester, planner, verifier] = await makeIdentities(3, 91)
    const common = [
      '--consensus',
      'etcd',
      '--etcd',
      etcd,
      '--etcd-prefix',
      'race',
      '--verifiers',
      verifier!.did,
    ]
    const first = await startAnchorProcess(['--data', join(dir, 'a0'), ...common])
    const tcp0 = first.multiaddrs.find((address) => !address.includes('/ws/'))!
    const anchors: StartedAnchor[] = [first]
    for (const name of ['a1', 'a2'])
      anchors.push(await startAnchorProcess(['--data', join(dir, name), ...common, '--peers', tcp0]))

    network = await createNetwork({
      identity: await createIdentity({ seed: new Uint8Array(32).fill(3) }),
      bootstrap: [tcp0],
      webRTC: false,
    })
    const bus = createBus(network)
    const gossiped: Envelope<'DECIDE'>[] = []
    bus.onEnvelope((env) => {
      if (env.kind === 'DECIDE') gossiped.push(env as Envelope<'DECIDE'>)
    })
    await new Promise((resolve) => setTimeout(resolve, 1500))

    const quorum = (need: string, proposal: string): Promise<AnyEnvelope[]> =>
      planQuorum({ requester: requester!, planner: planner!, attester: verifier! }, need, proposal)
    const answers = new Map<string, string[]>()
    for (let index = 0; index < NEEDS; index += 1) {
      const need = `need-race-${index}`
      const requests = await Promise.all(
        anchors.map(async (_, a) => ({ a, envelopes: await quorum(need, `p${a}`) })),
      )
      const results = await Promise.all(
        requests.map(({ a, envelopes }) =>
          requestDecide(
            network!.libp2p,
            multiaddr(anchors[a]!.multiaddrs.find((m) => !m.includes('/ws/'))!),
            {
              need,
              proposal: `p${a}`,
              envelopes,
            },
          ),
        ),
      )
      answers.set(
        need,
        results.map((result) =>
          result.outcome === 'decided'
            ? result.decide.payload.proposal
            : `${result.outcome}: ${result.reason}`,
        ),
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 2000))

    const store = await EtcdConsensusStore.open({ hosts: cluster.clientUrls, prefix: 'race' })
    const records = new Map((await store.records()).map((record) => [record.need, record]))
    await store.close()
    expect(records.size).toBe(NEEDS)
    const deciders = new Set<string>()
    for (const [need, proposals] of answers) {
      const record = records.get(need)!
      expect(proposals, need).toEqual([record.proposal, record.proposal, record.proposal])
      deciders.add(record.decider)
      const seen = gossiped.filter((env) => env.payload.need === need)
      for (const env of seen) {
        expect(env.payload.proposal).toBe(record.proposal)
        expect(env.sender).toBe(record.decider)
      }
    }
    expect(gossiped.length).toBeGreaterThan(0)
    // More than one anchor won some race: the contention was real.
    expect(deciders.size).toBeGreaterThan(1)
    for (const anchor of anchors) expect(await anchor.stop()).toBe(0)
  })
})
