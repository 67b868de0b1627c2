/**
 * An anchor SIGKILLed in the middle of a burst of DECIDE requests loses nothing it acknowledged:
 * after a restart on the same data directory every acknowledged DECIDE is still the decision
 * (a rival proposal gets the same answer back), and no NEED has two decisions.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AnyEnvelope } from '@can-swarm/peer'
import { createIdentity, fetchNetwork, requestCredits, requestDecide } from '@can-swarm/peer'
import { createNetwork, type Network } from '@can-swarm/peer/net'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAnchors, type StartedAnchor, startAnchorProcess } from '../../../test-support/anchor-process.ts'
import { makeIdentities } from '../../../test-support/envelopes.ts'
import { type PlanQuorum, planQuorum } from '../../../test-support/quorum.ts'

let dir: string
let network: Network | undefined

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-anchor-crash-'))
})
afterAll(async () => {
  await network?.stop().catch(() => undefined)
  killAnchors()
  await rm(dir, { recursive: true, force: true })
})

describe('an anchor killed mid-burst', () => {
  it('keeps every acknowledged DECIDE across SIGKILL and restart', async () => {
    const [requester, planner, verifier, rivalPlanner] = await makeIdentities(4, 66)
    const args = ['--data', join(dir, 'anchor'), '--verifiers', verifier!.did]
    let anchor: StartedAnchor = await startAnchorProcess(args)
    network = await createNetwork({
      identity: await createIdentity({ seed: new Uint8Array(32).fill(8) }),
      webRTC: false,
    })
    const { genesis } = await fetchNetwork(anchor.url)
    // Each NEED is funded (A7): the requester's faucet credits cover 160 budgets of 1.
    expect((await requestCredits(anchor.url, requester!.did)).granted).toBe(true)
    const ask = async (target: StartedAnchor, quorum: PlanQuorum) => {
      const address = multiaddr(target.multiaddrs.find((m) => !m.includes('/ws/'))!)
      return requestDecide(network!.libp2p, address, quorum, { timeoutMs: 8_000 })
    }
    const quorums: PlanQuorum[] = []
    for (let i = 0; i < 160; i += 1) {
      quorums.push(
        await planQuorum({ requester: requester!, planner: planner!, attester: verifier! }, genesis.id, {
          nonce: i,
          budget: 1,
        }),
      )
    }

    const acknowledged = new Map<string, { proposal: string; need: AnyEnvelope }>()
    let killed = false
    const workers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = w; i < quorums.length; i += 8) {
        if (killed) return
        const quorum = quorums[i]!
        try {
          const answer = await ask(anchor, quorum)
          if (answer.outcome === 'decided')
            acknowledged.set(quorum.need, {
              proposal: answer.decide.payload.proposal,
              need: quorum.envelopes[0]!,
            })
        } catch {
          // the anchor died under this request
        }
        if (!killed && acknowledged.size >= 40) {
          killed = true
          anchor.child.kill('SIGKILL')
        }
      }
    })
    await Promise.all(workers)
    expect(killed).toBe(true)
    expect(acknowledged.size).toBeGreaterThanOrEqual(40)
    await new Promise((resolve) =>
      anchor.child.exitCode !== null ? resolve(null) : anchor.child.once('exit', resolve),
    )

    anchor = await startAnchorProcess(args)
    for (const [need, { proposal, need: needEnvelope }] of acknowledged) {
      const rival = await planQuorum(
        { requester: requester!, planner: rivalPlanner!, attester: verifier! },
        genesis.id,
        {
          need: needEnvelope,
        },
      )
      const answer = await ask(anchor, rival)
      expect(answer.outcome, need).toBe('decided')
      if (answer.outcome === 'decided') expect(answer.decide.payload.proposal, need).toBe(proposal)
    }
    expect(await anchor.stop()).toBe(0)
  })
})
