import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AnyEnvelope } from '@can-swarm/peer'
import {
  createIdentity,
  createPeer,
  fetchNetwork,
  type Peer,
  requestCredits,
  requestDecide,
  verifyEnvelope,
} from '@can-swarm/peer'
import { createNetwork, type Network } from '@can-swarm/peer/net'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAnchors, startAnchorProcess } from '../../../test-support/anchor-process.ts'
import { makeIdentities } from '../../../test-support/envelopes.ts'
import { until } from '../../../test-support/peers.ts'
import { planQuorum } from '../../../test-support/quorum.ts'
import { EnvelopeLog } from '../src/anchor/log.ts'

let dir: string
const networks: Network[] = []
const peers: Peer[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-anchor-swarm-'))
})
afterAll(async () => {
  for (const peer of peers) await peer.stop().catch(() => undefined)
  for (const network of networks) await network.stop().catch(() => undefined)
  killAnchors()
  await rm(dir, { recursive: true, force: true })
})

describe('an anchor in the swarm', () => {
  it('decides a NEED posted by a peer over libp2p, through its durable store, and keeps the log across a restart', {
    timeout: 120_000,
  }, async () => {
    const seed = new Uint8Array(32).fill(7)
    const identity = await createIdentity({ seed })
    const data = join(dir, 'anchor')
    const anchor = await startAnchorProcess(['--data', data, '--verifiers', identity.did])
    const ws = anchor.multiaddrs.find((address) => address.includes('/ws/'))
    expect(ws).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\//)

    // The peer joins the network the anchor created (its genesis names the peer as a verifier, with
    // its stake allocated), and asks the faucet for credits to fund its NEED.
    const { params, genesis } = await fetchNetwork(anchor.url)
    expect(genesis.body.pool.verifiers).toEqual([identity.did])
    expect((await requestCredits(anchor.url, identity.did)).granted).toBe(true)
    // The peer serves and pulls sync, so nothing gossip misses (a mesh not yet formed) is lost.
    const peer = await createPeer({
      identity,
      params,
      bootstrap: [ws!],
      roles: { planner: true, worker: true, verifier: true },
      tuning: { leaseTtlMs: 5000 },
      network: { webRTC: false },
      syncIntervalMs: 2000,
    })
    peers.push(peer)
    const agent = peer.agent
    await new Promise((resolve) => setTimeout(resolve, 1500))

    const need = await agent.post({
      requires: ['word-frequency', 'sha256'],
      inputs: [new TextEncoder().encode('the swarm decides the swarm')],
      budget: 20,
      bidWindowMs: 200,
    })
    const decided = await until('a DECIDE from the anchor', () => agent.replica(need)?.state.winner)
    expect(decided.decider).toBe(anchor.did)
    const final = await until('both tasks FINAL', () => {
      const state = agent.replica(need)!.state
      const tasks = [...state.tasks.values()].filter((task) => task.proposal === decided.proposal)
      return tasks.length === 2 && tasks.every((task) => task.state === 'FINAL') ? tasks : undefined
    })
    expect(final).toHaveLength(2)

    const status = (await (await fetch(`${anchor.url}/api/status`)).json()) as {
      threads: number
      envelopes: number
    }
    expect(status.threads).toBe(1)
    expect(status.envelopes).toBeGreaterThan(8)
    // The anchor's peer pushes its metrics as things happen: its DECIDE said, both FINAL tasks seen.
    const metrics = await (await fetch(`${anchor.url}/metrics`)).text()
    expect(metrics).toMatch(/can_swarm_envelopes_published_total\{kind="DECIDE"\} 1/)
    expect(metrics).toMatch(/can_swarm_tasks_final_total 2/)

    // The live ledger: the peer (requester, worker and genesis verifier at once) was allocated its
    // stake at genesis and granted the faucet once; nobody else holds anything (no envelope and no
    // anchor mints); its budget and bounties sit in escrow or are owed to it until 2 × T_challenge
    // after FINALIZE; credits are conserved.
    const account = await getJson(`${anchor.url}/api/ledger/${identity.did}`)
    expect(account).toMatchObject({ did: identity.did, staked: 300 })
    expect(account.escrowed + account.pending).toBeGreaterThan(0)
    expect(account.balance + account.staked + account.escrowed).toBe(1300)
    const summary = await getJson(`${anchor.url}/api/ledger`)
    expect(summary).toMatchObject({ minted: 1300, burned: 0, accounts: 1, conservationGap: 0, refused: 0 })
    expect((await getJson(`${anchor.url}/api/ledger/${anchor.did}`)).balance).toBe(0)
    const refused = await fetch(`${anchor.url}/api/ledger/did:key:nope`)
    expect(refused.status).toBe(400)

    // The anchor kept every envelope; after a restart it restores them and holds the same decision.
    anchor.child.kill('SIGTERM')
    await new Promise((resolve) => anchor.child.once('exit', resolve))
    const { log: kept, envelopes: logged } = await EnvelopeLog.open(data)
    kept.close()
    expect(logged.length).toBe(status.envelopes)
    expect(logged.some((env) => env.kind === 'DECIDE')).toBe(true)
    const again = await startAnchorProcess(['--data', data, '--verifiers', identity.did])
    expect(again.did).toBe(anchor.did)
    const restarted = (await (await fetch(`${again.url}/api/status`)).json()) as {
      threads: number
      envelopes: number
    }
    expect(restarted.envelopes).toBe(status.envelopes)
    expect(restarted.threads).toBe(1)
    // It kept the thread's plan document too: a newcomer without envelope sync catches up from it.
    expect((await readdir(join(data, 'automerge'))).length).toBeGreaterThan(0)
    const newcomer = await createPeer({
      params,
      bootstrap: [again.multiaddrs.find((address) => address.includes('/ws/'))!],
      network: { webRTC: false },
      envelopeSync: false,
    })
    peers.push(newcomer)
    await newcomer.planSync!.follow(need)
    await until('the newcomer to hold the thread through plan sync', () =>
      newcomer.agent.replica(need)?.size === status.envelopes ? true : undefined,
    )
    const caughtUp = newcomer.agent.replica(need)!.state
    expect(caughtUp.winner?.proposal).toBe(decided.proposal)
    expect(
      [...caughtUp.tasks.values()]
        .filter((task) => task.proposal === decided.proposal)
        .map((task) => task.state),
    ).toEqual(['FINAL', 'FINAL'])
    // The ledger is derived from the restored log: the same credits, wherever the payouts stand now.
    const ledgerAgain = await getJson(`${again.url}/api/ledger/${identity.did}`)
    expect(ledgerAgain.balance + ledgerAgain.staked + ledgerAgain.escrowed).toBe(1300)
    expect(await getJson(`${again.url}/api/ledger`)).toMatchObject({ minted: 1300, conservationGap: 0 })
    again.child.kill('SIGTERM')
    await new Promise((resolve) => again.child.once('exit', resolve))
  })
})

