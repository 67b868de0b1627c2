/**
 * The verifier manifests an anchor has accepted (`PUT /api/pool/<did>`): each verified against its
 * signer's key and this network's id, the newest per verifier kept (a manifest must raise `seq`)
 * with the anchor's clock when it accepted it (the ledger applies stake changes in the anchors'
 * order, A7), all of them in `<data>/manifests.json`, written atomically and durably so a crash
 * leaves the previous set or the new one. A manifest mints nothing.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AcceptedManifest } from '../../../peer/src/core/economy/derive.ts'
import { CanSwarmError } from '../../../peer/src/core/errors.ts'
import { type VerifierManifest, verifyManifest } from '../../../peer/src/crypto/manifest.ts'
import { writeFileDurably } from '../storage/durable.ts'

/** A manifest as kept: the signed manifest and when this anchor accepted it. */
interface Kept {
  manifest: VerifierManifest
  atMs: number
}

/** Why a manifest was refused, with the HTTP status that says so. */
export interface ManifestRefusal {
  status: number
  error: string
  field?: string
}

/** Most verifiers an anchor keeps manifests of (the verifier list's own bound). */
export const MAX_MANIFESTS = 10_000

export class ManifestStore {
  readonly path: string
  readonly network: string
  #byDid = new Map<string, Kept>()
  #version = 0
  #clock: () => number

  private constructor(path: string, network: string, clock: () => number) {
    this.path = path
    this.network = network
    this.#clock = clock
  }

  /** Opens the store in `dataDir`, re-verifying every manifest kept there against `network`. */
  static async open(
    dataDir: string,
    network: string,
    clock: () => number = Date.now,
  ): Promise<ManifestStore> {
    const store = new ManifestStore(join(dataDir, 'manifests.json'), network, clock)
    if (existsSync(store.path)) {
      const kept = JSON.parse(readFileSync(store.path, 'utf8')) as Array<{ manifest: unknown; atMs: number }>
      for (const value of kept) {
        const manifest = await verifyManifest(value.manifest, network)
        store.#byDid.set(manifest.did, { manifest, atMs: Number(value.atMs) || 0 })
      }
    }
    return store
  }

  /** Changes whenever a manifest is accepted. */
  get version(): number {
    return this.#version
  }

  /** The newest manifest of every verifier (without signatures: they were checked), with when it was accepted. */
  all(): AcceptedManifest[] {
    return [...this.#byDid.values()].map(({ manifest: { did, org, asn, region, stake, seq }, atMs }) => ({
      did,
      org,
      asn,
      region,
      stake,
      seq,
      atMs,
    }))
  }

  /** Verifies and keeps a manifest sent for `did`, or says why not. */
  async put(did: string, value: unknown): Promise<ManifestRefusal | undefined> {
    let manifest: VerifierManifest
    try {
      manifest = await verifyManifest(value, this.network)
    } catch (error) {
      if (!(error instanceof CanSwarmError)) throw error
      return { status: 400, error: error.message, ...(error.field ? { field: error.field } : {}) }
    }
    if (manifest.did !== did) {
      return { status: 400, error: `the manifest is signed by ${manifest.did}, not ${did}`, field: 'did' }
    }
    const held = this.#byDid.get(did)?.manifest
    if (!held && this.#byDid.size >= MAX_MANIFESTS) {
      return { status: 507, error: `the anchor holds the most manifests it keeps (${MAX_MANIFESTS})` }
    }
    if (held && manifest.seq <= held.seq) {
      return {
        status: 409,
        error: `seq ${manifest.seq} is not above the manifest held (seq ${held.seq})`,
        field: 'seq',
      }
    }
    const next = new Map(this.#byDid).set(did, { manifest, atMs: Math.floor(this.#clock()) })
    writeFileDurably(this.path, `${JSON.stringify([...next.values()])}\n`)
    this.#byDid = next
    this.#version += 1
    return undefined
  }
}
