/**
 * The network's base policy as a peer runs it: the committed bundle (the gas-metered WASM and its
 * manifest) checked — the WASM must hash to the manifest's `policyHash`, and every conformance
 * vector must give the recorded decision on this engine — and turned into the three gates. Envelopes
 * evaluated under the base policy or under the built-in rules (`BUILTIN_POLICY_HASH`, peers that run
 * no compiled policy) are accepted at ingress and evaluated under the base policy; anything else is
 * denied (`capsule-unknown`). Anchors run it before they store or relay (A8); tabs before they
 * publish and on everything they receive.
 *
 * @example
 * ```ts
 * const { gates } = await basePolicyGates(await readPolicyBundle('base'))   // Node: policy/node.ts
 * ```
 */
import { sha256Hex } from '../core/codec.ts'
import { BUILTIN_POLICY_HASH } from '../core/digest.ts'
import { CapsuleInvalidError } from '../core/errors.ts'
import { type BundleManifest, runConformance } from './capsule.ts'
import { loadPolicyEngine } from './engine.ts'
import { PolicyGates } from './gates.ts'

/** The checked base policy: its gates, its manifest, and how many conformance vectors it passed. */
export interface BasePolicy {
  gates: PolicyGates
  manifest: BundleManifest
  conformancePassed: number
}

/**
 * Checks a bundle and builds its gates.
 * @throws {CapsuleInvalidError} when the WASM does not hash to the manifest, or a conformance
 *   vector gives another decision on this engine (the gates would diverge from other peers').
 */
export async function basePolicyGates(bundle: {
  wasm: Uint8Array
  manifest: BundleManifest
}): Promise<BasePolicy> {
  const { wasm, manifest } = bundle
  const actual = sha256Hex(wasm)
  if (actual !== manifest.policyHash) {
    throw new CapsuleInvalidError(
      `the policy WASM hashes to ${actual}, not to the manifest's policyHash ${manifest.policyHash}: the bundle is damaged or mixed; rebuild it (npm run policy:build)`,
      'policyHash',
    )
  }
  const engine = await loadPolicyEngine(wasm, {
    gasLimit: manifest.gasLimit,
    entrypoint: manifest.entrypoint,
  })
  const { passed, failed } = runConformance(engine, manifest.vectors)
  if (failed.length > 0) {
    throw new CapsuleInvalidError(
      `the policy gives other decisions here than where it was built (conformance vectors ${failed.join(', ')}): its gates would diverge from other peers'`,
      'vectors',
    )
  }
  const gates = new PolicyGates({
    engine,
    capsule: manifest.policyHash,
    trusted: { has: (hash) => hash === manifest.policyHash || hash === BUILTIN_POLICY_HASH },
  })
  return { gates, manifest, conformancePassed: passed.length }
}
