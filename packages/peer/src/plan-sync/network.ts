/**
 * An Automerge-repo network adapter over libp2p streams (`/can-swarm/automerge/1.0.0`).
 *
 * Each pair of peers uses two one-way streams: each side dials one stream to the other and only
 * writes on it, and only reads from the stream the other side dialled. There is no dial race to
 * settle and no handshake: the repo peer id of a remote is its libp2p peer id, authenticated by
 * the connection's encryption, and is never read from the wire. Frames are length-prefixed
 * DAG-CBOR `{ t: type, d: documentId, b?: data }`; only document sync messages (`sync`,
 * `request`, `doc-unavailable`) travel, everything else the repo could say is dropped.
 *
 * An optional `inspect` hook sees every inbound message before the repo does. It may pass it on,
 * answer `doc-unavailable` in the repo's place, or refuse it: a refused message is dropped, the
 * peer's streams are closed and the peer is ignored for `banMs`.
 *
 * @example
 * ```ts
 * const adapter = new Libp2pNetworkAdapter({ libp2p })
 * const repo = new Repo({ network: [adapter], peerId: libp2p.peerId.toString() as PeerId })
 * ```
 */
import {
  type Message,
  NetworkAdapter,
  type PeerMetadata,
  type PeerId as RepoPeerId,
} from '@automerge/automerge-repo/slim'
import * as dagCbor from '@ipld/dag-cbor'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { type LengthPrefixedStream, lpStream } from '@libp2p/utils'
import { checkCborBudget } from '../core/cbor-budget.ts'

/** The protocol id of plan document sync. */
export const AUTOMERGE_PROTOCOL = '/can-swarm/automerge/1.0.0'

/** The message types that travel (document sync only). */
export const SYNC_MESSAGE_TYPES: ReadonlySet<string> = new Set(['sync', 'request', 'doc-unavailable'])

/** What the inspect hook decides for an inbound message. */
export type InspectVerdict =
  /** Hand it to the repo. */
  | { verdict: 'deliver' }
  /** Do not bother the repo; answer `doc-unavailable` (a document this peer does not share). */
  | { verdict: 'unavailable' }
  /** Drop it silently (e.g. `doc-unavailable` about a document this peer does not share). */
  | { verdict: 'ignore' }
  /** Drop it, close the peer's streams and ignore the peer for a while. */
  | { verdict: 'refuse'; reason: string }

/** Options of {@link Libp2pNetworkAdapter}. */
export interface Libp2pNetworkAdapterInit {
  libp2p: Libp2p
  /** @default AUTOMERGE_PROTOCOL */
  protocol?: string
  /** Largest frame, in bytes (a first sync sends a whole document in one message). @default 24 MiB */
  maxFrameBytes?: number
  /** Frames waiting per peer while its stream opens or drains; more closes the peer. @default 4 096 */
  maxQueuedFrames?: number
  /** How long a refused peer is ignored, in ms. @default 60 000 */
  banMs?: number
  /** Timeout of opening a stream, in ms. @default 10 000 */
  dialTimeoutMs?: number
  /** Sees every inbound message before the repo. @default deliver everything */
  inspect?: (message: Message) => InspectVerdict | Promise<InspectVerdict>
  /** Called when a message is refused, a peer's queue overflows or the protocol cannot be handled. */
  onError?: (error: Error) => void
}

/** Default of {@link Libp2pNetworkAdapterInit.maxFrameBytes}. */
export const DEFAULT_MAX_FRAME_BYTES = 24 * 1024 * 1024
/** Most peers ignored at once after refusals (the oldest is forgotten first). */
const MAX_BANNED_PEERS = 1024

interface PeerLink {
  remote: PeerId
  outbound: LengthPrefixedStream<Stream> | undefined
  outboundStream: Stream | undefined
  opening: Promise<void> | undefined
  queue: Uint8Array[]
  writing: boolean
  inbound: Set<Stream>
  announced: boolean
}

/** Error of a refused inbound message: names the peer and says why. */
export class PlanSyncRefusedError extends Error {
  readonly peer: string
  constructor(peer: string, reason: string) {
    super(`plan sync: refused a message from ${peer}: ${reason}`)
    this.name = 'PlanSyncRefusedError'
    this.peer = peer
  }
}

export class Libp2pNetworkAdapter extends NetworkAdapter {
  readonly #libp2p: Libp2p
  readonly #protocol: string
  readonly #maxFrameBytes: number
  readonly #maxQueuedFrames: number
  readonly #banMs: number
  readonly #dialTimeoutMs: number
  readonly #inspect: ((message: Message) => InspectVerdict | Promise<InspectVerdict>) | undefined
  readonly #onError: (error: Error) => void
  readonly #links = new Map<string, PeerLink>()
  readonly #banned = new Map<string, number>()
  #ready = false
  #readyResolvers = Promise.withResolvers<void>()
  #connected = false

