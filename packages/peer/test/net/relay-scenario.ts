/**
 * Scenario for net-relay.test.ts: a relay process and two peers that listen on no address of their
 * own (only `/p2p-circuit`), so the relay is all they can reach. Peer B reserves a slot on the
 * relay; peer A dials B's circuit address and pings it. Then the relay restarts from its data
 * directory and must keep its peer id. Prints one JSON line.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PeerProcess, randomSeedHex, startRelayProcess } from '../../src/cli/mesh-cluster.ts'

const log = (line: string) => process.stderr.write(`[relay] ${line}\n`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'can-swarm-relay-'))
  const peers: PeerProcess[] = []
  let relay = await startRelayProcess(dataDir)
  try {
    const relayAddress = relay.multiaddrs.find(
      (address) => address.includes('/tcp/') && !address.includes('/ws'),
    )!
    log(`relay ${relay.peerId} at ${relayAddress}`)
    const config = {
      listen: ['/p2p-circuit'],
      bootstrap: [relayAddress],
      pubsubDiscovery: false,
      dialDiscoveredBelow: 0,
    }
    peers.push(await PeerProcess.start(0, { ...config, seedHex: randomSeedHex() }))
    peers.push(await PeerProcess.start(1, { ...config, seedHex: randomSeedHex() }))
    const [a, b] = peers as [PeerProcess, PeerProcess]
    let circuit: string | undefined
    const deadline = Date.now() + 20_000
    while (circuit === undefined && Date.now() < deadline) {
      const info = await b.call<{ multiaddrs: string[] }>('info')
      circuit = info.multiaddrs.find((address) => address.includes('/p2p-circuit'))
      if (circuit === undefined) await sleep(200)
    }
    if (circuit === undefined) throw new Error('peer B got no relay reservation')
    const directA = (await a.call<{ multiaddrs: string[] }>('info')).multiaddrs.filter(
      (m) => !m.includes('p2p-circuit'),
    )
    const directB = (await b.call<{ multiaddrs: string[] }>('info')).multiaddrs.filter(
      (m) => !m.includes('p2p-circuit'),
    )
    log(`B reachable at ${circuit}`)
    await a.call('dial', { multiaddr: circuit })
    const rttMs = await a.call<number>('ping', { multiaddr: circuit })
    const connections = (
      await a.call<{ connections: Array<{ peer: string; addr: string; limited: boolean }> }>('peers')
    ).connections
    const firstRelayId = relay.peerId
    await relay.stop()
    relay = await startRelayProcess(dataDir)
    const result = {
      relayPeerId: firstRelayId,
      relayPeerIdAfterRestart: relay.peerId,
      relayAddresses: relay.multiaddrs,
      circuit,
      peerB: b.peerId,
      directA,
      directB,
      rttMs,
      connectionsOfA: connections,
    }
    process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    await Promise.all(peers.map((peer) => peer.stop()))
    await relay.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(1)
  },
)
