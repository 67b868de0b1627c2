/**
 * A late joiner catching up: a peer holding a 1 004-envelope thread, a new peer dialling it, and
 * the time until the newcomer holds the whole thread (transfer, verification, fold), two ways in
 * one run:
 * - `plan_sync_ms`: Automerge plan sync alone (the thread's document, envelope sync off);
 * - `envelope_sync_ms`: envelope sync alone (`/can-swarm/sync/2.0.0`, plan sync off).
 */
import { createPeer, type Peer, type PeerOptions } from '@can-swarm/peer'
import { claimedThread } from '../test-support/claimed-thread.ts'
import { tcpOf } from '../test-support/peers.ts'
import type { Metric } from './suite.ts'

const ROUNDS = 3

type Path = 'plan' | 'envelope'

/** Options of a peer that catches up by `path` only. */
function only(path: Path): Partial<PeerOptions> {
  return path === 'plan' ? { envelopeSync: false } : { planSync: false, syncIntervalMs: 0 }
}

async function measure(
  path: Path,
  tag: number,
  peers: Peer[],
): Promise<{ samples: number[]; envelopes: number }> {
  const { params, log, thread } = await claimedThread(tag)
  const holder = await createPeer({ params, network: { webRTC: false }, ...only(path) })
  peers.push(holder)
  for (const env of log) await holder.agent.deliver(env)
  await holder.planSync?.flush()
  const address = tcpOf(holder)
  const samples: number[] = []
  for (let round = 0; round < ROUNDS; round += 1) {
    const started = performance.now()
    const late = await createPeer({ params, bootstrap: [address], network: { webRTC: false }, ...only(path) })
    peers.push(late)
    await late.planSync?.follow(thread)
    const deadline = Date.now() + 60_000
    while ((late.agent.replica(thread)?.size ?? 0) < log.length && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 2))
    if ((late.agent.replica(thread)?.size ?? 0) < log.length)
      throw new Error(`the late joiner did not catch up through ${path} sync`)
    if (late.agent.replica(thread)!.stateHash() !== holder.agent.replica(thread)!.stateHash())
      throw new Error(`the late joiner's state differs from the holder's after ${path} sync`)
    samples.push(performance.now() - started)
    await late.stop()
  }
  samples.sort((a, b) => a - b)
  return { samples, envelopes: log.length }
}

export async function runLateJoinBenchmark(
  progress: (line: string) => void,
): Promise<Record<string, Metric>> {
  const peers: Peer[] = []
  try {
    const plan = await measure('plan', 202, peers)
    progress(
      `plan sync: ${plan.envelopes} envelopes caught up in ${plan.samples.map((s) => s.toFixed(0)).join(', ')} ms`,
    )
    const envelope = await measure('envelope', 203, peers)
    progress(
      `envelope sync: ${envelope.envelopes} envelopes caught up in ${envelope.samples.map((s) => s.toFixed(0)).join(', ')} ms`,
    )
    const unit = (how: string, envelopes: number) =>
      `ms for a late joiner to hold a ${envelopes}-envelope thread through ${how} (start → synced, verified, folded; median of ${ROUNDS})`
    return {
      plan_sync_ms: {
        value: Number(plan.samples[1]!.toFixed(1)),
        unit: unit('Automerge plan sync alone', plan.envelopes),
      },
      envelope_sync_ms: {
        value: Number(envelope.samples[1]!.toFixed(1)),
        unit: unit('envelope sync alone', envelope.envelopes),
      },
    }
  } finally {
    for (const peer of peers) await peer.stop().catch(() => undefined)
  }
}
