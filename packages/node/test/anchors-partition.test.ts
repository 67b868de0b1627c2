/**
 * Two anchor groups that cannot reach each other decide the same NEED differently (each with its
 * own durable store); when they meet again, sync brings each side the other's DECIDEs, the merge
 * rule picks one winner everywhere, the winner's anchor publishes a RECONCILE, the losing branch
 * is annotated `orphanedByEpoch`, both stores advance their epoch, and a decision taken on one
 * side only is adopted by the other's store.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AnyEnvelope } from '@can-swarm/peer'
import {
  createIdentity,
  envelopeFromJson,
  fetchNetwork,
  requestCredits,
  requestDecide,
  ThreadReplica,
} from '@can-swarm/peer'
import { createNetwork, type Network } from '@can-swarm/peer/net'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAnchors, type StartedAnchor, startAnchorProcess } from '../../../test-support/anchor-process.ts'
import { makeIdentities } from '../../../test-support/envelopes.ts'
import { type PlanQuorum, planQuorum } from '../../../test-support/quorum.ts'
import { groupGenesis } from './helpers/group.ts'

let dir: string
let network: Network | undefined
/** The clients of each side of the split (one client on both sides would bridge them). */
const sides: Network[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-partition-'))
})
afterAll(async () => {
  await network?.stop().catch(() => undefined)
  for (const side of sides) await side.stop().catch(() => undefined)
  killAnchors()
  await rm(dir, { recursive: true, force: true })
})

async function threadOf(anchor: StartedAnchor, need: string): Promise<AnyEnvelope[]> {
  const response = await fetch(`${anchor.url}/api/threads/${encodeURIComponent(need)}`)
  if (response.status !== 200) return []
  const body = (await response.json()) as { envelopes: unknown[] } | unknown[]
  const list = Array.isArray(body) ? body : body.envelopes
  return list.map((item) => envelopeFromJson(typeof item === 'string' ? item : JSON.stringify(item)))
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

describe('anchors partitioned from each other', () => {
  it('decide on both sides, then converge on one winner with RECONCILE, orphans and a new epoch', async () => {
    const [requester, planner, verifier, otherPlanner] = await makeIdentities(4, 55)
    // One network of two anchors (each signed its genesis), each with its own durable store.
    const file = await groupGenesis([join(dir, 'left'), join(dir, 'right')], join(dir, 'genesis.json'), {
      verifiers: [verifier!.did],
    })
    const common = ['--genesis', file]
    const left = await startAnchorProcess(['--data', join(dir, 'left'), ...common])
    let right = await startAnchorProcess(['--data', join(dir, 'right'), ...common])
    const { genesis, params } = await fetchNetwork(left.url)
    const client = async (seed: number) => {
      const node = await createNetwork({
        identity: await createIdentity({ seed: new Uint8Array(32).fill(seed) }),
        webRTC: false,
      })
      sides.push(node)
      return node
    }
    const leftClient = await client(4)
    const rightClient = await client(7)
    const tcp = (anchor: StartedAnchor) => anchor.multiaddrs.find((address) => !address.includes('/ws/'))!
    // The requester is funded on each side (each anchor's faucet grants an account once).
    for (const anchor of [left, right])
      expect((await requestCredits(anchor.url, requester!.did)).granted).toBe(true)

    const contestedLeft = await planQuorum(
      { requester: requester!, planner: planner!, attester: verifier! },
      genesis.id,
    )
    const contestedRight = await planQuorum(
      { requester: requester!, planner: otherPlanner!, attester: verifier! },
      genesis.id,
      { need: contestedLeft.envelopes[0]! },
    )
    const leftOnly = await planQuorum(
      { requester: requester!, planner: planner!, attester: verifier! },
      genesis.id,
      {
        nonce: 1,
      },
    )
    const ask = (
      anchor: StartedAnchor,
      quorum: PlanQuorum,
      via = anchor === left ? leftClient : rightClient,
    ) => requestDecide(via.libp2p, multiaddr(tcp(anchor)), quorum, { timeoutMs: 15_000 })
    const contested = contestedLeft.need

    // The split: each side decides the contested NEED its own way; another is decided on the left alone.
    const onLeft = await ask(left, contestedLeft)
    const onRight = await ask(right, contestedRight)
    expect(onLeft).toMatchObject({ outcome: 'decided' })
    expect(onRight).toMatchObject({ outcome: 'decided' })
    if (onLeft.outcome !== 'decided' || onRight.outcome !== 'decided') return
    expect(onLeft.decide.payload.proposal).toBe(contestedLeft.proposal)
    expect(onRight.decide.payload.proposal).toBe(contestedRight.proposal)
    expect((await ask(left, leftOnly)).outcome).toBe('decided')
    for (const side of sides.splice(0)) await side.stop()

    // The heal: the right anchor comes back connected to the left one.
    expect(await right.stop()).toBe(0)
    right = await startAnchorProcess(['--data', join(dir, 'right'), ...common, '--peers', tcp(left)])

    const views = await until('both anchors to agree on one winner and the RECONCILE', async () => {
      const result: ThreadReplica[] = []
      for (const anchor of [left, right]) {
        const replica = new ThreadReplica(contested, params)
        replica.receiveAll(await threadOf(anchor, contested), 0)
        if (replica.state.decides.size < 2 || replica.state.reconciles.length === 0) return undefined
        result.push(replica)
      }
      return result
    })
    const [leftView, rightView] = views as [ThreadReplica, ThreadReplica]
    expect(leftView.stateHash()).toBe(rightView.stateHash())
    const winner = leftView.state.winner!
    const loser =
      winner.proposal === contestedLeft.proposal ? contestedRight.proposal : contestedLeft.proposal
    expect(leftView.plan().task(`${loser}/digest`)?.annotations.orphanedByEpoch).toBe(String(winner.epoch))
    expect(leftView.plan().task(`${winner.proposal}/digest`)?.annotations.orphanedByEpoch).toBeUndefined()
    const reconcile = leftView.get(leftView.state.reconciles[0]!)!
    expect(reconcile.sender).toBe(winner.decider)
    expect(reconcile.payload).toMatchObject({ thread: contested, orphaned: [loser] })

    // Both stores moved past the conflicting epoch.
    for (const anchor of [left, right]) {
      const status = (await until('the epoch to advance', async () => {
        const value = (await (await fetch(`${anchor.url}/api/status`)).json()) as { epoch: number }
        return value.epoch >= 2 ? value : undefined
      })) as { epoch: number }
      expect(status.epoch).toBeGreaterThanOrEqual(2)
    }

    // The right store adopted the left-only decision: asked to decide it otherwise, it answers with the left's.
    network = await createNetwork({
      identity: await createIdentity({ seed: new Uint8Array(32).fill(6) }),
      webRTC: false,
    })
    const rival = await planQuorum(
      { requester: requester!, planner: otherPlanner!, attester: verifier! },
      genesis.id,
      {
        need: leftOnly.envelopes[0]!,
      },
    )
    const again = await until('the adopted decision', async () => {
      const answer = await ask(right, rival, network!)
      return answer.outcome === 'decided' ? answer : undefined
    })
    if (again.outcome === 'decided') expect(again.decide.payload.proposal).toBe(leftOnly.proposal)

    for (const anchor of [left, right]) expect(await anchor.stop()).toBe(0)
  })
})
