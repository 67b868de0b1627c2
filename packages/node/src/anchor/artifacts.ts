/**
 * STAND-IN artifact store of the anchor until Helia arrives (later part of the libp2p issue):
 * content-addressed blobs in `<data>/artifacts/<cid>`, uploaded by peers over HTTP
 * (`PUT /api/artifacts/<cid>`) and served back (`GET /api/artifacts/<cid>`). An upload is kept
 * only when its bytes hash to the CID in the path (raw CIDv1, SHA-256, as `artifactCid`), so the
 * anchor pins what peers made without being able to forge it; readers check the CID again.
 * Bounded: one artifact ≤ `maxArtifactBytes`, all of them ≤ `maxTotalBytes`.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { artifactCid } from '../../../peer/src/core/artifacts.ts'

/** Why an upload was refused, with the HTTP status that says so. */
export interface ArtifactRefusal {
  status: number
  error: string
}

/** Options of {@link DiskArtifactStore}. */
export interface DiskArtifactStoreOptions {
  /** Largest artifact accepted, in bytes. @default 4 MiB */
  maxArtifactBytes?: number
  /** Most bytes kept in all, in bytes. @default 256 MiB */
  maxTotalBytes?: number
}

const CID_PATTERN = /^b[a-z2-7]{20,120}$/

/** Content-addressed blobs on disk. */
export class DiskArtifactStore {
  readonly dir: string
  readonly maxArtifactBytes: number
  readonly maxTotalBytes: number
  #totalBytes = 0

  constructor(dataDir: string, options: DiskArtifactStoreOptions = {}) {
    this.dir = join(dataDir, 'artifacts')
    this.maxArtifactBytes = options.maxArtifactBytes ?? 4 * 1024 * 1024
    this.maxTotalBytes = options.maxTotalBytes ?? 256 * 1024 * 1024
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    for (const name of readdirSync(this.dir)) {
      if (CID_PATTERN.test(name)) this.#totalBytes += statSync(join(this.dir, name)).size
    }
  }

  /** True when `cid` looks like an artifact CID (base32 CIDv1). */
  static isCid(cid: string): boolean {
    return CID_PATTERN.test(cid)
  }

  get(cid: string): Uint8Array | undefined {
    if (!CID_PATTERN.test(cid)) return undefined
    const path = join(this.dir, cid)
    return existsSync(path) ? new Uint8Array(readFileSync(path)) : undefined
  }

  /** Keeps `bytes` under `cid`, or says why not. Idempotent. */
  put(cid: string, bytes: Uint8Array): ArtifactRefusal | undefined {
    if (!CID_PATTERN.test(cid)) return { status: 400, error: `"${cid.slice(0, 130)}" is not an artifact CID` }
    if (bytes.length > this.maxArtifactBytes) {
      return { status: 413, error: `artifact of ${bytes.length} bytes exceeds ${this.maxArtifactBytes}` }
    }
    const actual = artifactCid(bytes)
    if (actual !== cid) return { status: 422, error: `the bytes hash to ${actual}, not ${cid}` }
    const path = join(this.dir, cid)
    if (existsSync(path)) return undefined
    if (this.#totalBytes + bytes.length > this.maxTotalBytes) {
      return { status: 507, error: `the anchor's artifact store is full (${this.maxTotalBytes} bytes)` }
    }
    const temporary = `${path}.tmp-${process.pid}`
    writeFileSync(temporary, bytes, { mode: 0o600 })
    renameSync(temporary, path)
    this.#totalBytes += bytes.length
    return undefined
  }
}
