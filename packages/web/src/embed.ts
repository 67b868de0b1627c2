/** Example: another web app embedding a CAN Swarm verifier with the peer package's front door. */
import { createPeer, fetchNetwork } from '@can-swarm/peer'
import { AnchorArtifactStore } from './app/artifacts.ts' // through the anchor's Helia gateway

const log = (line: string) => (document.getElementById('log')!.textContent += `\n${line}`)
const { params } = await fetchNetwork('') // the anchor's signed genesis, verified, and its pool
const status = await (await fetch('/api/status')).json()
const peer = await createPeer({
  params,
  bootstrap: [status.multiaddrs.find((a: string) => a.includes('/ws/'))], // the anchor that served this page
  roles: { verifier: true },
  artifacts: new AnchorArtifactStore({ anchorUrl: '' }),
  network: { listen: ['/p2p-circuit', '/webrtc'], allowPrivateDial: true },
  planSync: false, // a verifier needs envelopes, not plan documents
}) // pass `identity` (createIdentity({ seed })) to keep the same key across reloads
peer.on('envelope', (env) => env.sender === peer.did || log(`${env.kind} from ${env.sender.slice(-8)}`))
log(
  `verifier ${peer.did} joined network ${params.network}; it counts once it stakes (PUT /api/pool/<did>, a signed manifest) or while the pool is open`,
)
