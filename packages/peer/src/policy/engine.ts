/**
 * The policy engine: a Rego policy compiled to WebAssembly by `opa build -t wasm`, instrumented for
 * gas by `tools/wasm-gas`, run by `@open-policy-agent/opa-wasm`. Isomorphic: no `node:` modules;
 * loading the bytes is the caller's job (`node.ts` reads the committed bundle in Node, a browser
 * fetches it).
 *
 * Gas is deterministic: the instrumented module charges one unit per control transfer (call,
 * branch, loop iteration, return) to its exported mutable global `gas_left`. The engine sets the
 * limit before each evaluation and reads what is left after it, so the same input under the same
 * policy uses the same units on every machine and engine. Over the limit the module traps at
 * once: the decision is a denial carrying a {@link GasExceededError}, never a hang.
 *
 * @example
 * ```ts
 * const engine = await loadPolicyEngine(wasmBytes)
 * const decision = engine.evaluate({ schema: 1, gate: 'ingress', kind: 'NEED', sizes: { payloadBytes: 300, refs: 0 }, fields: {} })
 * decision.allowed // true
 * decision.gasUsed // e.g. 7088, the same everywhere
 * ```
 */
import { loadPolicy } from '@open-policy-agent/opa-wasm'
import { sha256Hex } from '../core/codec.ts'
import { evalDigestOf } from '../core/digest.ts'
import { GasExceededError, InvalidArgumentError, type PolicyReason } from '../core/errors.ts'

/** Default gas limit of one evaluation, in units (docs/PROTOCOL.md §10). */
export const DEFAULT_GAS_LIMIT = 100_000

/** Name of the exported gas counter that `tools/wasm-gas` injects. */
const GAS_GLOBAL = 'gas_left'
/** `gas_left` holds this sentinel (u64::MAX read as i64) after the module ran out of gas. */
const OUT_OF_GAS = -1n

/** The outcome of one policy evaluation. */
export interface PolicyDecision {
  /** Whether the policy allows the input. */
  allowed: boolean
  /** Every rule that denied, with the field it blames, sorted by rule then field. */
  reasons: PolicyReason[]
  /** Gas units the evaluation used (deterministic). */
  gasUsed: number
  /** `H(input ‖ decision ‖ policyHash)`: equal on every peer that evaluated the same input under the same policy. */
  evalDigest: string
  /** SHA-256 (hex) of the WASM module that decided. */
  policyHash: string
  /** Present when the evaluation ran out of gas: the decision is then a denial by rule `gas-limit`. */
  gasExceeded?: GasExceededError
}

/** Options of {@link loadPolicyEngine}. */
export interface PolicyEngineOptions {
  /** Gas limit of each evaluation, in units. @default DEFAULT_GAS_LIMIT (100 000) */
  gasLimit?: number
  /** Entrypoint to evaluate. @default the module's first entrypoint */
  entrypoint?: string
  /** Initial memory of the module, in 64 KiB pages. @default 5 */
  memoryPages?: number
}

/** Options of one {@link PolicyEngine.evaluate} call. */
export interface EvaluateOptions {
  /** Gas limit of this evaluation, in units. @default the engine's gas limit */
  gasLimit?: number
}

interface LoadedPolicy {
  evaluate(input: unknown, entrypoint?: number | string): unknown
  entrypoints: Record<string, number>
  wasmInstance: WebAssembly.Instance
}

/** A loaded, gas-metered policy module. Evaluation is synchronous and stateless between calls. */
export class PolicyEngine {
  /** SHA-256 (hex) of the WASM bytes: the policy hash of docs/PROTOCOL.md §10. */
  readonly policyHash: string
  /** The entrypoint evaluated. */
  readonly entrypoint: string
  /** Default gas limit per evaluation, in units. */
  readonly gasLimit: number
  #policy: LoadedPolicy
  #gas: WebAssembly.Global
  #entrypointId: number

