/**
 * A late joiner catching up: a peer holding a 1 004-envelope thread, a new peer dialling it, and
 * the time until the newcomer holds the whole thread (sync pull, verification, fold).
 */
import { networkParams } from '../packages/peer/src/core/thread/params.ts'
import type { AnyEnvelope, Envelope, TaskSpec } from '../packages/peer/src/core/types.ts'
import { createPeer, type Peer } from '../packages/peer/src/peer.ts'
import { makeIdentities, sign } from '../packages/peer/test/helpers.ts'

export async function runLateJoinBenchmark(progress: (line: string) => void) {
  const [requester, planner, verifier, decider, worker] = await makeIdentities(5, 202)
  const params = networkParams({ verifiers: [verifier!.did], bootstrap: true })
  const thread = 'need-bench-late-join'
  const input = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
  const log: AnyEnvelope[] = [
    await sign(requester!, 'NEED', thread, {
      need: thread,
      epoch: 1,
      requires: ['sha256'],
      inputs: [input],
      produces: 'text/plain',
      budget: 1000,
      deadlineMs: 0,
      bidWindowMs: 1,
    }),
  ]
  const patch: TaskSpec[] = Array.from({ length: 250 }, (_, i) => ({
    name: `t${i}`,
    capability: 'sha256',
    inputs: [input],
    produces: 'text/plain',
  }))
  log.push(
    await sign(planner!, 'PROPOSE', thread, {
      need: thread,
      proposal: 'p',
      patch,
      ballot: 1,
      price: 250,
      etaMs: 1,
      shardDependencies: [],
    }),
  )
  const vote = await sign(verifier!, 'ATTEST_PLAN', thread, {
    need: thread,
    proposal: 'p',
    verdict: 'accept',
  })
  log.push(vote)
  log.push(
    await sign(decider!, 'DECIDE', thread, {
      need: thread,
      proposal: 'p',
      epoch: 1,
      lamport: 10,
      kPlan: 1,
      decider: decider!.did,
      attestations: [vote as Envelope],
    }),
  )
  for (let i = 0; i < 250; i += 1) {
    const claim = await sign(worker!, 'CLAIM', thread, {
      task: `p/t${i}`,
      leaseTtlMs: 60_000,
      cost: 1,
      etaMs: 1,
    })
    log.push(claim)
    for (let h = 0; h < 3; h += 1)
      log.push(
        await sign(
          worker!,
          'HEARTBEAT',
          thread,
          { task: `p/t${i}`, claim: claim.id, progress: h },
          { fence: claim.id },
        ),
      )
  }
  const peers: Peer[] = []
  try {
    const holder = await createPeer({ params, network: { webRTC: false }, syncIntervalMs: 0 })
    peers.push(holder)
    for (const env of log) await holder.agent.deliver(env)
    const address = holder.network.libp2p
      .getMultiaddrs()
      .map(String)
      .find((a) => a.includes('/tcp/') && !a.includes('/ws'))!
    const samples: number[] = []
    for (let round = 0; round < 3; round += 1) {
      const started = performance.now()
      const late = await createPeer({
        params,
        bootstrap: [address],
        network: { webRTC: false },
        syncIntervalMs: 0,
      })
      peers.push(late)
      const deadline = Date.now() + 60_000
      while ((late.agent.replica(thread)?.size ?? 0) < log.length && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 2))
      if ((late.agent.replica(thread)?.size ?? 0) < log.length)
        throw new Error('the late joiner did not catch up')
      samples.push(performance.now() - started)
      await late.stop()
    }
    samples.sort((a, b) => a - b)
    progress(`${log.length} envelopes caught up in ${samples.map((s) => s.toFixed(0)).join(', ')} ms`)
    return {
      plan_sync_ms: {
        value: Number(samples[1]!.toFixed(1)),
        unit: `ms for a late joiner to hold a ${log.length}-envelope thread (start → synced, verified, folded; median of 3)`,
      },
    }
  } finally {
    for (const peer of peers) await peer.stop().catch(() => undefined)
  }
}