  constructor(init: Libp2pNetworkAdapterInit) {
    super()
    this.#libp2p = init.libp2p
    this.#protocol = init.protocol ?? AUTOMERGE_PROTOCOL
    this.#maxFrameBytes = init.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    this.#maxQueuedFrames = init.maxQueuedFrames ?? 4096
    this.#banMs = init.banMs ?? 60_000
    this.#dialTimeoutMs = init.dialTimeoutMs ?? 10_000
    this.#inspect = init.inspect
    this.#onError = init.onError ?? (() => undefined)
  }

  isReady(): boolean {
    return this.#ready
  }

  whenReady(): Promise<void> {
    return this.#readyResolvers.promise
  }

  /** Peers with an open link, as repo peer ids. */
  get peers(): string[] {
    return [...this.#links.values()].filter((link) => link.announced).map((link) => link.remote.toString())
  }

  connect(peerId: RepoPeerId, peerMetadata?: PeerMetadata): void {
    this.peerId = peerId
    if (peerMetadata) this.peerMetadata = peerMetadata
    if (this.#connected) return
    this.#connected = true
    this.#libp2p.addEventListener('peer:identify', this.#onIdentify)
    this.#libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    void this.#libp2p
      .handle(this.#protocol, (stream, connection) => this.#accept(stream, connection.remotePeer), {
        maxInboundStreams: 4,
        maxOutboundStreams: 4,
      })
      .then(async () => {
        this.#ready = true
        this.#readyResolvers.resolve()
        for (const connection of this.#libp2p.getConnections()) {
          if (await this.#speaks(connection.remotePeer)) this.#open(connection.remotePeer)
        }
      })
      .catch((error: unknown) => this.#onError(asError(error)))
  }

  send(message: Message): void {
    if (!SYNC_MESSAGE_TYPES.has(message.type) || message.documentId === undefined) return
    const link = this.#links.get(message.targetId)
    if (!link) return
    this.#enqueue(link, encodePlanSyncFrame(message.type, message.documentId, message.data))
  }

  disconnect(): void {
    if (!this.#connected) return
    this.#connected = false
    this.#libp2p.removeEventListener('peer:identify', this.#onIdentify)
    this.#libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
    void this.#libp2p.unhandle(this.#protocol).catch(() => undefined)
    for (const key of [...this.#links.keys()]) this.#drop(key)
    this.emit('close')
  }

  #onIdentify = (event: CustomEvent<{ peerId: PeerId; protocols: string[] }>): void => {
    if (event.detail.protocols.includes(this.#protocol)) this.#open(event.detail.peerId)
  }

  #onDisconnect = (event: CustomEvent<PeerId>): void => {
    this.#drop(event.detail.toString())
  }

  async #speaks(peer: PeerId): Promise<boolean> {
    try {
      return (await this.#libp2p.peerStore.get(peer)).protocols.includes(this.#protocol)
    } catch {
      return false
    }
  }

  #isBanned(key: string): boolean {
    const until = this.#banned.get(key)
    if (until === undefined) return false
    if (Date.now() < until) return true
    this.#banned.delete(key)
    return false
  }

  #link(remote: PeerId): PeerLink {
    const key = remote.toString()
    let link = this.#links.get(key)
    if (!link) {
      link = {
        remote,
        outbound: undefined,
        outboundStream: undefined,
        opening: undefined,
        queue: [],
        writing: false,
        inbound: new Set(),
        announced: false,
      }
      this.#links.set(key, link)
    }
    if (!link.announced) {
      link.announced = true
      this.emit('peer-candidate', { peerId: key as RepoPeerId, peerMetadata: { isEphemeral: true } })
    }
    return link
  }

  /** Opens (once) the stream this peer writes to `remote` on. */
  #open(remote: PeerId): void {
    const key = remote.toString()
    if (!this.#connected || this.#isBanned(key) || key === this.#libp2p.peerId.toString()) return
    const link = this.#link(remote)
    if (link.outbound || link.opening) return
    link.opening = (async () => {
      try {
        const stream = await this.#libp2p.dialProtocol(remote, this.#protocol, {
          signal: AbortSignal.timeout(this.#dialTimeoutMs),
        })
        if (this.#links.get(key) !== link) {
          stream.abort(new Error('plan sync link closed while opening'))
          return
        }
        link.outboundStream = stream
        link.outbound = lpStream(stream, { maxDataLength: this.#maxFrameBytes })
        stream.addEventListener('close', () => {
          if (link.outboundStream === stream) this.#drop(key)
        })
        void this.#flush(link)
      } catch {
        // Not reachable for this protocol now (gone, or only through a limited relay connection):
        // the next identify tries again.
        this.#drop(key)
      } finally {
        link.opening = undefined
      }
    })()
  }

  #enqueue(link: PeerLink, frame: Uint8Array): void {
    if (link.queue.length >= this.#maxQueuedFrames) {
      this.#onError(
        new Error(`plan sync: more than ${this.#maxQueuedFrames} frames queued for ${link.remote}`),
      )
      this.#drop(link.remote.toString())
      return
    }
    link.queue.push(frame)
    void this.#flush(link)
  }

  async #flush(link: PeerLink): Promise<void> {
    if (link.writing || !link.outbound) return
    link.writing = true
    try {
      while (link.queue.length > 0 && link.outbound) {
        await link.outbound.write(link.queue.shift()!)
      }
    } catch {
      // The stream closed under the write (the peer left): the repo learns it from the drop.
      this.#drop(link.remote.toString())
    } finally {
      link.writing = false
    }
  }

  /** Reads the frames `remote` writes on a stream it opened. */
  #accept(stream: Stream, remote: PeerId): void {
    const key = remote.toString()
    if (!this.#connected || this.#isBanned(key)) {
      stream.abort(new Error('plan sync: not accepting this peer'))
      return
    }
    const link = this.#link(remote)
    link.inbound.add(stream)
    this.#open(remote)
    void (async () => {
      const framed = lpStream(stream, {
        maxDataLength: this.#maxFrameBytes,
        maxBufferSize: this.#maxFrameBytes + 16,
      })
      try {
        for (;;) {
          const frame = await framed.read()
          const message = decodePlanSyncFrame(frame.subarray(), key, String(this.peerId))
          const verdict = (await this.#inspect?.(message)) ?? { verdict: 'deliver' }
          if (verdict.verdict === 'refuse') {
            this.#refuse(key, verdict.reason)
            return
          }
          if (verdict.verdict === 'ignore') continue
          if (verdict.verdict === 'unavailable') {
            this.send({
              type: 'doc-unavailable',
              senderId: String(this.peerId) as RepoPeerId,
              targetId: key as RepoPeerId,
              documentId: message.documentId!,
            })
            continue
          }
          this.emit('message', message)
        }
      } catch (error) {
        if (link.inbound.has(stream) && this.#links.get(key) === link) {
          if (error instanceof PlanSyncFrameError || OVERSIZED_FRAME_ERRORS.has(asError(error).name)) {
            this.#refuse(key, asError(error).message)
          } else link.inbound.delete(stream)
        }
      }
    })()
  }

  #refuse(key: string, reason: string): void {
    this.#onError(new PlanSyncRefusedError(key, reason))
    if (this.#banned.size >= MAX_BANNED_PEERS) this.#banned.delete(this.#banned.keys().next().value!)
    this.#banned.set(key, Date.now() + this.#banMs)
    this.#drop(key)
  }

  /** Forgets a peer: closes its streams and tells the repo it left. */
  #drop(key: string): void {
    const link = this.#links.get(key)
    if (!link) return
    this.#links.delete(key)
    link.queue.length = 0
    link.outboundStream?.abort(new Error('plan sync link closed'))
    for (const stream of link.inbound) stream.abort(new Error('plan sync link closed'))
    if (link.announced) this.emit('peer-disconnected', { peerId: key as RepoPeerId })
  }
}

/** An inbound frame that is not a well-formed sync message: its sender is refused. */
export class PlanSyncFrameError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PlanSyncFrameError'
  }
}

