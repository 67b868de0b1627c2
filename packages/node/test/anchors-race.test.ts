/**
 * Three anchor processes of one network share one real 3-member etcd cluster and race for the same
 * NEEDs: each is asked, through its DECIDE service, to decide a different proposal. Exactly one
 * DECIDE wins per NEED, every anchor answers with that one, and nothing contradictory reaches the
 * gossip. Their faucets grant each account once between them (the grant claims `faucet/<did>` in
 * the shared store).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Envelope } from '@can-swarm/peer'
import { createIdentity, fetchNetwork, requestCredits, requestDecide } from '@can-swarm/peer'
import { createBus, createNetwork, type Network } from '@can-swarm/peer/net'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAnchors, type StartedAnchor, startAnchorProcess } from '../../../test-support/anchor-process.ts'
import { makeIdentities } from '../../../test-support/envelopes.ts'
import { EtcdCluster, etcdAvailable } from '../../../test-support/etcd-cluster.ts'
import { planQuorum } from '../../../test-support/quorum.ts'
import { EtcdConsensusStore } from '../src/consensus/etcd.ts'
import { groupGenesis } from './helpers/group.ts'

const available = etcdAvailable(import.meta.filename)
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
    // Five requesters (their home anchors differ), each funded once by the faucet for its NEEDs.
    const [planner, verifier, ...requesters] = await makeIdentities(2 + 5, 91)
    const file = await groupGenesis(
      ['a0', 'a1', 'a2'].map((name) => join(dir, name)),
      join(dir, 'genesis.json'),
      { verifiers: [verifier!.did] },
    )
    const common = ['--consensus', 'etcd', '--etcd', etcd, '--etcd-prefix', 'race', '--genesis', file]
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

    const { genesis } = await fetchNetwork(first.url)
    // Each requester's NEED is funded by the faucet; a second anchor of the group refuses a second grant.
    for (const requester of requesters)
      expect((await requestCredits(first.url, requester.did)).granted).toBe(true)
    const twice = await requestCredits(anchors[1]!.url, requesters[0]!.did)
    expect(twice).toMatchObject({ granted: false, status: 409 })
    const answers = new Map<string, string[]>()
    for (let index = 0; index < NEEDS; index += 1) {
      const requester = requesters[index % requesters.length]!
      const base = await planQuorum({ requester, planner: planner!, attester: verifier! }, genesis.id, {
        nonce: index,
      })
      const need = base.need
      // Each anchor is asked to decide another proposal of the same NEED (another planner each).
      const requests = [base]
      for (const rival of [verifier!, requester]) {
        requests.push(
          await planQuorum({ requester, planner: rival, attester: verifier! }, genesis.id, {
            need: base.envelopes[0]!,
          }),
        )
      }
      const results = await Promise.all(
        requests.map((request, a) =>
          requestDecide(
            network!.libp2p,
            multiaddr(anchors[a]!.multiaddrs.find((m) => !m.includes('/ws/'))!),
            request,
            {
              timeoutMs: 15_000,
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
    const all = await store.records()
    await store.close()
    const records = new Map(
      all.filter((record) => !record.need.startsWith('faucet/')).map((record) => [record.need, record]),
    )
    expect(records.size).toBe(NEEDS)
    expect(all.filter((record) => record.need.startsWith('faucet/'))).toHaveLength(requesters.length)
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
    // The requesters' home anchors differ, so more than one anchor decided.
    expect(deciders.size).toBeGreaterThan(1)
    for (const anchor of anchors) expect(await anchor.stop()).toBe(0)
  })
})