interface Credits {
  balance: number
  staked: number
  escrowed: number
  pending: number
}

async function getJson(url: string): Promise<Credits & Record<string, unknown>> {
  const response = await fetch(url)
  expect(response.status, url).toBe(200)
  return (await response.json()) as Credits & Record<string, unknown>
}

describe('the DECIDE service protocol', () => {
  it('decides a self-contained quorum once, answers later rivals with the winner, refuses forgeries', async () => {
    const [requester, planner, verifier, outsider] = await makeIdentities(4, 77)
    const anchor = await startAnchorProcess([
      '--data',
      join(dir, 'decide-service'),
      '--verifiers',
      verifier!.did,
    ])
    const network = await createNetwork({
      identity: await createIdentity({ seed: new Uint8Array(32).fill(9) }),
      webRTC: false,
    })
    networks.push(network)
    const tcp = multiaddr(anchor.multiaddrs.find((address) => !address.includes('/ws/'))!)
    const { genesis } = await fetchNetwork(anchor.url)
    // An unfunded NEED is not decided (A7): the requester asks the faucet first.
    expect((await requestCredits(anchor.url, requester!.did)).granted).toBe(true)
    const first = await planQuorum(
      { requester: requester!, planner: planner!, attester: verifier! },
      genesis.id,
    )
    const answer = await requestDecide(network.libp2p, tcp, first)
    expect(answer.outcome).toBe('decided')
    if (answer.outcome !== 'decided') return
    expect(answer.decide.payload.proposal).toBe(first.proposal)
    expect(answer.decide.sender).toBe(anchor.did)
    await verifyEnvelope(answer.decide)
    // A rival plan for the same NEED (another planner): the service answers with the winner.
    const rival = await planQuorum(
      { requester: requester!, planner: outsider!, attester: verifier! },
      genesis.id,
      {
        need: first.envelopes[0]!,
      },
    )
    expect(rival.proposal).not.toBe(first.proposal)
    const rivalAnswer = await requestDecide(network.libp2p, tcp, rival)
    expect(rivalAnswer).toMatchObject({ outcome: 'decided' })
    if (rivalAnswer.outcome === 'decided') expect(rivalAnswer.decide.payload.proposal).toBe(first.proposal)

    const forged = await planQuorum(
      { requester: requester!, planner: planner!, attester: verifier! },
      genesis.id,
      {
        nonce: 1,
      },
    )
    forged.envelopes[2] = { ...forged.envelopes[2]!, sig: new Uint8Array(64) } as AnyEnvelope
    const refused = await requestDecide(network.libp2p, tcp, forged)
    expect(refused).toMatchObject({ outcome: 'refused' })
    if (refused.outcome === 'refused') expect(refused.reason).toMatch(/envelopes\.2/)

    // Attested by someone who is no verifier: no quorum, so no DECIDE.
    const noQuorum = await planQuorum(
      { requester: requester!, planner: planner!, attester: outsider! },
      genesis.id,
      {
        nonce: 2,
      },
    )
    const pending = await requestDecide(network.libp2p, tcp, noQuorum, { timeoutMs: 15_000 })
    expect(pending).toMatchObject({ outcome: 'pending' })
    if (pending.outcome === 'pending') expect(pending.reason).toMatch(/no quorum/)
    anchor.child.kill('SIGTERM')
    await new Promise((resolve) => anchor.child.once('exit', resolve))
  })
})
