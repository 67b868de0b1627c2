/**
 * Browser stand-in for `@libp2p/mdns` (multicast DNS needs UDP sockets, which browsers lack).
 * `createNetwork` imports mdns statically; this alias keeps Node's `multicast-dns` out of the
 * bundle. Browsers never enable mdns (the option defaults to false); asking for it fails loudly.
 */
export function mdns(): never {
  throw new Error('mdns discovery is not available in browsers: leave the mdns option off')
}
