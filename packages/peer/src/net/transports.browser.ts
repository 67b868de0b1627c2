/**
 * Transports of a browser peer: WebSockets (to relays and anchors), WebRTC (browser to browser,
 * signalled over a circuit relay) and the circuit relay v2 client. Chosen instead of
 * `transports.ts` by the package's `imports` map (condition `browser`).
 */
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { InvalidArgumentError } from '../core/errors.ts'
import type { TransportFactory, TransportOptions } from './transport-options.ts'

/** The runtime these transports are for. */
export const RUNTIME = 'browser' as const

/** mDNS needs UDP multicast, which browsers do not have: `mdns: true` is refused here. */
export async function mdnsDiscovery(): Promise<unknown> {
  throw new InvalidArgumentError('mDNS discovery runs only on Node (browsers have no UDP multicast)', 'mdns')
}

/** Default listen addresses in a browser: WebRTC signalling only (reachable through relays). */
export const DEFAULT_LISTEN: readonly string[] = Object.freeze(['/webrtc'])

/** The transport factories for browsers. */
export function transportsFor(options: TransportOptions): TransportFactory[] {
  const list: TransportFactory[] = [webSockets(), circuitRelayTransport()]
  if (options.webRTC) {
    list.push(
      webRTC({ rtcConfiguration: { iceServers: [...options.iceServers] } }) as TransportFactory,
      // dial-only in browsers: anchors that listen on WebRTC-direct
      webRTCDirect({ rtcConfiguration: { iceServers: [...options.iceServers] } }) as TransportFactory,
    )
  }
  return list
}
