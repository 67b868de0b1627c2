/**
 * A count bound on libp2p's peer store (docs/PROTOCOL.md §15). Every peer that connects and
 * identifies leaves a record (addresses, protocols, metadata), and libp2p forgets a record only
 * when it is read after expiring; with a persistent datastore the records outlive restarts. A
 * stranger rotating fresh peer ids would grow an anchor's store, on disk, without end.
 *
 * The cap follows the store's `peer:update` events: it remembers peers by last update (oldest
 * first) and, past `maxPeers`, deletes the least recently updated peer that is not connected. The
 * cost per update is O(1) plus one delete; the store is read whole once, at start.
 */
import type { PeerId } from '@libp2p/interface'

/** What the cap needs of a libp2p node. */
export interface PeerStoreCapHost {
  /** Every stored peer (in the store's order: it keeps no update time readable from outside). */
  storedPeers(): Promise<readonly PeerId[]>
  isConnected(peer: PeerId): boolean
  deletePeer(peer: PeerId): Promise<void>
  /** Calls `listener` for each peer added or changed in the store; returns the unsubscribe. */
  onUpdate(listener: (peer: PeerId) => void): () => void
}

/** A running cap. */
export interface PeerStoreCap {
  /** Peers the cap knows of in the store. */
  readonly size: number
  /** Peers deleted so far to stay under the bound. */
  readonly evicted: number
  /** Resolves once the store's existing records are counted (and trimmed). */
  readonly ready: Promise<void>
  stop(): void
}

/** Keeps at most `maxPeers` records in `host`'s peer store (see the module comment). */
export function capPeerStore(host: PeerStoreCapHost, maxPeers: number): PeerStoreCap {
  /** Peer id text → id, in order of last update (a Map keeps insertion order). */
  const known = new Map<string, PeerId>()
  let evicted = 0
  let stopped = false

  const touch = (peer: PeerId) => {
    const key = peer.toString()
    known.delete(key)
    known.set(key, peer)
  }
  const trim = () => {
    if (stopped) return
    // Connected peers are skipped (their record is in use) and stay where they are in the order.
    let overBy = known.size - maxPeers
    for (const [key, peer] of known) {
      if (overBy <= 0) break
      if (host.isConnected(peer)) continue
      known.delete(key)
      overBy -= 1
      evicted += 1
      host.deletePeer(peer).catch(() => undefined)
    }
  }
  const unsubscribe = host.onUpdate((peer) => {
    if (stopped) return
    touch(peer)
    if (known.size > maxPeers) trim()
  })
  const ready = host.storedPeers().then(
    (peers) => {
      // Those already stored go first, before any update seen meanwhile.
      const seen = [...known.values()]
      known.clear()
      for (const id of peers) touch(id)
      for (const peer of seen) touch(peer)
      trim()
    },
    () => undefined,
  )
  return {
    get size() {
      return known.size
    },
    get evicted() {
      return evicted
    },
    ready,
    stop() {
      stopped = true
      unsubscribe()
    },
  }
}
