/**
 * The verifier manifests an anchor has accepted (`PUT /api/pool/<did>`): each verified against its
 * signer's key and this network's id, the newest per verifier kept (a manifest must raise `seq`)
 * with the anchor's clock when it accepted it (the ledger applies stake changes in the anchors'
 * order, A7). A manifest mints nothing.
 *
 * Kept in `<data>/manifests.jsonl`, one `{ manifest, atMs }` line per accepted manifest, appended
 * and fsync'd before the manifest counts (concurrent puts share an fsync): a put costs one line,
 * whatever the number of verifiers. Opening reads every line (a torn or damaged one is skipped, a
 * later one for the same verifier wins) and rewrites the file compacted — atomically, so a crash
 * leaves the old file or the new one — when it holds superseded or damaged lines; so does a put
 * that finds more than twice as many lines as verifiers (and no other put in flight). The single
 * `<data>/manifests.json` of earlier versions is read once and folded in.
 */
import { existsSync, readFileSync, unlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { AcceptedManifest } from '@can-swarm/peer'
import { CanSwarmError, type VerifierManifest, verifyManifest } from '@can-swarm/peer'
import { DurableAppendFile, fsyncDirectory, writeFileDurably } from '../storage/durable.ts'

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

/** Lines a manifest file may hold beyond twice its verifiers before a put compacts it. */
const COMPACT_SLACK = 1024

export class ManifestStore {
  readonly path: string
  readonly network: string
  #byDid = new Map<string, Kept>()
  /** The highest seq accepted or being written, per verifier. */
  #seqs = new Map<string, number>()
  #version = 0
  #clock: () => number
  #file: DurableAppendFile
  #lines: number
  #writing = 0

  private constructor(
    path: string,
    network: string,
    clock: () => number,
    byDid: Map<string, Kept>,
    lines: number,
  ) {
    this.path = path
    this.network = network
    this.#clock = clock
    this.#byDid = byDid
    for (const [did, { manifest }] of byDid) this.#seqs.set(did, manifest.seq)
    this.#lines = lines
    this.#file = new DurableAppendFile(path)
  }

  /** Opens the store in `dataDir`, re-verifying every manifest kept there against `network`. */
  static async open(
    dataDir: string,
    network: string,
    clock: () => number = Date.now,
  ): Promise<ManifestStore> {
    const path = join(dataDir, 'manifests.jsonl')
    const legacy = join(dataDir, 'manifests.json')
    const byDid = new Map<string, Kept>()
    let read = 0
    const keep = async (value: { manifest?: unknown; atMs?: unknown }) => {
      const manifest = await verifyManifest(value.manifest, network)
      const held = byDid.get(manifest.did)
      if (!held || manifest.seq > held.manifest.seq)
        byDid.set(manifest.did, { manifest, atMs: Number(value.atMs) || 0 })
    }
    if (existsSync(legacy)) {
      for (const value of JSON.parse(readFileSync(legacy, 'utf8')) as Array<{
        manifest: unknown
        atMs: number
      }>)
        await keep(value)
    }
    let clean = !existsSync(legacy)
    if (existsSync(path)) {
      const text = readFileSync(path, 'utf8')
      // A last line without its newline is a torn append (never acknowledged).
      if (text.length > 0 && !text.endsWith('\n')) clean = false
      for (const line of text.split('\n').slice(0, -1)) {
        read += 1
        try {
          await keep(JSON.parse(line) as { manifest?: unknown; atMs?: unknown })
        } catch {
          clean = false // damaged (a line a crash cut short, a bit flip): its verifier's earlier line stands
        }
      }
    }
    if (!clean || read > byDid.size) {
      writeFileDurably(path, linesOf(byDid.values()))
      read = byDid.size
    }
    if (existsSync(legacy)) {
      unlinkSync(legacy)
      fsyncDirectory(dirname(legacy))
    }
    return new ManifestStore(path, network, clock, byDid, read)
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
    const held = this.#seqs.get(did)
    if (held === undefined && this.#seqs.size >= MAX_MANIFESTS) {
      return { status: 507, error: `the anchor holds the most manifests it keeps (${MAX_MANIFESTS})` }
    }
    if (held !== undefined && manifest.seq <= held) {
      return {
        status: 409,
        error: `seq ${manifest.seq} is not above the manifest held (seq ${held})`,
        field: 'seq',
      }
    }
    const kept: Kept = { manifest, atMs: Math.floor(this.#clock()) }
    this.#seqs.set(did, manifest.seq)
    this.#writing += 1
    try {
      await this.#file.append(linesOf([kept]))
    } catch (error) {
      // The file failed: this put and every later one are refused, so the seq it held goes back.
      const before = this.#byDid.get(did)
      if (before) this.#seqs.set(did, before.manifest.seq)
      else this.#seqs.delete(did)
      return { status: 503, error: `the anchor could not store the manifest (${(error as Error).message})` }
    } finally {
      this.#writing -= 1
    }
    this.#byDid.set(did, kept)
    this.#lines += 1
    this.#version += 1
    if (this.#writing === 0 && this.#lines > 2 * this.#byDid.size + COMPACT_SLACK) this.#compact()
    return undefined
  }

  /** Lines in the file now (for tests and status). */
  get lines(): number {
    return this.#lines
  }

  /** fsyncs and closes the file. */
  close(): void {
    this.#file.close()
  }

  /** Rewrites the file with one line per verifier (nothing is being appended: every line is in memory). */
  #compact(): void {
    this.#file.close()
    writeFileDurably(this.path, linesOf(this.#byDid.values()))
    this.#file = new DurableAppendFile(this.path)
    this.#lines = this.#byDid.size
  }
}

/** The file text of `kept` manifests, one JSON line each. */
function linesOf(kept: Iterable<Kept>): string {
  let text = ''
  for (const value of kept) text += `${JSON.stringify(value)}\n`
  return text
}
