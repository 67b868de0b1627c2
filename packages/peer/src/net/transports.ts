/**
 * Transports of a Node peer: TCP, WebSockets, WebRTC (node-datachannel; signalled over a circuit
 * relay) and the circuit relay v2 client. The browser build swaps this file for
 * `transports.browser.ts` through the package's `imports` map (condition `browser`).
 *
 * A WebSocket listener may check the `Origin` of each upgrade (`allowWebSocketOrigin`): browsers
 * let any page open a WebSocket to any address and say which page did in `Origin`, so a listener
 * meant for the pages of chosen sites refuses the others (403) before the upgrade.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import type { CreateListenerOptions, Listener } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import type { TransportFactory, TransportOptions } from './transport-options.ts'

/** mDNS peer discovery on the local link (`mdns: true` in the network options; Node only). */
export async function mdnsDiscovery(): Promise<unknown> {
  const { mdns } = await import('@libp2p/mdns')
  return mdns()
}

/** The runtime these transports are for. */
export const RUNTIME = 'node' as const

/** Default listen addresses on Node: loopback only (TCP, WebSockets, WebRTC signalling). */
export const DEFAULT_LISTEN: readonly string[] = Object.freeze([
  '/ip4/127.0.0.1/tcp/0',
  '/ip4/127.0.0.1/tcp/0/ws',
  '/webrtc',
])

/** The listener's upgrade hook (`@libp2p/websockets`' `WebSocketListener.onUpgrade`). */
type UpgradeHook = (request: IncomingMessage, socket: Duplex, head: Buffer) => void

/** What a refused upgrade is answered: 403 with a `{ code, error, field }` body, then the socket closes. */
function refuseUpgrade(socket: Duplex, origin: string): void {
  const body = JSON.stringify({
    code: 'ORIGIN_NOT_ALLOWED',
    error: `WebSocket connections from ${origin.slice(0, 200)} are not allowed here`,
    field: 'origin',
  })
  socket.end(
    `HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    () => socket.destroy(),
  )
}

/**
 * `webSockets()` whose listeners pass an upgrade on only when `allow` accepts its `Origin`. The
 * listener's upgrade hook is replaced before it listens (it binds the hook then); a listener without
 * one (another version of the transport) is refused at creation rather than left unguarded.
 */
function originCheckedWebSockets(allow: (origin: string | undefined) => boolean): TransportFactory {
  const factory = webSockets()
  return ((components: Parameters<typeof factory>[0]) => {
    const transport = factory(components)
    const createListener = transport.createListener.bind(transport)
    transport.createListener = (options: CreateListenerOptions): Listener => {
      const listener = createListener(options) as Listener & { onUpgrade?: UpgradeHook }
      const upgrade = listener.onUpgrade
      if (typeof upgrade !== 'function')
        throw new Error('@libp2p/websockets has no upgrade hook to check origins in: update transports.ts')
      listener.onUpgrade = (request, socket, head) => {
        const origin = request.headers.origin
        if (allow(origin)) upgrade.call(listener, request, socket, head)
        else refuseUpgrade(socket, origin ?? '')
      }
      return listener
    }
    return transport
  }) as TransportFactory
}

/** The transport factories for Node. */
export function transportsFor(options: TransportOptions): TransportFactory[] {
  const list: TransportFactory[] = [
    tcp(),
    options.allowWebSocketOrigin ? originCheckedWebSockets(options.allowWebSocketOrigin) : webSockets(),
    circuitRelayTransport(),
  ]
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
