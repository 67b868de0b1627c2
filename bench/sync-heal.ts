/**
 * Healing after a partition through envelope sync (`/can-swarm/sync/2.0.0`): two peers with real
 * agents (each its own replicas and sync index; plan sync off) share the first envelopes of every
 * thread, then are apart while `SYNC_HEAL_ENVELOPES` (default 100 000) more accumulate on one side —
 * threads of 1 004 signed envelopes each (NEED, a 250-task PROPOSE, its quorum and DECIDE, then per
 * task a CLAIM, the anchor's GRANT and two HEARTBEATs). Then they meet (one dials the other), and
 * `sync_heal_ms` is the time until the other side holds every envelope, each verified and folded,
 * to the same state. Signing the envelopes takes ≈ 0.4 ms each before the clock starts.
 *
 * `sync_transfer_ms` isolates the protocol: the same pull between two bare libp2p nodes, from an
 * index of every envelope into one of the shared ones, each envelope decoded (id recomputed) but
 * neither verified nor folded, with the server's per-peer rate limits lifted.
 */

import type { AnyEnvelope } from '@can-swarm/peer'
import {
  artifactCid,
  createIdentity,
  createPeer,
  type Peer,
  pullEnvelopes,
  SyncIndex,
  serveSync,
} from '@can-swarm/peer'
import { createNetwork, type Network } from '@can-swarm/peer/net'
import { multiaddr } from '@multiformats/multiaddr'
import { claimedThread } from '../test-support/claimed-thread.ts'
import { tcpOf } from '../test-support/peers.ts'
import type { Metric } from './suite.ts'

/** Envelopes of a thread both sides hold before the partition. */
const SHARED_PER_THREAD = 4

function target(): number {
  const raw = process.env.SYNC_HEAL_ENVELOPES ?? '100000'
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 1_000)
    throw new Error(`SYNC_HEAL_ENVELOPES must be an integer ≥ 1 000, got "${raw}"`)
  return value
}

/** The pull alone between two bare nodes: requests and ms. */
async function transfer(
  all: AnyEnvelope[],
  shared: AnyEnvelope[],
): Promise<{ ms: number; requests: number }> {
  const networks: Network[] = []
  try {
    const server = await createNetwork({ identity: await createIdentity(), webRTC: false })
    const client = await createNetwork({ identity: await createIdentity(), webRTC: false })
    networks.push(server, client)
    const served = new SyncIndex<AnyEnvelope>()
    for (const env of all) served.add(env)
    await serveSync(server.libp2p, served, {
      requestsPerSecond: 1e9,
      requestBurst: 1e9,
      bytesPerSecond: 1e12,
      byteBurst: 1e12,
    })
    const index = new SyncIndex<AnyEnvelope>()
    for (const env of shared) index.add(env)
    const address = multiaddr(server.libp2p.getMultiaddrs().find((a) => !a.toString().includes('/ws'))!)
    await client.libp2p.dial(address)
    const started = performance.now()
    const report = await pullEnvelopes(client.libp2p, address, {
      index,
      async deliver(page) {
        for (const env of page) index.add(env)
      },
    })
    const ms = performance.now() - started
    if (!report.complete || index.size !== all.length)
      throw new Error(`sync transfer: ${index.size}/${all.length}`)
    return { ms, requests: report.requests }
  } finally {
    for (const network of networks) await network.stop().catch(() => undefined)
  }
}

export async function runSyncHealBenchmark(
  progress: (line: string) => void,
): Promise<Record<string, Metric>> {
  const wanted = target()
  const peers: Peer[] = []
  try {
    let started = performance.now()
    const threads: { thread: string; log: AnyEnvelope[] }[] = []
    let count = 0
    for (let n = 0; count < wanted; n += 1) {
      const made = await claimedThread(97, artifactCid(new TextEncoder().encode(`sync heal ${n}`)))
      threads.push(made)
      count += made.log.length
    }
    const params = (await claimedThread(97, artifactCid(new TextEncoder().encode('sync heal 0')))).params
    progress(
      `signed ${count} envelopes in ${threads.length} threads in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    )

    const all = threads.flatMap((t) => t.log)
    const shared = threads.flatMap((t) => t.log.slice(0, SHARED_PER_THREAD))
    const moved = await transfer(all, shared)
    progress(
      `transfer alone: ${all.length - shared.length} envelopes in ${moved.requests} requests, ${(moved.ms / 1000).toFixed(1)} s`,
    )

    const options = { params, network: { webRTC: false }, syncIntervalMs: 1_000, planSync: false as const }
    const ahead = await createPeer(options)
    const behind = await createPeer(options)
    peers.push(ahead, behind)
    started = performance.now()
    await ahead.agent.restore(all)
    await behind.agent.restore(shared)
    const held = (peer: Peer) =>
      threads.reduce((sum, t) => sum + (peer.agent.replica(t.thread)?.size ?? 0), 0)
    const missing = count - held(behind)
    progress(
      `apart: one side holds ${held(ahead)}, the other ${held(behind)} (restored in ${((performance.now() - started) / 1000).toFixed(1)} s)`,
    )

    started = performance.now()
    await behind.network.libp2p.dial(multiaddr(tcpOf(ahead)))
    let last = 0
    for (;;) {
      const now = held(behind)
      if (now === count) break
      if (performance.now() - started > 30 * 60_000) throw new Error(`sync heal: stuck at ${now}/${count}`)
      if (now - last >= 10_000) {
        progress(`${now}/${count} after ${((performance.now() - started) / 1000).toFixed(1)} s`)
        last = now
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    const healMs = performance.now() - started
    for (const t of threads) {
      if (behind.agent.replica(t.thread)!.stateHash() !== ahead.agent.replica(t.thread)!.stateHash())
        throw new Error(`sync heal: thread ${t.thread} differs after the heal`)
    }
    progress(
      `healed ${missing} envelopes in ${(healMs / 1000).toFixed(1)} s (${Math.round(missing / (healMs / 1000))}/s)`,
    )
    return {
      sync_heal_ms: {
        value: Number(healMs.toFixed(1)),
        unit: `ms for a peer to take in ${missing} envelopes (${threads.length} threads) it missed while apart: meet → all verified, folded, same state`,
      },
      sync_transfer_ms: {
        value: Number(moved.ms.toFixed(1)),
        unit: `ms to pull the same ${all.length - shared.length} envelopes between two bare nodes (${moved.requests} requests; decoded, not verified nor folded; rate limits lifted)`,
      },
      sync_heal_envelopes_per_s: {
        value: Math.round(missing / (healMs / 1000)),
        unit: 'envelopes/s taken in during the heal (transfer, verification, fold)',
      },
    }
  } finally {
    for (const peer of peers) await peer.stop().catch(() => undefined)
  }
}
