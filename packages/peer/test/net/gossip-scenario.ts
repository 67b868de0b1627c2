/**
 * Scenario for net-gossip.test.ts: a 10-process mesh on loopback (9 honest peers in a fixed
 * topology, 1 adversary connected only to peer 0). Honest peers publish; the adversary publishes
 * forgeries, envelopes the ingress hook denies, and a replay of an honest envelope. Prints one
 * JSON line with what every peer delivered and rejected.
 */
import { PeerProcess, randomSeedHex } from '../../src/cli/mesh-cluster.ts'
import type { MeshPeerConfig } from '../../src/cli/mesh-peer.ts'

const HONEST = 9
const MAX_AGE_MS = 8000
const log = (line: string) => process.stderr.write(`[gossip] ${line}\n`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

type Stats = {
  bus: {
    rejected: Record<string, number>
    recentRejections: Array<{ from: string; reason: string; ids: string[] }>
  }
  scores: Record<string, { gossip: number; app: number }>
  reputation: Record<string, { score: number; invalid: number }>
  deliveries: Array<[string, number]>
  connectedTo: string[]
}

async function main(): Promise<void> {
  const seeds = Array.from({ length: HONEST + 1 }, () => randomSeedHex())
  const { createIdentity } = await import('../../src/crypto/ed25519.ts')
  const adversaryDid = (await createIdentity({ seed: Uint8Array.from(Buffer.from(seeds[HONEST]!, 'hex')) }))
    .did
  const base: Omit<MeshPeerConfig, 'seedHex'> = {
    listen: ['/ip4/127.0.0.1/tcp/0'],
    pubsubDiscovery: false,
    dialDiscoveredBelow: 0,
    maxEnvelopeAgeMs: MAX_AGE_MS,
    gossip: { seenTTL: MAX_AGE_MS + 1000 },
    record: true,
    // 3 forgeries + 1 replay at 10 points each (a policy denial costs nothing: the forwarder may run
    // another policy): the replay takes the adversary below -35.
    reputation: { disconnectThreshold: -35, invalidPenalty: 10, denyMs: 60_000 },
  }
  const peers: PeerProcess[] = []
  try {
    log('starting 10 peer processes')
    const started = await Promise.all(
      seeds.map((seedHex, index) =>
        PeerProcess.start(index, {
          ...base,
          seedHex,
          keepBytes: index === HONEST,
          ...(index < HONEST ? { denySenders: [adversaryDid] } : {}),
        }),
      ),
    )
    peers.push(...started)
    // Honest topology: each peer dials the previous one and the one three back (connected, multi-hop).
    for (let i = 1; i < HONEST; i += 1) {
      await peers[i]!.call('dial', { multiaddr: peers[i - 1]!.multiaddrs[0] })
      if (i >= 3) await peers[i]!.call('dial', { multiaddr: peers[i - 3]!.multiaddrs[0] })
    }
    await peers[HONEST]!.call('dial', { multiaddr: peers[0]!.multiaddrs[0] })
    log('topology dialled; waiting for gossip meshes')
    await sleep(3000)

    const threads = ['thread-a', 'thread-b', 'thread-c', 'thread-d']
    const honestIds: string[][] = []
    for (let i = 0; i < HONEST; i += 1) {
      honestIds.push(await peers[i]!.call<string[]>('publish', { count: 4, threads }))
    }
    const expected = HONEST * 4
    log(`published ${expected} honest envelopes; waiting for delivery`)
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      const counts = await Promise.all(
        peers
          .slice(0, HONEST)
          .map((peer) => peer.call<{ deliveries: number }>('stats', { deliveries: false })),
      )
      if (counts.every((stats) => stats.deliveries >= expected - 4)) break
      await sleep(200)
    }

    log('adversary: forgeries, policy-denied envelopes, replay')
    const forged: string[] = []
    for (let i = 0; i < 3; i += 1)
      forged.push(await peers[HONEST]!.call<string>('forge', { thread: threads[i]! }))
    const denied = await peers[HONEST]!.call<string[]>('publish', { count: 1, threads })
    const victim = honestIds[4]![0]!
    await sleep(MAX_AGE_MS + 1500)
    const replayed = await peers[HONEST]!.call<string>('replay', { id: victim, thread: threads[0] })
    await sleep(2500)

    const stats = await Promise.all(peers.map((peer) => peer.call<Stats>('stats')))
    // the connection gater keeps the denied adversary out: a redial is refused or cut at once
    await peers[HONEST]!.call('dial', { multiaddr: peers[0]!.multiaddrs[0] }).catch(() => undefined)
    await sleep(1000)
    const afterRedial = await peers[0]!.call<Stats>('stats', { deliveries: false })
    const redialRefused = !afterRedial.connectedTo.includes(peers[HONEST]!.peerId)
    const result = {
      peerIds: peers.map((peer) => peer.peerId),
      adversary: peers[HONEST]!.peerId,
      honestIds,
      forged,
      denied,
      replayed,
      redialRefused,
      peers: stats.map((s, index) => ({
        index,
        delivered: s.deliveries.map(([id]) => id),
        rejected: s.bus.rejected,
        rejectedIds: s.bus.recentRejections.flatMap((r) => r.ids),
        rejectedFrom: [...new Set(s.bus.recentRejections.map((r) => r.from))],
        adversaryScore: s.scores[peers[HONEST]!.peerId] ?? null,
        adversaryReputation: s.reputation[peers[HONEST]!.peerId] ?? null,
        connectedToAdversary: s.connectedTo.includes(peers[HONEST]!.peerId),
      })),
    }
    process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    await Promise.all(peers.map((peer) => peer.stop()))
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(1)
  },
)
