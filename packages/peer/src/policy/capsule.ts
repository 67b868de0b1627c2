/**
 * Policy capsules (docs/PROTOCOL.md §10): a compiled policy with what a stranger needs to trust it — the
 * WASM bytes and their hash, the engine hash, the input schema version, the conformance vector
 * (ids of the conformance tests it passed) with the vectors themselves, and the author's Ed25519
 * signature over all of that.
 *
 * Distribution: a capsule is a content-addressed artifact, its canonical DAG-CBOR encoding stored
 * like any other artifact (raw CID). Its artifact CID is the capsule hash that envelopes carry in
 * their `policy` field. A peer that meets an unknown capsule hash fetches the artifact and accepts
 * it only when the bytes hash to the CID, the author is trusted, the signature verifies, and every
 * conformance vector passes on the peer's own engine. No new envelope kind is needed, and the
 * capsule's bytes never travel inside envelopes (docs/PROTOCOL.md §2).
 *
 * @example
 * ```ts
 * const capsule = await createCapsule({ wasm, manifest }, author)
 * const bytes = encodeCapsule(capsule)
 * const registry = new CapsuleRegistry({ trustedAuthors: [author.did] })
 * const accepted = await registry.accept(bytes)   // verifies, runs the vectors
 * accepted.hash                                   // goes into envelope.policy
 * ```
 */
import * as dagCbor from '@ipld/dag-cbor'
import { type ArtifactStore, artifactCid } from '../core/artifacts.ts'
import { checkCborBudget } from '../core/cbor-budget.ts'
import { encodeCanonical, publicKeyFromDid, sha256Hex } from '../core/codec.ts'
import { CapsuleInvalidError, InvalidArgumentError } from '../core/errors.ts'
import type { Cid, Did } from '../core/types.ts'
import { type Identity, verifySignature } from '../crypto/ed25519.ts'
import { loadPolicyEngine, type PolicyEngine } from './engine.ts'

/** Format tag of capsules written by this code. */
export const CAPSULE_FORMAT = 'can-swarm/policy-capsule@1'
/** Largest encoded capsule accepted, in bytes. */
export const MAX_CAPSULE_BYTES = 8 * 1024 * 1024
/** Most conformance vectors a capsule may carry. */
export const MAX_CONFORMANCE_VECTORS = 4096

/** One conformance vector: an input and the decision the policy must give. */
export interface ConformanceVector {
  /** Stable id (`conf-kind-001`), the name of its Rego unit test. */
  id: string
  input: unknown
  /**
   * The decision: allowed, the set of denying rules, and (recorded by the build) the gas units the
   * evaluation uses and its eval digest — a peer whose engine counts other units or reaches
   * another digest fails the vector.
   */
  expect: { allowed: boolean; rules: string[]; gasUsed?: number; evalDigest?: string }
}

/** The manifest `npm run policy:build` writes beside the WASM (`packages/peer/policy-bundle/base.json`). */
export interface BundleManifest {
  format: string
  name: string
  entrypoint: string
  schemaVersion: number
  gasLimit: number
  policyHash: string
  sourceHash: string
  engine: Record<string, string>
  engineHash: string
  conformance: string[]
  vectors: ConformanceVector[]
}

/** Everything the author signs. */
export interface CapsuleBody {
  format: typeof CAPSULE_FORMAT
  name: string
  entrypoint: string
  schemaVersion: number
  gasLimit: number
  /** SHA-256 (hex) of `wasm`. */
  policyHash: string
  /** The gas-instrumented policy module. */
  wasm: Uint8Array
  /** What compiled and instruments the policy (opa version, opa-wasm version, gas model). */
  engine: Record<string, string>
  /** SHA-256 (hex) of the canonical JSON of `engine`. */
  engineHash: string
  /** Ids of the conformance tests the policy passed, sorted. */
  conformance: string[]
  vectors: ConformanceVector[]
  author: Did
}

/** A signed capsule. */
export interface PolicyCapsule extends CapsuleBody {
  /** Ed25519 signature of `author` over the canonical encoding of the {@link CapsuleBody}. */
  sig: Uint8Array
}

