/**
 * An anchor SIGKILLed in the middle of a burst of DECIDE requests loses nothing it acknowledged:
 * after a restart on the same data directory every acknowledged DECIDE is still the decision
 * (a rival proposal gets the same answer back), and no NEED has two decisions.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AnyEnvelope } from '../../peer/src/core/types.ts'
import { createIdentity } from '../../peer/src/crypto/ed25519.ts'
import { requestDecide } from '../../peer/src/decide/client.ts'
import { createNetwork, type Network } from '../../peer/src/net/network.ts'
import { makeIdentities } from '../../peer/test/helpers.ts'
import { killAnchors, type StartedAnchor, startAnchorProcess } from './helpers/anchor-process.ts'
import { planQuorum } from './helpers/quorum.ts'

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
    const [requester, planner, verifier] = await makeIdentities(3, 66)
    const args = ['--data', join(dir, 'anchor'), '--verifiers', verifier!.did]
    let anchor: StartedAnchor = await startAnchorProcess(args)
    network = await createNetwork({
      identity: await createIdentity({ seed: new Uint8Array(32).fill(8) }),
      webRTC: false,
    })
    const quorum = (need: string, proposal: string): Promise<AnyEnvelope[]> =>
      planQuorum({ requester: requester!, planner: planner!, attester: verifier! }, need, proposal)
    const ask = async (target: StartedAnchor, need: string, proposal: string) => {
      const address = multiaddr(target.multiaddrs.find((m) => !m.includes('/ws/'))!)
      return requestDecide(
        network!.libp2p,
        address,
        { need, proposal, envelopes: await quorum(need, proposal) },
        { timeoutMs: 8_000 },
      )
    }

    const acknowledged = new Map<string, string>()
    let killed = false
    const needs = Array.from({ length: 160 }, (_, i) => `need-crash-${i}`)
    const workers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = w; i < needs.length; i += 8) {
        if (killed) return
        try {
          const answer = await ask(anchor, needs[i]!, `p-${i}`)
          if (answer.outcome === 'decided') acknowledged.set(needs[i]!, answer.decide.payload.proposal)
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
    for (const [need, proposal] of acknowledged) {
      const answer = await ask(anchor, need, 'p-rival')
      expect(answer.outcome, need).toBe('decided')
      if (answer.outcome === 'decided') expect(answer.decide.payload.proposal, need).toBe(proposal)
    }
    expect(await anchor.stop()).toBe(0)
  })
})
