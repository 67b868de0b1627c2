/**
 * Content-addressed fetch: two peers on loopback (libp2p over TCP, Helia with bitswap, blocks in
 * memory); peer A puts distinct 1 MiB artifacts, peer B gets each by CID (wantlist → block →
 * hash check). One warm-up fetch first (the bitswap stream and identify), then the samples.
 */
import { randomBytes } from 'node:crypto'
import { createIdentity } from '@can-swarm/peer'
import { createHeliaArtifacts, type HeliaArtifacts } from '@can-swarm/peer/artifacts'
import { createNetwork, type Network } from '@can-swarm/peer/net'

const ARTIFACT_BYTES = 1024 * 1024
const SAMPLES = 15

export async function runCasBenchmark(progress: (line: string) => void) {
  const stops: Array<{ stop(): Promise<void> }> = []
  const node = async (): Promise<{ network: Network; store: HeliaArtifacts }> => {
    const network = await createNetwork({
      identity: await createIdentity(),
      webRTC: false,
      pubsubDiscovery: false,
      reputationPingMs: 0,
    })
    const store = await createHeliaArtifacts({ libp2p: network.libp2p })
    stops.push(network, store)
    return { network, store }
  }
  try {
    const a = await node()
    const b = await node()
    await b.network.libp2p.dial(a.network.libp2p.getMultiaddrs()[0]!)
    const fetchOne = async (): Promise<number> => {
      const bytes = new Uint8Array(randomBytes(ARTIFACT_BYTES))
      const cid = await a.store.put(bytes)
      const started = performance.now()
      const got = await b.store.get(cid, { signal: AbortSignal.timeout(30_000) })
      const elapsed = performance.now() - started
      if (got?.length !== bytes.length) throw new Error(`peer B did not get ${cid}`)
      return elapsed
    }
    await fetchOne()
    const samples: number[] = []
    for (let index = 0; index < SAMPLES; index += 1) samples.push(await fetchOne())
    samples.sort((x, y) => x - y)
    const p50 = samples[Math.floor(SAMPLES / 2)]!
    const p95 = samples[Math.ceil(SAMPLES * 0.95) - 1]!
    progress(`${SAMPLES} fetches of 1 MiB: ${samples.map((s) => s.toFixed(0)).join(', ')} ms`)
    return {
      cas_fetch_ms: {
        value: Number(p50.toFixed(1)),
        unit: `ms for a peer to get a 1 MiB artifact from another over loopback (bitswap; p50 of ${SAMPLES} distinct artifacts)`,
      },
      cas_fetch_p95_ms: { value: Number(p95.toFixed(1)), unit: 'ms, p95 of the same fetches' },
    }
  } finally {
    for (const item of stops.reverse()) await item.stop().catch(() => undefined)
  }
}
