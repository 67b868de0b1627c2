/**
 * Artifacts are content-addressed blobs (docs/PROTOCOL.md §2: blobs never travel inside envelopes).
 * Their id is a CIDv1 with the `raw` codec and a SHA-256 multihash — the same id Helia gives a
 * single-block raw artifact, so ids stay valid when the artifact store becomes IPFS.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import type { Cid } from './types.ts'

const RAW_CODEC = 0x55
const SHA2_256 = 0x12

/** The CID of an artifact's bytes. */
export function artifactCid(bytes: Uint8Array): Cid {
  return CID.createV1(RAW_CODEC, Digest.create(SHA2_256, sha256(bytes))).toString()
}

/** Where a peer keeps and finds artifacts (in memory, on disk, or Helia). */
export interface ArtifactStore {
  /** Stores bytes; returns their CID. Idempotent. */
  put(bytes: Uint8Array, options?: { signal?: AbortSignal }): Promise<Cid>
  /** The bytes of a CID, or undefined when no reachable peer holds them. */
  get(cid: Cid, options?: { signal?: AbortSignal }): Promise<Uint8Array | undefined>
}

/** An in-memory artifact store that checks what it is given. */
export class MemoryArtifactStore implements ArtifactStore {
  #blobs = new Map<Cid, Uint8Array>()

  async put(bytes: Uint8Array): Promise<Cid> {
    return this.putSync(bytes)
  }

  putSync(bytes: Uint8Array): Cid {
    const cid = artifactCid(bytes)
    if (!this.#blobs.has(cid)) this.#blobs.set(cid, bytes.slice())
    return cid
  }

  async get(cid: Cid): Promise<Uint8Array | undefined> {
    return this.#blobs.get(cid)
  }

  get size(): number {
    return this.#blobs.size
  }
}