  /** @internal use {@link loadPolicyEngine} */
  constructor(policy: LoadedPolicy, policyHash: string, entrypoint: string, gasLimit: number) {
    const gas = policy.wasmInstance.exports[GAS_GLOBAL]
    if (!(gas instanceof WebAssembly.Global)) {
      throw new InvalidArgumentError(
        `the policy module exports no "${GAS_GLOBAL}" global: it is not instrumented for gas; build it with npm run policy:build`,
        'wasm',
      )
    }
    const id = policy.entrypoints[entrypoint]
    if (id === undefined) {
      throw new InvalidArgumentError(
        `entrypoint ${entrypoint} is not in the module (it has ${Object.keys(policy.entrypoints).join(', ')})`,
        'entrypoint',
      )
    }
    this.#policy = policy
    this.#gas = gas
    this.#entrypointId = id
    this.policyHash = policyHash
    this.entrypoint = entrypoint
    this.gasLimit = gasLimit
  }

  /**
   * Evaluates the policy on `input` (a JSON-compatible, DAG-CBOR-encodable document: integers,
   * strings, booleans, arrays, plain objects). Never throws for a policy's answer: a policy that
   * runs out of gas, traps or answers in the wrong shape yields a denial that says so.
   */
  evaluate(input: unknown, options: EvaluateOptions = {}): PolicyDecision {
    const gasLimit = options.gasLimit ?? this.gasLimit
    checkGasLimit(gasLimit)
    const limit = BigInt(gasLimit)
    this.#gas.value = limit
    let result: unknown
    let failure: PolicyReason | undefined
    let gasExceeded: GasExceededError | undefined
    try {
      result = this.#policy.evaluate(canonicalJsonBytes(input), this.#entrypointId)
    } catch {
      if (this.#gas.value === OUT_OF_GAS) {
        gasExceeded = new GasExceededError(gasLimit)
        failure = { rule: 'gas-limit', field: 'gas' }
      } else {
        failure = { rule: 'policy-error', field: 'policy' }
      }
    }
    const gasUsed = gasExceeded ? gasLimit : Number(limit - BigInt.asUintN(64, this.#gas.value))
    const answer = failure ? { allowed: false, reasons: [failure] } : readAnswer(result)
    return new Decision(input, answer.allowed, answer.reasons, gasUsed, this.policyHash, gasExceeded)
  }
}

/**
 * A decision whose eval digest is computed on first read (hashing the input costs about as much as
 * evaluating it, and only the commit gate's digests leave the peer). The input must not be mutated
 * after evaluation.
 */
class Decision implements PolicyDecision {
  readonly allowed: boolean
  readonly reasons: PolicyReason[]
  readonly gasUsed: number
  readonly policyHash: string
  declare readonly gasExceeded?: GasExceededError
  #input: unknown
  #digest: string | undefined

  constructor(
    input: unknown,
    allowed: boolean,
    reasons: PolicyReason[],
    gasUsed: number,
    policyHash: string,
    gasExceeded: GasExceededError | undefined,
  ) {
    this.#input = input
    this.allowed = allowed
    this.reasons = reasons
    this.gasUsed = gasUsed
    this.policyHash = policyHash
    if (gasExceeded) Object.defineProperty(this, 'gasExceeded', { value: gasExceeded, enumerable: true })
  }

  get evalDigest(): string {
    this.#digest ??= evalDigestOf(
      this.#input,
      { allowed: this.allowed, reasons: this.reasons, gasUsed: this.gasUsed },
      this.policyHash,
    )
    return this.#digest
  }

  toJSON(): object {
    return { ...this, evalDigest: this.evalDigest }
  }
}

const encoder = new TextEncoder()

/**
 * The input as JSON with object keys sorted at every level. The policy parses its input inside the
 * metered module, and the order in which keys arrive changes the work it does: sorted keys make the
 * gas count a function of the input's content alone.
 */
function canonicalJsonBytes(input: unknown): ArrayBuffer {
  const bytes = encoder.encode(canonicalJson(input))
  return bytes.buffer.byteLength === bytes.byteLength
    ? (bytes.buffer as ArrayBuffer)
    : (bytes.slice().buffer as ArrayBuffer)
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const record = value as Record<string, unknown>
  const parts: string[] = []
  for (const key of Object.keys(record).sort()) {
    if (record[key] !== undefined) parts.push(`${JSON.stringify(key)}:${canonicalJson(record[key])}`)
  }
  return `{${parts.join(',')}}`
}

function checkGasLimit(gasLimit: number): void {
  if (!Number.isSafeInteger(gasLimit) || gasLimit < 1) {
    throw new InvalidArgumentError(`gasLimit must be a positive integer, got ${gasLimit}`, 'gasLimit')
  }
}

/** The `{allowed, reasons}` of an opa-wasm result set; a malformed answer is a denial. */
function readAnswer(result: unknown): { allowed: boolean; reasons: PolicyReason[] } {
  if (!Array.isArray(result) || result.length === 0) {
    return { allowed: false, reasons: [{ rule: 'policy-undefined', field: '' }] }
  }
  const value = (result[0] as { result?: unknown }).result as
    | { allowed?: unknown; reasons?: unknown }
    | undefined
  if (!value || typeof value.allowed !== 'boolean' || !Array.isArray(value.reasons)) {
    return { allowed: false, reasons: [{ rule: 'policy-output', field: '' }] }
  }
  const reasons: PolicyReason[] = []
  for (const reason of value.reasons as { rule?: unknown; field?: unknown }[]) {
    reasons.push({
      rule: typeof reason?.rule === 'string' ? reason.rule : 'unnamed',
      field: typeof reason?.field === 'string' ? reason.field : '',
    })
  }
  reasons.sort((a, b) =>
    a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : a.field < b.field ? -1 : a.field > b.field ? 1 : 0,
  )
  // Default deny holds even against a policy that allows while naming reasons.
  return { allowed: value.allowed && reasons.length === 0, reasons }
}

/**
 * Loads a gas-instrumented policy module. The policy hash is the SHA-256 of `wasm`.
 *
 * @throws {InvalidArgumentError} field `wasm` when the module is not instrumented for gas or does
 *   not load; field `entrypoint` when the entrypoint is missing.
 */
export async function loadPolicyEngine(
  wasm: Uint8Array,
  options: PolicyEngineOptions = {},
): Promise<PolicyEngine> {
  const gasLimit = options.gasLimit ?? DEFAULT_GAS_LIMIT
  checkGasLimit(gasLimit)
  const policyHash = sha256Hex(wasm)
  let policy: LoadedPolicy
  try {
    const module = await compiled(policyHash, wasm)
    policy = (await loadPolicy(module, { initial: options.memoryPages ?? 5 })) as unknown as LoadedPolicy
  } catch (error) {
    throw new InvalidArgumentError(
      `the policy module does not load: ${error instanceof Error ? error.message : String(error)}`,
      'wasm',
    )
  }
  const entrypoint = options.entrypoint ?? Object.keys(policy.entrypoints)[0]
  if (entrypoint === undefined) throw new InvalidArgumentError('the policy module has no entrypoint', 'wasm')
  return new PolicyEngine(policy, policyHash, entrypoint, gasLimit)
}

/** Compiled modules by policy hash: each engine gets its own instance, the compilation is shared. */
const modules = new Map<string, Promise<WebAssembly.Module>>()
/** Most compiled modules kept. */
const MAX_CACHED_MODULES = 8

function compiled(policyHash: string, wasm: Uint8Array): Promise<WebAssembly.Module> {
  let module = modules.get(policyHash)
  if (!module) {
    if (modules.size >= MAX_CACHED_MODULES) modules.delete(modules.keys().next().value!)
    module = WebAssembly.compile(wasm.slice())
    module.catch(() => modules.delete(policyHash))
    modules.set(policyHash, module)
  }
  return module
}
