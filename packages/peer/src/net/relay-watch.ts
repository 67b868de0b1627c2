/**
 * Getting a relay reservation back (docs/PROTOCOL.md §13). A node that listens on `/p2p-circuit`
 * (a browser tab, an embedded peer behind NAT) is reachable only while it holds a reservation on
 * a relay. libp2p's circuit relay client asks a relay for one when the relay connects (once per
 * connection) and when it looks for relays after losing one; if that one request fails — the
 * relay just restarted and answers slowly, or it is full for a moment — nothing asks again while
 * the connection stays up, and the node stays unreachable for good although it is connected.
 *
 * The watch notices that state — no circuit address of its own while a direct connection to a
 * relay is open — and after `afterMs` reconnects to that relay (hang up, dial again), which makes
 * the client ask for a reservation afresh. Each try doubles the wait, up to `maxAfterMs`, so a
 * relay that keeps refusing is not churned; holding a circuit address resets it.
 */
import type { Multiaddr } from '@multiformats/multiaddr'

/** A relay this node is connected to directly (not through another relay). */
export interface ConnectedRelay {
  readonly peer: string
  /** The address the connection reached it on (what is dialled again). */
  readonly address: Multiaddr
}

/** What the watch needs of a libp2p node. */
export interface RelayWatchHost {
  /** True when one of this node's own addresses is a circuit address (it holds a reservation). */
  hasCircuitAddress(): boolean
  /** Peers speaking the relay's hop protocol over a direct connection of this node. */
  connectedRelays(): Promise<readonly ConnectedRelay[]>
  hangUp(peer: string): Promise<void>
  dial(address: Multiaddr, options: { signal: AbortSignal }): Promise<unknown>
}

export interface RelayWatchOptions {
  /** How long the node may stay without a circuit address while connected to a relay, in ms. @default 15 000 */
  afterMs?: number
  /** Longest wait between reconnects to get a reservation, in ms. @default 240 000 */
  maxAfterMs?: number
  /** How long one redial may take, in ms. @default 10 000 */
  dialTimeoutMs?: number
  /** How often the watch looks, in ms; 0 runs no timer (tests call `tick`). @default 1000 */
  tickMs?: number
  /** Clock, in ms. @default Date.now */
  now?: () => number
}

/** A running watch. */
export interface RelayWatch {
  /** Reconnects made to get a reservation back. */
  readonly reconnects: number
  /** One look; what the timer calls. Resolves when any reconnect it started has finished. */
  tick(): Promise<void>
  stop(): void
}

/** Starts watching `host` for a lost reservation (see the module comment). */
export function watchRelayReservation(host: RelayWatchHost, options: RelayWatchOptions = {}): RelayWatch {
  const afterMs = options.afterMs ?? 15_000
  const maxAfterMs = Math.max(afterMs, options.maxAfterMs ?? 240_000)
  const dialTimeoutMs = options.dialTimeoutMs ?? 10_000
  const now = options.now ?? Date.now
  let waitMs = afterMs
  /** Since when the node is connected to a relay without holding a reservation. */
  let since: number | undefined
  let reconnects = 0
  let next = 0
  let busy = false
  let stopped = false

  const tick = async (): Promise<void> => {
    if (stopped || busy) return
    if (host.hasCircuitAddress()) {
      since = undefined
      waitMs = afterMs
      return
    }
    busy = true
    try {
      const relays = await host.connectedRelays()
      if (relays.length === 0) {
        // Not connected to any relay: reconnecting is the keeper's and the app's business.
        since = undefined
        return
      }
      const at = now()
      since ??= at
      if (at - since < waitMs || stopped) return
      const relay = relays[next++ % relays.length] as ConnectedRelay
      reconnects += 1
      waitMs = Math.min(maxAfterMs, waitMs * 2)
      since = undefined
      await host.hangUp(relay.peer).catch(() => undefined)
      if (!stopped)
        await host.dial(relay.address, { signal: AbortSignal.timeout(dialTimeoutMs) }).catch(() => undefined)
    } finally {
      busy = false
    }
  }
  const tickMs = options.tickMs ?? 1000
  const timer = tickMs > 0 ? setInterval(() => void tick(), tickMs) : undefined
  ;(timer as { unref?: () => void } | undefined)?.unref?.()
  return {
    get reconnects() {
      return reconnects
    },
    tick,
    stop() {
      stopped = true
      if (timer) clearInterval(timer)
    },
  }
}
