/**
 * The `policy` benchmark: the compiled base policy (packages/peer/policy-bundle/base.wasm) evaluated by the
 * gas-metered engine, and the ingress gate measured against Ed25519 envelope verification in the
 * same run (the gate runs on every received envelope, right after verification).
 */

import type { Envelope } from '@can-swarm/peer'
import {
  artifactCid,
  capsuleHashOf,
  createCapsule,
  createIdentity,
  envelopeInput,
  loadPolicyEngine,
  PolicyGates,
  PROTOCOL_VERSION,
  signEnvelope,
  verifyEnvelopes,
} from '@can-swarm/peer'
import { readPolicyBundle } from '@can-swarm/peer/node'

interface Metric {
  value: number
  unit: string
}

/** The network the benchmark envelopes belong to. */
const BENCH_NET = artifactCid(new TextEncoder().encode('can-swarm benchmark network'))

/** Evaluations timed one by one for the latency percentiles. */
const EVALUATIONS = 20_000
/** Envelopes verified and gated for the overhead ratio. */
const ENVELOPES = 4_000

const round = (value: number, digits = 4) => Number(value.toFixed(digits))

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!
}

/** Runs the benchmark; `progress` receives human-readable lines. */
export async function runPolicyBenchmark(progress: (line: string) => void): Promise<Record<string, Metric>> {
  const bundle = await readPolicyBundle('base')
  const engine = await loadPolicyEngine(bundle.wasm)
  const signer = await createIdentity({ seed: new Uint8Array(32).fill(42) })
  const capsule = capsuleHashOf(await createCapsule(bundle, signer))
  const envs: Envelope[] = []
  for (let i = 0; i < ENVELOPES; i += 1) {
    envs.push(
      await signEnvelope(
        {
          v: PROTOCOL_VERSION,
          net: BENCH_NET,
          kind: 'HEARTBEAT',
          thread: `need-bench-${i % 8}`,
          sender: signer.did,
          lamport: i + 1,
          ts: 0,
          payload: {
            task: `p/t${i % 50}`,
            claim: artifactCid(new Uint8Array([i & 255, i >> 8])),
            progress: i % 1000,
          },
          refs: [],
          policy: capsule,
          epoch: 1,
        },
        signer,
      ),
    )
  }

  // Latency of one evaluation: canonical input into the WASM, run, gas read, eval digest.
  const inputs = envs.map((env, i) => envelopeInput(env, 'ingress', { messages: (i % 100) + 1 }))
  for (let i = 0; i < 2000; i += 1) engine.evaluate(inputs[i % inputs.length])
  const samples = new Float64Array(EVALUATIONS)
  let gas = 0
  for (let i = 0; i < EVALUATIONS; i += 1) {
    const started = performance.now()
    const decision = engine.evaluate(inputs[i % inputs.length])
    if (decision.evalDigest.length !== 64) throw new Error('no eval digest')
    samples[i] = performance.now() - started
    gas = decision.gasUsed
    if (!decision.allowed) throw new Error(`benchmark input denied: ${JSON.stringify(decision.reasons)}`)
  }
  samples.sort()
  const p50 = percentile(samples, 0.5)
  const p95 = percentile(samples, 0.95)
  progress(`eval p50 ${round(p50 * 1000, 1)} µs, p95 ${round(p95 * 1000, 1)} µs, ${gas} gas units each`)

  // Ingress gate vs. signature verification of the same envelopes, alternated, best of 3 each.
  let verifyMs = Number.POSITIVE_INFINITY
  let gateMs = Number.POSITIVE_INFINITY
  for (let round = 0; round < 3; round += 1) {
    let started = performance.now()
    const errors = await verifyEnvelopes(envs)
    verifyMs = Math.min(verifyMs, performance.now() - started)
    if (errors.some((e) => e !== undefined)) throw new Error('benchmark envelopes failed to verify')
    const gates = new PolicyGates({ engine, capsule })
    started = performance.now()
    for (const env of envs) if (!gates.ingress(env).allowed) throw new Error('benchmark envelope denied')
    gateMs = Math.min(gateMs, performance.now() - started)
  }
  const overheadPct = (gateMs / verifyMs) * 100
  progress(
    `ingress gate ${round((gateMs / ENVELOPES) * 1000, 1)} µs/envelope, verify ${round((verifyMs / ENVELOPES) * 1000, 1)} µs/envelope`,
  )
  return {
    policy_eval_p50_ms: {
      value: round(p50),
      unit: 'ms per evaluation (base policy, ingress input, gas-metered, eval digest included)',
    },
    policy_eval_p95_ms: {
      value: round(p95),
      unit: 'ms per evaluation (base policy, ingress input, gas-metered, eval digest included)',
    },
    policy_eval_gas_units: {
      value: gas,
      unit: 'gas units per ingress evaluation (deterministic; limit 100 000)',
    },
    policy_gate_overhead_pct: {
      value: round(overheadPct, 1),
      unit: '% of Ed25519 envelope verification time (WebCrypto, batched) that the ingress gate adds',
    },
  }
}
