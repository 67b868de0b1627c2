import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { networkParams } from '../../peer/src/core/thread/params.ts'
import type { AnyEnvelope } from '../../peer/src/core/types.ts'
import { createIdentity } from '../../peer/src/crypto/ed25519.ts'
import { verifyEnvelope } from '../../peer/src/crypto/envelopes.ts'
import { requestDecide } from '../../peer/src/decide/client.ts'
import { createNetwork, type Network } from '../../peer/src/net/network.ts'
import { createPeer, type Peer } from '../../peer/src/peer.ts'
import { makeIdentities, sign } from '../../peer/test/helpers.ts'
import { until } from '../../peer/test/peers.ts'
import { killAnchors, startAnchorProcess } from './helpers/anchor-process.ts'
import { planQuorum } from './helpers/quorum.ts'

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

    // The peer serves and pulls sync, so nothing gossip misses (a mesh not yet formed) is lost.
    const peer = await createPeer({
      identity,
      params: networkParams({ verifiers: [identity.did], bootstrap: true }),
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

    // The live ledger: the peer (requester, worker and listed verifier at once) and the anchor were
    // each granted the faucet; the peer staked; its budget and bounties sit in escrow or are owed to
    // it until 2 × T_challenge after FINALIZE; credits are conserved.
    const account = await getJson(`${anchor.url}/api/ledger/${identity.did}`)
    expect(account).toMatchObject({ did: identity.did, staked: 300 })
    expect(account.escrowed + account.pending).toBeGreaterThan(0)
    expect(account.balance + account.staked + account.escrowed).toBe(1000)
    const summary = await getJson(`${anchor.url}/api/ledger`)
    expect(summary).toMatchObject({ minted: 2000, burned: 0, accounts: 2, conservationGap: 0, refused: 0 })
    const refused = await fetch(`${anchor.url}/api/ledger/did:key:nope`)
    expect(refused.status).toBe(400)

    // The anchor kept every envelope; after a restart it restores them and holds the same decision.
    anchor.child.kill('SIGTERM')
    await new Promise((resolve) => anchor.child.once('exit', resolve))
    const logged = (await readFile(join(data, 'envelopes.jsonl'), 'utf8')).trim().split('\n')
    expect(logged.length).toBe(status.envelopes)
    expect(logged.some((line) => line.includes('"DECIDE"'))).toBe(true)
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
      params: networkParams({ verifiers: [identity.did], bootstrap: true }),
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
    expect(ledgerAgain.balance + ledgerAgain.staked + ledgerAgain.escrowed).toBe(1000)
    expect(await getJson(`${again.url}/api/ledger`)).toMatchObject({ minted: 2000, conservationGap: 0 })
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
    const need = 'need-decide-service'
    const envelopesFor = (proposal: string, attester = verifier!): Promise<AnyEnvelope[]> =>
      planQuorum({ requester: requester!, planner: planner!, attester }, need, proposal)
    const first = await requestDecide(network.libp2p, tcp, {
      need,
      proposal: 'p1',
      envelopes: await envelopesFor('p1'),
    })
    expect(first.outcome).toBe('decided')
    if (first.outcome !== 'decided') return
    expect(first.decide.payload.proposal).toBe('p1')
    expect(first.decide.sender).toBe(anchor.did)
    await verifyEnvelope(first.decide)
    const rival = await requestDecide(network.libp2p, tcp, {
      need,
      proposal: 'p2',
      envelopes: await envelopesFor('p2'),
    })
    expect(rival).toMatchObject({ outcome: 'decided' })
    if (rival.outcome === 'decided') expect(rival.decide.payload.proposal).toBe('p1')

    const forged = await envelopesFor('p3')
    forged[2] = { ...forged[2]!, sig: new Uint8Array(64) } as AnyEnvelope
    const refused = await requestDecide(network.libp2p, tcp, { need, proposal: 'p3', envelopes: forged })
    expect(refused).toMatchObject({ outcome: 'refused' })
    if (refused.outcome === 'refused') expect(refused.reason).toMatch(/envelopes\.2/)

    const other = 'need-without-quorum'
    const noQuorum = await envelopesFor('q1', outsider)
    const rethreaded: AnyEnvelope[] = []
    for (const env of noQuorum) {
      const payload = { ...env.payload, need: other } as never
      const signer = [requester!, planner!, outsider!].find((id) => id.did === env.sender)!
      rethreaded.push(await sign(signer, env.kind, other, payload, { ts: Date.now() }))
    }
    const pending = await requestDecide(
      network.libp2p,
      tcp,
      { need: other, proposal: 'q1', envelopes: rethreaded },
      { timeoutMs: 15_000 },
    )
    expect(pending).toMatchObject({ outcome: 'pending' })
    if (pending.outcome === 'pending') expect(pending.reason).toMatch(/no quorum/)
    anchor.child.kill('SIGTERM')
    await new Promise((resolve) => anchor.child.once('exit', resolve))
  })
})
