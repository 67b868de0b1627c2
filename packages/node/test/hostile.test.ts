/**
 * Hostile peers against real anchor processes (issue 11, docs/PROTOCOL.md §11). Two anchors run as
 * `npm start` would — one with an open bootstrap pool, one whose genesis names a verifier (a closed
 * pool) — each with an honest canary peer that keeps posting NEEDs and running them to FINAL. Fresh
 * Sybil keys on fresh libp2p nodes then attack over the real network (gossip, envelope sync, the
 * DECIDE service, HTTP), one rule after another. Each attack is refused with its reason (the
 * anchor's refusal counters by code, its gossip rejections, or its answer), the canaries keep
 * finalizing, and at the end both anchors restart on the same data with every thread's state as it
 * was.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NetworkParams } from '@can-swarm/peer'
import {
  type AnyEnvelope,
  BUILTIN_POLICY_HASH,
  createIdentity,
  createPeer,
  type Envelope,
  envelopeFromJson,
  fetchNetwork,
  type LocalIdentity,
  MAX_EPOCH,
  MAX_LAMPORT,
  type Peer,
  PROTOCOL_VERSION,
  poolSnapshotOf,
  requestCredits,
  requestDecide,
  signManifest,
  ThreadReplica,
  threadIdOf,
} from '@can-swarm/peer'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAnchors, type StartedAnchor, startAnchorProcess } from '../../../test-support/anchor-process.ts'
import { freePort } from '../../../test-support/etcd-cluster.ts'
import { forge, gossipRaw, type HostileNode, hostileNode, sybil } from '../../../test-support/hostile.ts'

const CHALLENGE_WINDOW_MS = 1500
let dir: string
const peers: Peer[] = []
const hostile: HostileNode[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-hostile-'))
})
afterAll(async () => {
  for (const node of hostile) await node.stop().catch(() => undefined)
  for (const peer of peers) await peer.stop().catch(() => undefined)
  killAnchors()
  await rm(dir, { recursive: true, force: true })
})

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 45_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 150))
  }
}

interface Status {
  epoch: number
  network: string
  refusals: Record<string, number>
  gossipRejected: Record<string, number>
  held: { pending: number; orphans: number }
}

async function status(anchor: StartedAnchor): Promise<Status> {
  return (await (await fetch(`${anchor.url}/api/status`)).json()) as Status
}

/** Runs `attack` and waits until the anchor has counted one more refusal `code` (a fold refusal). */
async function refusedWith(anchor: StartedAnchor, code: string, attack: () => Promise<void>): Promise<void> {
  const before = (await status(anchor)).refusals[code] ?? 0
  await attack()
  await until(
    `the anchor to refuse with ${code}`,
    async () => ((await status(anchor)).refusals[code] ?? 0) > before,
  )
}

/** Runs `attack` and waits until the anchor's bus has rejected one more gossip frame for `reason`. */
async function rejectedAtEdge(
  anchor: StartedAnchor,
  reason: string,
  attack: () => Promise<void>,
): Promise<void> {
  const before = (await status(anchor)).gossipRejected[reason] ?? 0
  await attack()
  await until(
    `the anchor's gossip validator to reject (${reason})`,
    async () => ((await status(anchor)).gossipRejected[reason] ?? 0) > before,
  )
}

async function ports(): Promise<string[]> {
  return [
    '--port',
    String(await freePort()),
    '--p2p-port',
    String(await freePort()),
    '--ws-port',
    String(await freePort()),
    '--webrtc-port',
    '-1',
  ]
}

const tcpOf = (anchor: StartedAnchor) =>
  anchor.multiaddrs.find((address) => !address.includes('/ws') && !address.includes('webrtc'))!

/** Pushes envelopes at an anchor the way a hostile peer answering envelope sync does. */
async function serve(anchor: StartedAnchor, envelopes: AnyEnvelope[]): Promise<void> {
  hostile.push(await hostileNode(tcpOf(anchor), { served: envelopes }))
}

