/**
 * A late joiner catching up: a peer holding a 1 004-envelope thread, a new peer dialling it, and
 * the time until the newcomer holds the whole thread (sync pull, verification, fold).
 */
import { createPeer, type Peer } from '../packages/peer/src/peer.ts'
import { claimedThread } from '../packages/peer/test/claimed-thread.ts'

export async function runLateJoinBenchmark(progress: (line: string) => void) {
  const thread = 'need-bench-late-join'
  const { params, log } = await claimedThread(thread, 202)
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