/** JSON with keys sorted at every level, without spaces (the engine hash input). */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>
    return `{${Object.keys(record)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`)
      .join(',')}}`
  }
  return JSON.stringify(value)
}

/** SHA-256 (hex) of an engine description, as the build computes it. */
export function engineHashOf(engine: Record<string, string>): string {
  return sha256Hex(new TextEncoder().encode(`${canonicalJson(engine)}\n`))
}

function bodyOf(capsule: PolicyCapsule): CapsuleBody {
  const { sig: _sig, ...body } = capsule
  return body
}

/**
 * Creates and signs a capsule from a built bundle.
 *
 * @throws {InvalidArgumentError} field `wasm` when the bytes do not match the manifest's policy hash.
 */
export async function createCapsule(
  bundle: { wasm: Uint8Array; manifest: BundleManifest },
  author: Identity,
): Promise<PolicyCapsule> {
  const { wasm, manifest } = bundle
  if (sha256Hex(wasm) !== manifest.policyHash) {
    throw new InvalidArgumentError(
      'the WASM bytes do not match the manifest policyHash: rebuild the bundle',
      'wasm',
    )
  }
  const body: CapsuleBody = {
    format: CAPSULE_FORMAT,
    name: manifest.name,
    entrypoint: manifest.entrypoint,
    schemaVersion: manifest.schemaVersion,
    gasLimit: manifest.gasLimit,
    policyHash: manifest.policyHash,
    wasm: wasm.slice(),
    engine: { ...manifest.engine },
    engineHash: manifest.engineHash,
    conformance: [...manifest.conformance].sort(),
    vectors: manifest.vectors.map((v) => ({ id: v.id, input: v.input, expect: { ...v.expect } })),
    author: author.did,
  }
  const sig = await author.sign(encodeCanonical(body))
  return { ...body, sig }
}

/** The canonical DAG-CBOR bytes of a capsule (what is stored as its artifact). */
export function encodeCapsule(capsule: PolicyCapsule): Uint8Array {
  return encodeCanonical(capsule)
}

/** The capsule hash: the artifact CID of its encoding, carried in envelopes' `policy` field. */
export function capsuleHashOf(capsule: PolicyCapsule | Uint8Array): Cid {
  return artifactCid(capsule instanceof Uint8Array ? capsule : encodeCapsule(capsule))
}

const isString = (v: unknown): v is string => typeof v === 'string'

/**
 * Decodes capsule bytes and checks their shape (not the signature: see {@link verifyCapsule}).
 *
 * @throws {CapsuleInvalidError} naming the field that is wrong.
 */
export function decodeCapsule(bytes: Uint8Array): PolicyCapsule {
  if (bytes.length > MAX_CAPSULE_BYTES) {
    throw new CapsuleInvalidError(
      `${bytes.length} bytes is over the limit of ${MAX_CAPSULE_BYTES}`,
      'capsule',
    )
  }
  let value: unknown
  try {
    checkCborBudget(bytes, { maxItems: 100_000, maxDepth: 16 }, 'capsule')
    value = dagCbor.decode(bytes)
  } catch (error) {
    throw new CapsuleInvalidError(`not DAG-CBOR within budget (${String(error)})`, 'capsule')
  }
  const c = value as Partial<PolicyCapsule> | null
  const fail = (field: string, what: string): never => {
    throw new CapsuleInvalidError(`${field} ${what}`, field)
  }
  if (!c || typeof c !== 'object') return fail('capsule', 'is not a map')
  if (c.format !== CAPSULE_FORMAT) fail('format', `must be ${CAPSULE_FORMAT}`)
  for (const field of ['name', 'entrypoint', 'policyHash', 'engineHash', 'author'] as const)
    if (!isString(c[field])) fail(field, 'must be a string')
  for (const field of ['schemaVersion', 'gasLimit'] as const)
    if (!Number.isSafeInteger(c[field]) || (c[field] as number) < 1) fail(field, 'must be a positive integer')
  if (!(c.wasm instanceof Uint8Array)) fail('wasm', 'must be bytes')
  if (!(c.sig instanceof Uint8Array)) fail('sig', 'must be bytes')
  if (!c.engine || typeof c.engine !== 'object' || !Object.values(c.engine).every(isString))
    fail('engine', 'must map names to strings')
  if (!Array.isArray(c.conformance) || !c.conformance.every(isString))
    fail('conformance', 'must be a list of ids')
  if (!Array.isArray(c.vectors) || c.vectors.length > MAX_CONFORMANCE_VECTORS)
    fail('vectors', `must be a list of at most ${MAX_CONFORMANCE_VECTORS}`)
  for (const [index, v] of (c.vectors as ConformanceVector[]).entries()) {
    if (
      !v ||
      !isString(v.id) ||
      typeof v.expect?.allowed !== 'boolean' ||
      !Array.isArray(v.expect.rules) ||
      !(v.expect.gasUsed === undefined || Number.isSafeInteger(v.expect.gasUsed)) ||
      !(v.expect.evalDigest === undefined || isString(v.expect.evalDigest))
    )
      fail(`vectors.${index}`, 'must be {id, input, expect: {allowed, rules, gasUsed?, evalDigest?}}')
  }
  const keys = Object.keys(c).sort().join(',')
  const expected = [
    'author',
    'conformance',
    'engine',
    'engineHash',
    'entrypoint',
    'format',
    'gasLimit',
    'name',
    'policyHash',
    'schemaVersion',
    'sig',
    'vectors',
    'wasm',
  ].join(',')
  if (keys !== expected) fail('capsule', `must hold exactly the fields ${expected}`)
  return c as PolicyCapsule
}

/**
 * Checks a capsule's integrity: the signature of its author over its body, the policy hash of its
 * WASM, its engine hash, and that its conformance vector names exactly its vectors.
 *
 * @throws {CapsuleInvalidError} naming the field that fails.
 */
export async function verifyCapsule(capsule: PolicyCapsule): Promise<void> {
  let publicKey: Uint8Array
  try {
    publicKey = publicKeyFromDid(capsule.author)
  } catch {
    throw new CapsuleInvalidError('author is not an Ed25519 did:key', 'author')
  }
  const ok = await verifySignature(publicKey, encodeCanonical(bodyOf(capsule)), capsule.sig)
  if (!ok)
    throw new CapsuleInvalidError('the author signature does not verify: the capsule was altered', 'sig')
  if (sha256Hex(capsule.wasm) !== capsule.policyHash)
    throw new CapsuleInvalidError('policyHash is not the SHA-256 of the WASM', 'policyHash')
  if (engineHashOf(capsule.engine) !== capsule.engineHash)
    throw new CapsuleInvalidError('engineHash is not the hash of engine', 'engineHash')
  const ids = capsule.vectors.map((v) => v.id).sort()
  if (ids.join(',') !== [...capsule.conformance].sort().join(','))
    throw new CapsuleInvalidError(
      'the conformance vector does not name exactly the vectors carried',
      'conformance',
    )
}

/** Runs conformance vectors on an engine; returns the ids that passed and those that failed. */
export function runConformance(
  engine: PolicyEngine,
  vectors: readonly ConformanceVector[],
): { passed: string[]; failed: string[] } {
  const passed: string[] = []
  const failed: string[] = []
  for (const vector of vectors) {
    const decision = engine.evaluate(vector.input)
    const rules = [...new Set(decision.reasons.map((r) => r.rule))].sort().join(',')
    const want = [...new Set(vector.expect.rules)].sort().join(',')
    const gasOk = vector.expect.gasUsed === undefined || vector.expect.gasUsed === decision.gasUsed
    const digestOk =
      vector.expect.evalDigest === undefined || vector.expect.evalDigest === decision.evalDigest
    if (
      decision.allowed === vector.expect.allowed &&
      rules === want &&
      gasOk &&
      digestOk &&
      !decision.gasExceeded
    )
      passed.push(vector.id)
    else failed.push(vector.id)
  }
  return { passed, failed }
}

/** A capsule this peer verified and accepted, with its loaded engine. */
export interface AcceptedCapsule {
  /** The capsule hash ({@link capsuleHashOf}). */
  hash: Cid
  capsule: PolicyCapsule
  engine: PolicyEngine
}

/** Options of {@link CapsuleRegistry}. */
export interface CapsuleRegistryOptions {
  /** Authors whose capsules this peer trusts (did:key). */
  trustedAuthors: readonly Did[]
  /** Input schema versions this peer builds. @default [1] */
  schemaVersions?: readonly number[]
  /** Most capsules held. @default 16 */
  maxCapsules?: number
}

/**
 * The capsules a peer knows and trusts. A capsule enters only through {@link CapsuleRegistry.accept}:
 * decoded, signed by a trusted author, intact, and passing all of its conformance vectors on this
 * peer's engine.
 */
export class CapsuleRegistry {
  readonly trustedAuthors: ReadonlySet<Did>
  readonly schemaVersions: readonly number[]
  readonly maxCapsules: number
  #accepted = new Map<Cid, AcceptedCapsule>()

  constructor(options: CapsuleRegistryOptions) {
    this.trustedAuthors = new Set(options.trustedAuthors)
    this.schemaVersions = options.schemaVersions ?? [1]
    this.maxCapsules = options.maxCapsules ?? 16
  }

  /** Whether a capsule hash is known and trusted. */
  has(hash: string): boolean {
    return this.#accepted.has(hash)
  }

  /** An accepted capsule by hash. */
  get(hash: string): AcceptedCapsule | undefined {
    return this.#accepted.get(hash)
  }

  /** Hashes of every accepted capsule. */
  hashes(): Cid[] {
    return [...this.#accepted.keys()].sort()
  }

  /**
   * Verifies and accepts a capsule (bytes or decoded). Idempotent.
   *
   * @throws {CapsuleInvalidError} when the capsule is malformed, altered, from an untrusted author,
   *   for an input schema this peer does not build, or fails a conformance vector here.
   */
  async accept(input: Uint8Array | PolicyCapsule): Promise<AcceptedCapsule> {
    const bytes = input instanceof Uint8Array ? input : encodeCapsule(input)
    const hash = capsuleHashOf(bytes)
    const known = this.#accepted.get(hash)
    if (known) return known
    const capsule = decodeCapsule(bytes)
    if (!this.trustedAuthors.has(capsule.author))
      throw new CapsuleInvalidError(`author ${capsule.author} is not trusted by this peer`, 'author')
    await verifyCapsule(capsule)
    if (!this.schemaVersions.includes(capsule.schemaVersion))
      throw new CapsuleInvalidError(
        `schema version ${capsule.schemaVersion} is not built by this peer`,
        'schemaVersion',
      )
    let engine: PolicyEngine
    try {
      engine = await loadPolicyEngine(capsule.wasm, {
        gasLimit: capsule.gasLimit,
        entrypoint: capsule.entrypoint,
      })
    } catch (error) {
      throw new CapsuleInvalidError(`its policy does not load (${String(error)})`, 'wasm')
    }
    const { failed } = runConformance(engine, capsule.vectors)
    if (failed.length > 0)
      throw new CapsuleInvalidError(`conformance fails locally: ${failed.join(', ')}`, 'conformance')
    if (this.#accepted.size >= this.maxCapsules)
      throw new CapsuleInvalidError(`this peer already holds ${this.maxCapsules} capsules`, 'capsule')
    const accepted = { hash, capsule, engine }
    this.#accepted.set(hash, accepted)
    return accepted
  }

  /**
   * Fetches a capsule by hash from an artifact store and accepts it.
   *
   * @throws {CapsuleInvalidError} when no reachable peer holds it or it fails {@link CapsuleRegistry.accept}.
   */
  async fetch(
    hash: Cid,
    store: ArtifactStore,
    options: { signal?: AbortSignal } = {},
  ): Promise<AcceptedCapsule> {
    const known = this.#accepted.get(hash)
    if (known) return known
    const bytes = await store.get(hash, options.signal ? { signal: options.signal } : {})
    if (!bytes) throw new CapsuleInvalidError(`capsule ${hash} is not in the artifact store`, 'policy')
    if (artifactCid(bytes) !== hash)
      throw new CapsuleInvalidError('the fetched bytes do not hash to the capsule id', 'policy')
    return this.accept(bytes)
  }
}