/** Gossips envelopes (raw bytes, whatever they hold) from a fresh hostile node in the anchor's mesh. */
async function gossip(anchor: StartedAnchor, envelopes: AnyEnvelope[]): Promise<void> {
  const node = await hostileNode(tcpOf(anchor), { gossipThread: envelopes[0]!.thread })
  hostile.push(node)
  for (const env of envelopes) await gossipRaw(node, env)
}

/** An honest peer that keeps posting small NEEDs; `finished()` waits until every one is FINAL. */
class Canary {
  readonly needs: string[] = []
  readonly peer: Peer
  #timer: ReturnType<typeof setInterval> | undefined
  constructor(peer: Peer) {
    this.peer = peer
  }

  start(everyMs = 4000): void {
    const post = () =>
      void this.peer
        .post({
          requires: ['word-frequency'],
          inputs: [
            new TextEncoder().encode(`canary ${this.peer.did.slice(-6)} ${this.needs.length} ${Date.now()}`),
          ],
          budget: 3,
          bidWindowMs: 200,
        })
        .then((need) => this.needs.push(need))
    post()
    this.#timer = setInterval(post, everyMs)
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  isFinal(need: string): boolean {
    const state = this.peer.agent.replica(need)?.state
    const winner = state?.winner
    if (!state || !winner) return false
    const tasks = [...state.tasks.values()].filter((task) => task.proposal === winner.proposal)
    return tasks.length > 0 && tasks.every((task) => task.state === 'FINAL')
  }

  /** A NEED of this canary that is FINAL, with its envelopes (what attacks aim at). */
  async finalThread(): Promise<{ need: string; envelopes: readonly AnyEnvelope[]; replica: ThreadReplica }> {
    const need = await until('a FINAL canary NEED', () => this.needs.find((n) => this.isFinal(n)), 60_000)
    const replica = this.peer.agent.replica(need)!
    return { need, envelopes: replica.envelopes(), replica }
  }

  async finished(): Promise<void> {
    const count = this.needs.length
    await until(
      `all ${count} canary NEEDs FINAL`,
      () => this.needs.slice(0, count).every((n) => this.isFinal(n)),
      90_000,
    )
  }
}

async function startCanary(anchor: StartedAnchor, identity?: LocalIdentity): Promise<Canary> {
  const { params } = await fetchNetwork(anchor.url)
  const peer = await createPeer({
    ...(identity ? { identity } : {}),
    params,
    bootstrap: [tcpOf(anchor)],
    roles: { planner: true, worker: true, verifier: true },
    tuning: { leaseTtlMs: 4000 },
    network: { webRTC: false },
    syncIntervalMs: 1000,
  })
  peers.push(peer)
  expect((await requestCredits(anchor.url, peer.did)).granted).toBe(true)
  await new Promise((resolve) => setTimeout(resolve, 1500))
  return new Canary(peer)
}

function ofKind<K extends AnyEnvelope['kind']>(envelopes: readonly AnyEnvelope[], kind: K): Envelope<K>[] {
  return envelopes.filter((env) => env.kind === kind) as unknown as Envelope<K>[]
}

/** Every thread an anchor holds, folded from its `/api/threads/<id>`: thread → state hash. */
async function stateHashes(
  anchor: StartedAnchor,
  params: NetworkParams,
  threads: readonly string[],
): Promise<Map<string, string>> {
  const hashes = new Map<string, string>()
  for (const thread of threads) {
    const response = await fetch(`${anchor.url}/api/threads/${encodeURIComponent(thread)}`)
    if (response.status !== 200) continue
    const list = (await response.json()) as unknown[]
    const replica = new ThreadReplica(thread, params)
    replica.receiveAll(
      list.map((item) => envelopeFromJson(JSON.stringify(item))),
      0,
    )
    hashes.set(thread, replica.stateHash())
  }
  return hashes
}

describe('hostile peers against real anchors', () => {
  it('refuses every attack with its reason while the canaries finalize, and restarts with its state intact', {
    timeout: 420_000,
  }, async () => {
    // An open pool (npm start's defaults) and a closed one (its genesis names the canary's key).
    const openData = join(dir, 'open')
    const closedData = join(dir, 'closed')
    const closedVerifier = await createIdentity()
    const openPorts = await ports()
    const closedPorts = await ports()
    let open = await startAnchorProcess([
      '--data',
      openData,
      ...openPorts,
      '--challenge-window-ms',
      String(CHALLENGE_WINDOW_MS),
    ])
    let closed = await startAnchorProcess([
      '--data',
      closedData,
      ...closedPorts,
      '--challenge-window-ms',
      String(CHALLENGE_WINDOW_MS),
      '--verifiers',
      closedVerifier.did,
    ])
    const { genesis: openGenesis, params: openParams } = await fetchNetwork(open.url)
    const { genesis: closedGenesis, params: closedParams } = await fetchNetwork(closed.url)
    const net = openGenesis.id
    const canary = await startCanary(open)
    const closedCanary = await startCanary(closed, closedVerifier)
    canary.start()
    closedCanary.start()
    const target = await canary.finalThread()
    const need = ofKind(target.envelopes, 'NEED')[0]!
    const decide = ofKind(target.envelopes, 'DECIDE')[0]!
    const propose = ofKind(target.envelopes, 'PROPOSE')[0]!
    const claim = ofKind(target.envelopes, 'CLAIM')[0]!
    const grant = ofKind(target.envelopes, 'GRANT')[0]!
    const commit = ofKind(target.envelopes, 'COMMIT')[0]!
    const pass = ofKind(target.envelopes, 'ATTEST').find((a) => a.payload.verdict === 'pass')!
    const thread = target.need
    const top = Math.max(...target.envelopes.map((env) => env.lamport))
    const epochBefore = (await status(open)).epoch
    const winnerBefore = target.replica.state.winner!.env

    // 1. A forged DECIDE in the open pool, at the largest epoch a DECIDE may carry (A3).
    const mallory = await sybil()
    const vote = await forge(mallory, {
      kind: 'ATTEST_PLAN',
      thread,
      net,
      lamport: propose.lamport + 1,
      payload: { need: thread, proposal: propose.id, verdict: 'accept' },
    })
    const forgedDecide = (epoch: number, attestations: AnyEnvelope[], pool: NetworkParams, lamport: number) =>
      forge(mallory, {
        kind: 'DECIDE',
        thread,
        net,
        lamport,
        epoch,
        payload: {
          need: thread,
          proposal: propose.id,
          epoch,
          lamport,
          kPlan: 1,
          decider: mallory.did,
          attestations: attestations as Envelope[],
          pool: poolSnapshotOf(pool),
        },
      })
    const forged = await forgedDecide(MAX_EPOCH, [vote], openParams, top + 1)
    await refusedWith(open, 'not-an-anchor', () => serve(open, [vote, forged]))
    expect((await status(open)).epoch).toBe(epochBefore)

    // 2. A forged DECIDE in the closed pool, embedding the honest verifier's ATTEST_PLAN for the
    //    attacker's own PROPOSE (honest verifiers attest valid proposals).
    const closedTarget = await closedCanary.finalThread()
    const closedNeed = ofKind(closedTarget.envelopes, 'NEED')[0]!
    const own = await forge(mallory, {
      kind: 'PROPOSE',
      thread: closedTarget.need,
      net: closedGenesis.id,
      lamport: closedNeed.lamport + 1,
      payload: {
        need: closedTarget.need,
        patch: [
          {
            name: 'mine',
            capability: 'word-frequency',
            inputs: [...closedNeed.payload.inputs],
            produces: 'application/json',
          },
        ],
        ballot: 1,
        price: 1,
        etaMs: 1,
        shardDependencies: [],
      },
    })
    // The attacker offers its plan; the honest verifier (the closed canary) attests it, as honest
    // verifiers attest valid plans; the attacker reads that vote from the anchor's thread.
    await serve(closed, [own])
    const honestVote = await until('the honest verifier’s vote for the attacker’s plan', async () => {
      const response = await fetch(`${closed.url}/api/threads/${encodeURIComponent(closedTarget.need)}`)
      const list = ((await response.json()) as unknown[]).map((item) =>
        envelopeFromJson(JSON.stringify(item)),
      )
      return list.find(
        (env) =>
          env.kind === 'ATTEST_PLAN' &&
          env.sender === closedVerifier.did &&
          (env as Envelope<'ATTEST_PLAN'>).payload.proposal === own.id,
      )
    })
    const closedDecide = await forge(mallory, {
      kind: 'DECIDE',
      thread: closedTarget.need,
      net: closedGenesis.id,
      lamport: own.lamport + 2,
      epoch: 1,
      payload: {
        need: closedTarget.need,
        proposal: own.id,
        epoch: 1,
        lamport: own.lamport + 2,
        kPlan: 1,
        decider: mallory.did,
        attestations: [honestVote as Envelope],
        pool: poolSnapshotOf(closedParams),
      },
    })
    await refusedWith(closed, 'not-an-anchor', () => serve(closed, [closedDecide]))

    // 3. Lamport at the largest safe integer: refused at the edge, before any clock sees it (A4).
    const overflow = await forge(mallory, {
      kind: 'ATTEST_PLAN',
      thread,
      net,
      lamport: Number.MAX_SAFE_INTEGER,
      payload: { need: thread, proposal: propose.id, verdict: 'accept' },
    })
    await rejectedAtEdge(open, 'malformed', () => gossip(open, [overflow]))

    // 4. A lamport jump within the bound of the schema but far past the thread's time: it waits,
    //    unfolded (A4), and the thread's Lamport time does not move.
    const heldBefore = (await status(open)).held.pending
    const jump = await forge(mallory, {
      kind: 'ATTEST_PLAN',
      thread,
      net,
      lamport: MAX_LAMPORT,
      payload: { need: thread, proposal: propose.id, verdict: 'accept' },
    })
    await serve(open, [jump])
    await until('the jump held, not folded', async () => (await status(open)).held.pending > heldBefore)

    // 5. An epoch no anchor issued, on a worker's verb (A3).
    await refusedWith(open, 'epoch-not-issued', async () =>
      serve(open, [
        await forge(mallory, {
          kind: 'CLAIM',
          thread,
          net,
          lamport: top + 1,
          epoch: MAX_EPOCH,
          payload: { task: claim.payload.task, leaseTtlMs: 1000, cost: 1, etaMs: 1 },
        }),
      ]),
    )
    expect((await status(open)).epoch).toBe(epochBefore)

    // 6. Thread-id reuse: another NEED under the canary's thread id, sorting first (A1).
    await refusedWith(open, 'thread-id-mismatch', async () =>
      serve(open, [
        await forge(mallory, {
          kind: 'NEED',
          thread,
          net,
          lamport: 1,
          payload: { ...need.payload, budget: 1, need: thread },
        }),
      ]),
    )

    // 7. Proposal-id reuse: a vote naming something that is no PROPOSE (the NEED itself), and a
    //    back-dated rival PROPOSE that sorts before the honest one — the decided plan stays (A2).
    const rival = await forge(mallory, {
      kind: 'PROPOSE',
      thread,
      net,
      lamport: need.lamport + 1,
      payload: { ...propose.payload },
    })
    await refusedWith(open, 'unknown-proposal', async () =>
      serve(open, [
        rival,
        await forge(mallory, {
          kind: 'ATTEST_PLAN',
          thread,
          net,
          lamport: top + 1,
          payload: { need: thread, proposal: need.id, verdict: 'accept' },
        }),
      ]),
    )
    expect(canary.peer.agent.replica(thread)!.state.winner!.env).toBe(winnerBefore)

    // 8. A stranger scavenges the canary's lease and hands it to itself (A5).
    await refusedWith(open, 'scavenge-not-by-anchor', async () =>
      serve(open, [
        await forge(mallory, {
          kind: 'RELEASE',
          thread,
          net,
          lamport: grant.lamport + 1,
          payload: { task: claim.payload.task, claim: claim.id, reason: 'lease-expired' },
        }),
      ]),
    )
    await refusedWith(open, 'grant-not-by-anchor', async () => {
      const mine = await forge(mallory, {
        kind: 'CLAIM',
        thread,
        net,
        lamport: decide.lamport + 1,
        payload: { task: claim.payload.task, leaseTtlMs: 60_000, cost: 0, etaMs: 1 },
      })
      await serve(open, [
        mine,
        await forge(mallory, {
          kind: 'GRANT',
          thread,
          net,
          lamport: decide.lamport + 2,
          payload: { task: claim.payload.task, claim: mine.id, leaseTtlMs: 60_000 },
        }),
      ])
    })
    await refusedWith(open, 'not-lease-holder', async () =>
      serve(open, [
        await forge(mallory, {
          kind: 'HEARTBEAT',
          thread,
          net,
          lamport: grant.lamport + 1,
          fence: claim.id,
          payload: { task: claim.payload.task, claim: claim.id, progress: 999 },
        }),
      ]),
    )

    // 9. Self-judged INVALIDATE: the challenger upholds its own challenge of a right result (A6).
    const challenge = await forge(mallory, {
      kind: 'CHALLENGE',
      thread,
      net,
      lamport: top + 1,
      payload: {
        task: commit.payload.task,
        commit: commit.id,
        proof: { type: 'missing-artifact', ref: commit.payload.outputs[0]! },
        bond: 6,
      },
    })
    await refusedWith(open, 'not-a-judge', async () =>
      serve(open, [
        challenge,
        await forge(mallory, {
          kind: 'INVALIDATE',
          thread,
          net,
          lamport: top + 2,
          payload: { task: commit.payload.task, commit: commit.id, challenge: challenge.id },
        }),
      ]),
    )

    // 10. An early FINALIZE with a back-dated clock, carrying the honest passing attestation (A6).
    await refusedWith(open, 'finalize-not-by-anchor', async () =>
      serve(open, [
        await forge(mallory, {
          kind: 'FINALIZE',
          thread,
          net,
          lamport: pass.lamport + 1,
          ts: 0,
          payload: { task: pass.payload.task, commit: pass.payload.commit, attestations: [pass as Envelope] },
        }),
      ]),
    )
    // Stranger RECONCILE and CHECKPOINT (A3).
    await refusedWith(open, 'not-an-anchor', async () =>
      serve(open, [
        await forge(mallory, {
          kind: 'RECONCILE',
          thread,
          net,
          lamport: top + 3,
          payload: { thread, merged: [decide.id], orphaned: [propose.id], salvaged: [] },
        }),
      ]),
    )

    // 11. Retroactive double spend: a funded key decides NEED A (900 of its 1 000 credits); NEED B
    //     (900 more), whose thread id sorts before A's, is never decided and never takes A's budget.
    const spender = await createPeer({
      params: openParams,
      bootstrap: [tcpOf(open)],
      network: { webRTC: false },
      syncIntervalMs: 1000,
    })
    peers.push(spender)
    expect((await requestCredits(open.url, spender.did)).granted).toBe(true)
    {
      await new Promise((resolve) => setTimeout(resolve, 1500))
      const a = await spender.post({
        requires: ['word-frequency'],
        inputs: [new TextEncoder().encode('first spend')],
        budget: 900,
        bidWindowMs: 200,
      })
      await until('NEED A decided', () => spender.agent.replica(a)?.state.winner)
      let b: AnyEnvelope | undefined
      for (let nonce = 0; !b || b.thread >= a; nonce += 1) b = await signedNeed(spender, net, 900, nonce)
      await spender.agent.deliver(b)
      spender.bus.publish(b)
      await new Promise((resolve) => setTimeout(resolve, 4000))
      expect(spender.agent.replica(b.thread)?.state.winner).toBeUndefined()
      const ledger = (await (await fetch(`${open.url}/api/ledger`)).json()) as { unfunded: number }
      expect(ledger.unfunded).toBe(0)
    }

    // 12. Minting: fresh keys get nothing for their envelopes or manifests (A7) …
    const ledgerOf = async (did: string) =>
      (await (await fetch(`${open.url}/api/ledger/${did}`)).json()) as { balance: number; staked: number }
    expect(await ledgerOf(mallory.did)).toMatchObject({ balance: 0, staked: 0 })
    const manifest = await signManifest(mallory, {
      net,
      org: 'mallory',
      asn: 'AS64666',
      region: 'nowhere',
      stake: 500,
      seq: 1,
    })
    const put = await fetch(`${open.url}/api/pool/${mallory.did}`, {
      method: 'PUT',
      body: JSON.stringify(manifest),
    })
    expect(put.status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(await ledgerOf(mallory.did)).toMatchObject({ balance: 0, staked: 0 })
    expect((await fetch(`${open.url}/api/pool/${mallory.did}`)).status).toBe(404)
    // … and the faucet is bounded per account and per network and window, not per fresh key.
    const answers = []
    for (let i = 0; i < 25; i += 1) answers.push(await requestCredits(open.url, (await sybil()).did))
    const refusedGrants = answers.filter((answer) => !answer.granted)
    expect(refusedGrants.length).toBeGreaterThan(0)
    expect(refusedGrants[0]).toMatchObject({ status: 429 })
    expect((await requestCredits(open.url, canary.peer.did)).granted).toBe(false)
    const summary = (await (await fetch(`${open.url}/api/ledger`)).json()) as {
      minted: number
      grants: number
    }
    expect(summary.minted).toBeLessThanOrEqual(20_000)

    // 13. Envelopes of another network: refused at the edge (gossip), and by the DECIDE service.
    const elsewhere = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    const foreign = await forge(mallory, {
      kind: 'ATTEST_PLAN',
      thread,
      net: elsewhere,
      lamport: top + 1,
      payload: { need: thread, proposal: propose.id, verdict: 'accept' },
    })
    await rejectedAtEdge(open, 'denied', () => gossip(open, [foreign]))

    // 14. Policy-denied envelopes through the DECIDE service: a NEED whose budget the base policy
    //     denies is refused in words, never relayed to the canary, never logged.
    const rich = await sybil()
    const deniedNeed = await forgeNeed(rich, net, 2_000_000, 7)
    const deniedPropose = await forge(rich, {
      kind: 'PROPOSE',
      thread: deniedNeed.thread,
      net,
      lamport: 2,
      payload: {
        need: deniedNeed.thread,
        patch: [
          {
            name: 'x',
            capability: 'sha256',
            inputs: [...(deniedNeed.payload as { inputs: string[] }).inputs],
            produces: 'text/plain',
          },
        ],
        ballot: 1,
        price: 1,
        etaMs: 1,
        shardDependencies: [],
      },
    })
    const node = await hostileNode(tcpOf(open))
    hostile.push(node)
    const answer = await requestDecide(node.network.libp2p, multiaddr(tcpOf(open)), {
      need: deniedNeed.thread,
      proposal: deniedPropose.id,
      envelopes: [deniedNeed, deniedPropose],
    })
    expect(answer).toMatchObject({ outcome: 'refused' })
    if (answer.outcome === 'refused') expect(answer.reason).toMatch(/budget-credits/)
    const foreignAnswer = await requestDecide(node.network.libp2p, multiaddr(tcpOf(open)), {
      need: thread,
      proposal: propose.id,
      envelopes: [foreign],
    })
    expect(foreignAnswer).toMatchObject({ outcome: 'refused' })
    // … and envelopes too old for gossip (relaying them would get the anchor penalised by its peers).
    const staleNeed = await forgeNeed(rich, net, 5, 8, Date.now() - 600_000)
    const stalePropose = await forge(rich, {
      kind: 'PROPOSE',
      thread: staleNeed.thread,
      net,
      lamport: 2,
      payload: { ...(deniedPropose.payload as object), need: staleNeed.thread } as never,
    })
    const staleAnswer = await requestDecide(node.network.libp2p, multiaddr(tcpOf(open)), {
      need: staleNeed.thread,
      proposal: stalePropose.id,
      envelopes: [staleNeed, stalePropose],
    })
    expect(staleAnswer).toMatchObject({ outcome: 'refused' })
    if (staleAnswer.outcome === 'refused') expect(staleAnswer.reason).toMatch(/envelopes\.0: stale/)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect(canary.peer.agent.replica(deniedNeed.thread)).toBeUndefined()
    expect((await fetch(`${open.url}/api/threads/${encodeURIComponent(deniedNeed.thread)}`)).status).toBe(404)

    // The canaries kept finalizing through all of it; the attacked thread is as it was.
    canary.stop()
    closedCanary.stop()
    await canary.finished()
    await closedCanary.finished()
    expect(canary.peer.agent.replica(thread)!.stateHash()).toBe(target.replica.stateHash())
    expect(canary.needs.length).toBeGreaterThan(3)

    // Both anchors restart on the same data, cleanly, with every thread's state intact.
    const threads = [...canary.needs, thread]
    const closedThreads = [...closedCanary.needs]
    const before = await stateHashes(open, openParams, threads)
    const closedBefore = await stateHashes(closed, closedParams, closedThreads)
    expect(before.size).toBe(new Set(threads).size)
    expect(await open.stop()).toBe(0)
    expect(await closed.stop()).toBe(0)
    open = await startAnchorProcess(['--data', openData, ...openPorts])
    closed = await startAnchorProcess(['--data', closedData, ...closedPorts])
    expect(await stateHashes(open, openParams, threads)).toEqual(before)
    expect(await stateHashes(closed, closedParams, closedThreads)).toEqual(closedBefore)
    expect((await status(open)).network).toBe(net)
    // And it still decides: the canary's next NEED runs to FINAL.
    canary.start(60_000)
    await canary.finished()
    canary.stop()
    expect(await open.stop()).toBe(0)
    expect(await closed.stop()).toBe(0)
  })
})

/** A NEED payload (its `need` filled in by {@link needUnder}). */
type NeedPayload = {
  need: string
  epoch: number
  requires: string[]
  inputs: string[]
  produces: string
  budget: number
  deadlineMs: number
  bidWindowMs: number
}

/** `payload` signed by `identity` as a NEED under its own thread id (what any key can make, A1). */
async function needUnder(
  identity: LocalIdentity,
  net: string,
  payload: NeedPayload,
  ts = Date.now(),
): Promise<AnyEnvelope> {
  const draft = {
    v: PROTOCOL_VERSION,
    net,
    kind: 'NEED' as const,
    thread: '',
    sender: identity.did,
    lamport: 1,
    ts,
    payload,
    refs: [],
    policy: BUILTIN_POLICY_HASH,
    epoch: 1,
  }
  const id = threadIdOf(draft)
  return forge(identity, { kind: 'NEED', thread: id, net, lamport: 1, ts, payload: { ...payload, need: id } })
}

/** A NEED with a chosen budget and nonce (its deadline) over a fixed input. */
function forgeNeed(
  identity: LocalIdentity,
  net: string,
  budget: number,
  nonce: number,
  ts = Date.now(),
): Promise<AnyEnvelope> {
  return needUnder(
    identity,
    net,
    {
      need: '',
      epoch: 1,
      requires: ['sha256'],
      inputs: ['bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'],
      produces: 'text/plain',
      budget,
      deadlineMs: nonce,
      bidWindowMs: 100,
    },
    ts,
  )
}

/** A NEED of `peer` (its own key) for `budget`, with a chosen nonce (its deadline). */
async function signedNeed(peer: Peer, net: string, budget: number, nonce: number): Promise<AnyEnvelope> {
  const inputs = [await peer.artifacts.put(new TextEncoder().encode(`second spend ${nonce}`))]
  return needUnder(peer.identity, net, {
    need: '',
    epoch: 1,
    requires: ['word-frequency'],
    inputs,
    produces: 'application/octet-stream',
    budget,
    deadlineMs: nonce,
    bidWindowMs: 200,
  })
}