/** Errors of `lpStream` that mean the remote wrote a frame over the limit. */
const OVERSIZED_FRAME_ERRORS: ReadonlySet<string> = new Set([
  'InvalidDataLengthError',
  'InvalidDataLengthLengthError',
  'InvalidMessageLengthError',
  'StreamBufferError',
])

/** The frame of one repo message: DAG-CBOR `{ t: type, d: documentId, b?: data }`. */
export function encodePlanSyncFrame(
  type: string,
  documentId: string,
  data: Uint8Array | undefined,
): Uint8Array {
  return dagCbor.encode(data === undefined ? { t: type, d: documentId } : { t: type, d: documentId, b: data })
}

/** Decodes a frame into a repo message from `sender` to `target`; throws {@link PlanSyncFrameError}. */
export function decodePlanSyncFrame(bytes: Uint8Array, sender: string, target: string): Message {
  let value: { t?: unknown; d?: unknown; b?: unknown }
  try {
    // A frame is a map of three fields: its shape is checked before anything is built.
    checkCborBudget(bytes, { maxItems: 8, maxDepth: 1 }, 'frame')
    value = dagCbor.decode(bytes)
  } catch (error) {
    throw new PlanSyncFrameError(`undecodable frame (${asError(error).message})`)
  }
  if (typeof value !== 'object' || value === null) throw new PlanSyncFrameError('a frame must be a map')
  const { t: type, d: documentId, b: data } = value
  if (typeof type !== 'string' || !SYNC_MESSAGE_TYPES.has(type))
    throw new PlanSyncFrameError('unknown message type')
  if (typeof documentId !== 'string' || documentId.length > 64)
    throw new PlanSyncFrameError('bad document id')
  if (type === 'doc-unavailable') {
    return { type, senderId: sender as RepoPeerId, targetId: target as RepoPeerId, documentId } as Message
  }
  if (!(data instanceof Uint8Array)) throw new PlanSyncFrameError(`a ${type} message must carry bytes`)
  return { type, senderId: sender as RepoPeerId, targetId: target as RepoPeerId, documentId, data } as Message
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}
