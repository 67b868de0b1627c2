/**
 * The network's base policy in the tab (docs/PROTOCOL.md §10): the committed bundle (`packages/peer/policy-bundle/`,
 * the gas-metered WASM and its manifest) is fetched as two assets of the build, checked (the WASM
 * must hash to the manifest's `policyHash`, and every conformance vector must give the recorded
 * decision, gas units and eval digest on this browser's engine), and run at the agent's three
 * gates: preflight before the tab publishes anything, ingress on everything it receives, commit
 * when its verifier judges a result. A NEED the policy denies is refused before it leaves the tab,
 * and the person is told which rule denied which field.
 *
 * Envelopes the tab publishes name the policy they were evaluated under by its `policyHash`; those
 * of peers that run only the built-in rules (Node peers without gates, `BUILTIN_POLICY_HASH`) are
 * accepted too, and evaluated under the base policy at ingress.
 */
import {
  type BasePolicy,
  type BundleManifest,
  basePolicyGates,
  envelopeInput,
  type PolicyReason,
  type UnsignedEnvelope,
} from '@can-swarm/peer'

/** Where the bundle is served: the instrumented WASM and its JSON manifest. */
export interface PolicyBundleSource {
  wasm: string | URL
  manifest: string | URL
}

/**
 * The loaded policy: its gates, its manifest, and the conformance vectors that gave the recorded
 * decision here (all of them, or loading fails).
 */
export type TabPolicy = BasePolicy

/** Thrown when the bundle cannot be fetched or fails its checks; says what to do. */
export class PolicyLoadError extends Error {
  readonly code = 'POLICY_LOAD_FAILED'
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'PolicyLoadError'
  }
}

/** Options of {@link loadTabPolicy}. */
export interface LoadTabPolicyOptions {
  /** @default globalThis.fetch */
  fetch?: typeof fetch
  signal?: AbortSignal
}

async function fetchBytes(url: string | URL, options: LoadTabPolicyOptions): Promise<Uint8Array> {
  const get = options.fetch ?? globalThis.fetch.bind(globalThis)
  let response: Response
  try {
    response = await get(url, options.signal ? { signal: options.signal } : {})
  } catch (error) {
    throw new PolicyLoadError(
      `the policy bundle ${String(url)} could not be fetched (${(error as Error).message}); is the anchor reachable?`,
      { cause: error },
    )
  }
  if (!response.ok) {
    throw new PolicyLoadError(
      `the policy bundle ${String(url)} could not be fetched (HTTP ${response.status}); rebuild the web app (npm run build:web)`,
    )
  }
  return new Uint8Array(await response.arrayBuffer())
}

/**
 * Fetches the policy bundle and checks and loads it as every peer does (`basePolicyGates` of the
 * peer package, which anchors run too), building the gates the agent runs.
 * @throws {PolicyLoadError} when a file cannot be fetched, the WASM does not match the manifest,
 *   or a conformance vector gives another decision in this browser (the gates then stay off).
 */
export async function loadTabPolicy(
  source: PolicyBundleSource,
  options: LoadTabPolicyOptions = {},
): Promise<TabPolicy> {
  const [wasm, manifestBytes] = await Promise.all([
    fetchBytes(source.wasm, options),
    fetchBytes(source.manifest, options),
  ])
  let manifest: BundleManifest
  try {
    manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as BundleManifest
  } catch (error) {
    throw new PolicyLoadError(`the policy manifest ${String(source.manifest)} is not JSON`, { cause: error })
  }
  try {
    return await basePolicyGates({ wasm, manifest })
  } catch (error) {
    throw new PolicyLoadError(error instanceof Error ? error.message : String(error), { cause: error })
  }
}

/**
 * The reasons the policy would deny `env` at the preflight gate, or undefined when it allows it;
 * evaluated without counting (the agent's own preflight counts what it publishes). The tab uses it
 * to order its refusals: a NEED the network's policy forbids is refused for that, in the policy's
 * words, before anything is said about the person's credits.
 */
export function preflightDenial(
  policy: TabPolicy,
  env: Pick<UnsignedEnvelope, 'kind' | 'payload' | 'refs'>,
): readonly PolicyReason[] | undefined {
  const decision = policy.gates.engine.evaluate(envelopeInput(env as UnsignedEnvelope, 'preflight'))
  return decision.allowed ? undefined : decision.reasons
}

/** What each rule of the base policy checks, in words (policies/README.md has the limits). */
export const RULE_WORDS: Readonly<Record<string, string>> = {
  'schema-version': 'the input document has a schema version the policy does not read',
  'gate-known': 'the gate is not one the policy knows',
  'kind-allowed': 'the envelope kind is not a protocol verb',
  'payload-size': 'the payload is larger than the policy allows',
  'refs-count': 'the envelope references more artifacts than the policy allows',
  'budget-messages': 'this sender has put more envelopes into the thread than the policy allows',
  'budget-credits': 'the credits named (budget, price, cost or bond) are outside the range the policy allows',
  'budget-retries': 'the ballot is above the retries the policy allows',
  'budget-ttl': 'a lease, bid window or deadline is longer than the policy allows',
  'bounty-cap': 'the verify bounty is above the cap of the task class',
  'outputs-match': 're-execution gave other outputs',
  'telemetry-exact': 'claimed byte counts differ from what was measured',
  'telemetry-above-measured': 'claimed resources exceed what was measured beyond the tolerance',
  'telemetry-cap': 'claimed CPU time is above the cap of the task class',
  'capsule-unknown': 'it names a policy capsule this peer does not know or trust',
  'gas-limit': 'evaluating the policy ran out of gas',
}

/** The value at a dotted path (`payload.budget`) of `value`, when it is a number or string. */
function valueAt(value: unknown, path: string): string | undefined {
  let current = value
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined
    current = (current as Record<string, unknown>)[key]
  }
  return typeof current === 'number' || typeof current === 'string' ? String(current) : undefined
}

/**
 * One denial in words: each rule by name, the field it blames (with its value, when `envelope`
 * holds it) and what the rule checks; e.g. `rule "budget-credits" on payload.budget = 2000000:
 * the credits named … are outside the range the policy allows`.
 */
export function explainPolicyDenial(
  gate: string,
  reasons: readonly PolicyReason[],
  envelope?: { payload: unknown },
): string {
  const parts = reasons.map((reason) => {
    const value = envelope && reason.field ? valueAt(envelope, reason.field) : undefined
    const field = reason.field ? ` on ${reason.field}${value === undefined ? '' : ` = ${value}`}` : ''
    const words = RULE_WORDS[reason.rule]
    return `rule "${reason.rule}"${field}${words ? `: ${words}` : ''}`
  })
  const refused =
    gate === 'preflight'
      ? 'Refused by the policy before anything was sent'
      : `Denied by the policy (${gate} gate)`
  return `${refused}: ${parts.join('; ') || 'default deny'}.`
}
