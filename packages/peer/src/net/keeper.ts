/**
 * Keeping the configured peers connected (docs/PROTOCOL.md §13). libp2p dials its bootstrap list
 * once, and its reconnect queue gives a lost keep-alive peer five tries (about half a minute); a
 * partition or an anchor restart that lasts longer leaves a peer, or two anchors that were told of
 * each other, apart for good. The keeper dials every configured peer that is not connected again,
 * for as long as the node runs: after `minDelayMs`, doubling per failed dial up to `maxDelayMs`,
 * with jitter so that a swarm that lost one anchor does not come back in step. A peer the
 * reputation gate denies is not dialled.
 */
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'

/** Most configured peers kept (a bootstrap list is an operator's short list). */
export const MAX_KEPT_PEERS = 64

/** What the keeper needs of a libp2p node. */
export interface KeeperHost {
  getConnections(peer?: PeerId): readonly unknown[]
  dial(address: Multiaddr, options: { signal: AbortSignal }): Promise<unknown>
}

export interface KeeperOptions {
  /** Delay before the first redial of a lost peer, in ms. @default 1000 */
  minDelayMs?: number
  /** Longest delay between redials of one peer, in ms. @default 30 000 */
  maxDelayMs?: number
  /** How long one dial may take, in ms. @default 10 000 */
  dialTimeoutMs?: number
  /** How often the keeper looks, in ms. @default 1000 */
  tickMs?: number
  /** This node's own peer id: an entry naming it is not kept (one list for every anchor). */
  self?: string
  /** Whether `peer` may be dialled (the reputation gate). @default always */
  allowed?: (peer: string) => boolean
  /** Clock, in ms. @default Date.now */
  now?: () => number
  /** Jitter source in [0, 1). @default Math.random */
  random?: () => number
}

interface Kept {
  address: Multiaddr
  peer: PeerId
  delayMs: number
  nextAt: number
  dialing: boolean
}

/** A running keeper; `tick()` is what its timer calls (tests drive it by hand). */
export interface Keeper {
  /** Peers kept. */
  readonly size: number
  /** Dials started so far. */
  readonly dials: number
  tick(): void
  stop(): void
}

/**
 * Keeps the peers of `addresses` (multiaddrs ending in `/p2p/<id>`; others are only dialled by
 * libp2p's bootstrap at start) connected to `host`. Runs its own timer unless `tickMs` is 0.
 */
export function keepConnected(
  host: KeeperHost,
  addresses: readonly string[],
  options: KeeperOptions = {},
): Keeper {
  const minDelayMs = options.minDelayMs ?? 1000
  const maxDelayMs = Math.max(minDelayMs, options.maxDelayMs ?? 30_000)
  const dialTimeoutMs = options.dialTimeoutMs ?? 10_000
  const now = options.now ?? Date.now
  const random = options.random ?? Math.random
  const allowed = options.allowed ?? (() => true)
  const kept: Kept[] = []
  const seen = new Set<string>()
  for (const text of addresses) {
    if (kept.length >= MAX_KEPT_PEERS) break
    let address: Multiaddr
    try {
      address = multiaddr(text)
    } catch {
      continue
    }
    const peer = peerIdOf(address)
    if (peer === undefined || seen.has(peer.toString()) || peer.toString() === options.self) continue
    seen.add(peer.toString())
    kept.push({ address, peer, delayMs: minDelayMs, nextAt: now() + minDelayMs, dialing: false })
  }
  let stopped = false
  let dials = 0
  const tick = () => {
    if (stopped) return
    const at = now()
    for (const entry of kept) {
      if (entry.dialing) continue
      if (host.getConnections(entry.peer).length > 0) {
        // Connected: a later loss is redialled after the shortest delay.
        entry.delayMs = minDelayMs
        entry.nextAt = at + minDelayMs
        continue
      }
      if (at < entry.nextAt || !allowed(entry.peer.toString())) continue
      entry.dialing = true
      dials += 1
      host
        .dial(entry.address, { signal: AbortSignal.timeout(dialTimeoutMs) })
        .catch(() => undefined)
        .finally(() => {
          // The wait doubles whatever the dial said: only a connection seen on a later tick resets
          // it, so a peer that accepts and at once closes (it denies us) is not dialled every second.
          entry.dialing = false
          entry.delayMs = Math.min(maxDelayMs, entry.delayMs * 2)
          entry.nextAt = now() + entry.delayMs * (0.75 + random() / 2)
        })
    }
  }
  const tickMs = options.tickMs ?? 1000
  const timer = tickMs > 0 ? setInterval(tick, tickMs) : undefined
  ;(timer as { unref?: () => void } | undefined)?.unref?.()
  return {
    get size() {
      return kept.length
    },
    get dials() {
      return dials
    },
    tick,
    stop() {
      stopped = true
      if (timer) clearInterval(timer)
    },
  }
}

/** The peer an address reaches: its last `/p2p/<id>` (after a relay's own, in a circuit address). */
function peerIdOf(address: Multiaddr): PeerId | undefined {
  const id = address
    .getComponents()
    .filter((component) => component.name === 'p2p')
    .at(-1)?.value
  if (id === undefined) return undefined
  try {
    return peerIdFromString(id)
  } catch {
    return undefined
  }
}
