/**
 * Transports of a Node peer: TCP, WebSockets, WebRTC (node-datachannel; signalled over a circuit
 * relay) and the circuit relay v2 client. The browser build swaps this file for
 * `transports.browser.ts` through the package's `imports` map (condition `browser`).
 */
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { tcp } from '@libp2p/tcp'
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import type { TransportFactory, TransportOptions } from './transport-options.ts'

/** The runtime these transports are for. */
export const RUNTIME = 'node' as const

/** Default listen addresses on Node: loopback only (TCP, WebSockets, WebRTC signalling). */
export const DEFAULT_LISTEN: readonly string[] = Object.freeze([
  '/ip4/127.0.0.1/tcp/0',
  '/ip4/127.0.0.1/tcp/0/ws',
  '/webrtc',
])

/** The transport factories for Node. */
export function transportsFor(options: TransportOptions): TransportFactory[] {
  const list: TransportFactory[] = [tcp(), webSockets(), circuitRelayTransport()]
  if (options.webRTC) {
    list.push(
      webRTC({
        // node-datachannel reads bindAddress; without it only non-loopback interfaces are offered.
        rtcConfiguration: {
          iceServers: [...options.iceServers],
          bindAddress: options.bindAddress,
        } as RTCConfiguration,
      }) as TransportFactory,
      // WebRTC-direct: browsers dial a listening peer (an anchor) straight over UDP, no relay, no
      // signalling; the listener's self-signed certificate hash travels in its multiaddr.
      webRTCDirect({
        rtcConfiguration: { iceServers: [...options.iceServers] } as RTCConfiguration,
      }) as TransportFactory,
    )
  }
  return list
}
