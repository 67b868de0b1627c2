/** Helpers of the network tests: a peer's TCP address and polling until something holds. */
import type { Peer } from '@can-swarm/peer'

/** The peer's plain TCP multiaddr (with /p2p/). */
export function tcpOf(peer: Peer): string {
  return peer.network.libp2p
    .getMultiaddrs()
    .map(String)
    .find((address) => address.includes('/tcp/') && !address.includes('/ws'))!
}

/** Polls `probe` every 50 ms until it returns a value; fails after `timeoutMs`, naming `what`. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Whether a WebSocket to `url` sending `origin` (none when undefined) opens. */
export function webSocketOpens(url: string, origin: string | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, (origin === undefined ? {} : { headers: { origin } }) as never)
    socket.onopen = () => {
      socket.close()
      resolve(true)
    }
    socket.onerror = () => resolve(false)
  })
}
