/**
 * The verifier manifests an anchor has accepted (`PUT /api/pool/<did>`): each verified against its
 * signer's key, the newest per verifier kept (a manifest must raise `seq`), all of them in
 * `<data>/manifests.json`, written atomically so a crash leaves the previous set or the new one.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { PoolManifest } from '../../../peer/src/core/economy/pool.ts'
import { CanSwarmError } from '../../../peer/src/core/errors.ts'
import { type VerifierManifest, verifyManifest } from '../../../peer/src/crypto/manifest.ts'

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
  #byDid = new Map<string, VerifierManifest>()
  #version = 0

  private constructor(path: string) {
    this.path = path
  }

  /** Opens the store in `dataDir`, re-verifying every manifest kept there. */
  static async open(dataDir: string): Promise<ManifestStore> {
    const store = new ManifestStore(join(dataDir, 'manifests.json'))
    if (existsSync(store.path)) {
      const kept = JSON.parse(readFileSync(store.path, 'utf8')) as unknown[]
      for (const value of kept) {
        const manifest = await verifyManifest(value)
        store.#byDid.set(manifest.did, manifest)
      }
    }
    return store
  }

  /** Changes whenever a manifest is accepted. */
  get version(): number {
    return this.#version
  }

  /** The newest manifest of every verifier (without signatures: they were checked). */
  all(): PoolManifest[] {
    return [...this.#byDid.values()].map(({ did, org, asn, region, stake, seq }) => ({
      did,
      org,
      asn,
      region,
      stake,
      seq,
    }))
  }

  /** Verifies and keeps a manifest sent for `did`, or says why not. */
  async put(did: string, value: unknown): Promise<ManifestRefusal | undefined> {
    let manifest: VerifierManifest
    try {
      manifest = await verifyManifest(value)
    } catch (error) {
      if (!(error instanceof CanSwarmError)) throw error
      return { status: 400, error: error.message, ...(error.field ? { field: error.field } : {}) }
    }
    if (manifest.did !== did) {
      return { status: 400, error: `the manifest is signed by ${manifest.did}, not ${did}`, field: 'did' }
    }
    const held = this.#byDid.get(did)
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
    const next = new Map(this.#byDid).set(did, manifest)
    const temporary = `${this.path}.tmp-${process.pid}`
    writeFileSync(temporary, `${JSON.stringify([...next.values()])}\n`, { mode: 0o600, flush: true })
    renameSync(temporary, this.path)
    this.#byDid = next
    this.#version += 1
    return undefined
  }
}
