import type { Libp2pOptions } from 'libp2p'

/** A libp2p transport factory. */
export type TransportFactory = NonNullable<Libp2pOptions['transports']>[number]

/** What the environment-specific transport files (`transports.ts`, `transports.browser.ts`) take. */
export interface TransportOptions {
  /** Add the WebRTC transport. */
  webRTC: boolean
  /** ICE servers for WebRTC; empty means loopback/LAN candidates only (no STUN). */
  iceServers: readonly RTCIceServer[]
  /** Local address node-datachannel binds ICE to (ignored in browsers). */
  bindAddress: string
  /**
   * Which `Origin` headers a WebSocket listener accepts upgrades from (`undefined`: no Origin, a
   * client that is not a browser); others are refused with 403 before libp2p sees the connection.
   * Ignored in browsers, which do not listen. @default every origin
   */
  allowWebSocketOrigin?: (origin: string | undefined) => boolean
}
