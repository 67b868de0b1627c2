/**
 * Capabilities: named, deterministic functions from input artifacts to one output artifact, with a
 * manifest. Workers run them; verifiers re-run them and compare output CIDs, so a capability must
 * give the same bytes for the same inputs on every machine.
 *
 * @example
 * ```ts
 * const registry = new CapabilityRegistry()
 * registry.register('upper', async ([text]) => utf8(decode(text).toUpperCase()), {
 *   version: '1.0.0', produces: 'text/plain', price: 1, description: 'Upper-cases a text.',
 * })
 * ```
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { InvalidArgumentError } from '../core/errors.ts'

/**
 * What a worker hands a capability besides its inputs (verifiers hand it too: their signal stops a
 * re-run nobody waits for any more).
 */
export interface CapabilityContext {
  /**
   * Aborted when the work is no longer wanted: the worker's lease ended (scavenged, reopened,
   * expired), the thread was dropped, or the agent stopped. Long work should check it (or pass it
   * on to `fetch` and friends) and stop; whatever it returns after the abort is not committed.
   */
  readonly signal: AbortSignal
  /**
   * Reports how far the work is, in per-mille (0–1000; other numbers are clamped and rounded). The
   * worker's next HEARTBEAT carries the latest value. Never reported: the HEARTBEATs say 0.
   */
  onProgress(perMille: number): void
}

/**
 * Runs a capability: input artifacts (in the task's order) → output artifact bytes. The context
 * (second argument) may be ignored by short, pure functions.
 */
export type CapabilityHandler = (
  inputs: readonly Uint8Array[],
  context: CapabilityContext,
) => Uint8Array | Promise<Uint8Array>

/** A context that is never aborted and drops progress: for running a capability outside a lease. */
export function detachedContext(): CapabilityContext {
  return { signal: new AbortController().signal, onProgress: () => undefined }
}

/** What a capability promises: shown to planners and routers, signed into agent manifests later. */
export interface CapabilityManifest {
  version: string
  /** Artifact type of the output (`text/plain`, `application/json`). */
  produces: string
  /** Credits asked per task. */
  price: number
  description: string
}

export interface Capability {
  name: string
  handler: CapabilityHandler
  manifest: CapabilityManifest
}

const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/

export class CapabilityRegistry {
  #capabilities = new Map<string, Capability>()

  /** Registers a capability; names are `[a-z0-9-]`, at most 64 characters, and unique. */
  register(name: string, handler: CapabilityHandler, manifest: CapabilityManifest): this {
    if (!NAME.test(name))
      throw new InvalidArgumentError(`capability name "${name}" must match ${NAME}`, 'name')
    if (this.#capabilities.has(name)) {
      throw new InvalidArgumentError(`capability "${name}" is already registered`, 'name')
    }
    if (!Number.isSafeInteger(manifest.price) || manifest.price < 0) {
      throw new InvalidArgumentError('price must be a non-negative integer', 'manifest.price')
    }
    this.#capabilities.set(name, { name, handler, manifest: Object.freeze({ ...manifest }) })
    return this
  }

  get(name: string): Capability | undefined {
    return this.#capabilities.get(name)
  }

  has(name: string): boolean {
    return this.#capabilities.has(name)
  }

