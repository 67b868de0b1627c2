/**
 * Policy capsules in the simulator: every peer runs the real compiled base policy at its three
 * gates; peers with the same capsule agree on every eval digest, and a peer whose policy module
 * was tampered with (while it claims the same capsule) is reported by the divergence detector.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { makeIdentities } from '../../../test-support/envelopes.ts'
import type { AnyEnvelope, Envelope } from '../src/core/types.ts'
import type { Identity } from '../src/crypto/ed25519.ts'
import {
  type AcceptedCapsule,
  CapsuleRegistry,
  createCapsule,
  encodeCapsule,
  loadPolicyEngine,
  PolicyGates,
} from '../src/policy/index.ts'
import { readPolicyBundle } from '../src/policy/node.ts'
import { runSimulation, type SimOptions } from '../src/sim/world.ts'

let capsuleBytes: Uint8Array
let author: Identity
let tamperedWasm: Uint8Array

/** A WebAssembly custom section: valid, ignored by the engine, and a different policy hash. */
function withCustomSection(wasm: Uint8Array): Uint8Array {
  const name = new TextEncoder().encode('tamper')
  const section = new Uint8Array([0x00, name.length + 2, name.length, ...name, 0x2a])
  const out = new Uint8Array(wasm.length + section.length)
  out.set(wasm)
  out.set(section, wasm.length)
  return out
}

beforeAll(async () => {
  const bundle = await readPolicyBundle('base')
  ;[author] = (await makeIdentities(1, 0x72)) as [Identity]
  capsuleBytes = encodeCapsule(await createCapsule(bundle, author))
  tamperedWasm = withCustomSection(bundle.wasm)
})

/** Each peer accepts the capsule into its own registry (own engine instance); `tampered` peers swap the module. */
function policyFor(tampered: ReadonlySet<number> = new Set()): NonNullable<SimOptions['policy']> {
  return async (peer) => {
    const registry = new CapsuleRegistry({ trustedAuthors: [author.did] })
    const accepted: AcceptedCapsule = await registry.accept(capsuleBytes)
    const engine = tampered.has(peer) ? await loadPolicyEngine(tamperedWasm) : accepted.engine
    return new PolicyGates({ engine, capsule: accepted.hash, trusted: registry })
  }
}

async function attestsOf(options: SimOptions): Promise<AnyEnvelope[]> {
  const attests = new Map<string, AnyEnvelope>()
  await runSimulation({
    ...options,
    onTrace(trace) {
      for (const { env } of trace.entries) if (env.kind === 'ATTEST') attests.set(env.id, env)
    },
  })
  return [...attests.values()]
}

describe('policy capsules in the simulator', () => {
  it('finishes the work with every gate on, and peers with the same capsule produce identical eval digests', async () => {
    for (const seed of [1, 2]) {
      const result = await runSimulation({ seed, faults: 'none', policy: policyFor() })
      expect(result.violations).toEqual([])
      expect(result.finalizedNeeds).toBe(2)
      expect(result.policy!.divergences).toEqual([])
      const stats = result.policy!.stats
      expect(stats.every((s) => s !== undefined && s.ingress.evaluations > 0)).toBe(true)
      expect(stats.reduce((sum, s) => sum + s!.commit.evaluations, 0)).toBeGreaterThan(0)
      expect(stats.reduce((sum, s) => sum + s!.preflight.evaluations, 0)).toBeGreaterThan(0)
      expect(stats.reduce((sum, s) => sum + s!.ingress.denials + s!.preflight.denials, 0)).toBe(0)
    }
    // Full mode (K_result = 3): several verifiers per commit, one digest per commit.
    const attests = await attestsOf({ seed: 1, faults: 'none', policy: policyFor() })
    const byCommit = new Map<string, Set<string>>()
    const verifiers = new Map<string, Set<string>>()
    for (const env of attests as Envelope<'ATTEST'>[]) {
      byCommit.set(
        env.payload.commit,
        (byCommit.get(env.payload.commit) ?? new Set()).add(env.payload.evalDigest),
      )
      verifiers.set(env.payload.commit, (verifiers.get(env.payload.commit) ?? new Set()).add(env.sender))
    }
    expect([...verifiers.values()].some((set) => set.size >= 2)).toBe(true)
    for (const digests of byCommit.values()) expect(digests.size).toBe(1)
  })

  it('reports a verifier whose policy module was tampered with', async () => {
    let found = false
    for (const tampered of [3, 4, 5]) {
      const result = await runSimulation({ seed: 1, faults: 'none', policy: policyFor(new Set([tampered])) })
      expect(result.violations).toEqual([])
      const identities = await makeIdentitiesOfSim(1, 12)
      const did = identities[tampered]!.did
      const divergences = result.policy!.divergences
      if (divergences.length === 0) continue
      found = true
      for (const divergence of divergences) {
        const minority = divergence.digests.at(-1)!
        expect(minority.verifiers).toEqual([did])
        expect(divergence.digests[0]!.verifiers).not.toContain(did)
      }
      break
    }
    expect(found).toBe(true)
  })

  it('keeps every property under byzantine and combined faults with the gates on', async () => {
    for (const [seed, faults] of [
      [11, 'byzantine'],
      [12, 'combined'],
      [13, 'partition'],
    ] as const) {
      const result = await runSimulation({ seed, faults, policy: policyFor() })
      expect(result.violations, `seed ${seed} ${faults}`).toEqual([])
    }
  })
})

/** The identities runSimulation derives for a seed (same derivation as sim/world.ts). */
async function makeIdentitiesOfSim(seed: number, count: number): Promise<Identity[]> {
  const { createIdentity } = await import('../src/crypto/ed25519.ts')
  const result: Identity[] = []
  for (let index = 0; index < count; index += 1) {
    const seedBytes = new Uint8Array(32)
    const view = new DataView(seedBytes.buffer)
    view.setUint32(0, seed >>> 0)
    view.setUint32(4, index)
    view.setUint32(8, 0x5157_4152)
    result.push(await createIdentity({ seed: seedBytes }))
  }
  return result
}