  names(): string[] {
    return [...this.#capabilities.keys()].sort()
  }

  /**
   * Runs a capability by name. With a `context`, its signal and progress reach the handler; a
   * signal already aborted refuses to start.
   *
   * @throws {InvalidArgumentError} field `capability` when no such capability is registered.
   * @throws the signal's reason when it is aborted before the handler starts.
   */
  async run(
    name: string,
    inputs: readonly Uint8Array[],
    context: CapabilityContext = detachedContext(),
  ): Promise<Uint8Array> {
    const capability = this.#capabilities.get(name)
    if (!capability) throw new InvalidArgumentError(`no capability "${name}" is registered`, 'capability')
    context.signal.throwIfAborted()
    return capability.handler(inputs, context)
  }
}

/** The listed price of a chain of capabilities (the sum of their manifests' prices), or `undefined` if one is unknown. */
export function chainPrice(registry: CapabilityRegistry, requires: readonly string[]): number | undefined {
  let total = 0
  for (const name of requires) {
    const capability = registry.get(name)
    if (!capability) return undefined
    total += capability.manifest.price
  }
  return total
}

/**
 * Checks a NEED before it is posted, against the capabilities this peer knows: every required one
 * must be in `registry` (a typo would wait for a planner that never comes) and the budget must
 * cover the chain's listed price (no planner bids below its price).
 *
 * @throws {InvalidArgumentError} field `requires` naming the unknown capabilities and the known
 *   ones; field `budget` when it is not a positive integer or is below the chain's price.
 */
export function checkNeedRequest(
  request: { requires: readonly string[]; budget: number },
  registry: CapabilityRegistry,
): void {
  if (!Number.isSafeInteger(request.budget) || request.budget < 1) {
    throw new InvalidArgumentError(
      `budget must be a positive integer of credits, got ${request.budget}`,
      'budget',
    )
  }
  const unknown = request.requires.filter((name) => !registry.has(name))
  if (unknown.length > 0) {
    throw new InvalidArgumentError(
      `unknown capabilit${unknown.length > 1 ? 'ies' : 'y'} ${unknown.join(', ')}: choose from ${registry.names().join(', ')} (or post with unlisted: true for capabilities only other peers offer)`,
      'requires',
    )
  }
  const price = chainPrice(registry, request.requires)!
  if (request.budget < price) {
    throw new InvalidArgumentError(
      `insufficient budget: the chain ${request.requires.join(' → ')} costs ${price} credits at its listed prices, the budget is ${request.budget}`,
      'budget',
    )
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** SHA-256 of each input, one lowercase hex digest per line. */
export function sha256Capability(inputs: readonly Uint8Array[]): Uint8Array {
  return encoder.encode(inputs.map((input) => `${bytesToHex(sha256(input))}\n`).join(''))
}

/**
 * Word frequencies over all inputs (UTF-8 text): words are maximal runs of letters, digits and
 * apostrophes, lower-cased; output is JSON `[[word, count], …]` sorted by count desc, then word.
 */
export function wordFrequencyCapability(inputs: readonly Uint8Array[]): Uint8Array {
  const counts = new Map<string, number>()
  for (const input of inputs) {
    for (const word of decoder
      .decode(input)
      .toLowerCase()
      .match(/[\p{L}\p{N}']+/gu) ?? []) {
      counts.set(word, (counts.get(word) ?? 0) + 1)
    }
  }
  const rows = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  return encoder.encode(JSON.stringify(rows))
}

/**
 * Sorts and de-duplicates a JSON list. Each input is either a JSON array or, failing that, text
 * with one item per line. Items are compared by their JSON text; output is a JSON array.
 */
export function sortDedupeCapability(inputs: readonly Uint8Array[]): Uint8Array {
  const items = new Map<string, unknown>()
  for (const input of inputs) {
    const text = decoder.decode(input)
    let list: unknown[]
    try {
      const parsed: unknown = JSON.parse(text)
      list = Array.isArray(parsed) ? parsed : [parsed]
    } catch {
      list = text.split('\n').filter((line) => line.length > 0)
    }
    for (const item of list) items.set(JSON.stringify(item), item)
  }
  const sorted = [...items.keys()].sort().map((key) => items.get(key))
  return encoder.encode(JSON.stringify(sorted))
}

/** A registry holding the three built-in deterministic capabilities. */
export function builtinCapabilities(): CapabilityRegistry {
  return new CapabilityRegistry()
    .register('sha256', sha256Capability, {
      version: '1.0.0',
      produces: 'text/plain',
      price: 1,
      description: 'SHA-256 of each input artifact, one hex digest per line.',
    })
    .register('word-frequency', wordFrequencyCapability, {
      version: '1.0.0',
      produces: 'application/json',
      price: 3,
      description: 'Word counts of the input texts, most frequent first.',
    })
    .register('sort-dedupe', sortDedupeCapability, {
      version: '1.0.0',
      produces: 'application/json',
      price: 2,
      description: 'Sorted, de-duplicated union of JSON lists (or line lists).',
    })
}
