/**
 * The tab's policy (src/app/policy.ts) with the committed bundle (packages/peer/policy-bundle/base.*): loaded
 * and checked as the tab loads it (the files come through `fetch`, here answered from disk), run
 * at a real agent's gates: a NEED whose budget is above the policy's credit range is refused
 * before anything is published, with the rule and the field in words; envelopes of peers running
 * only the built-in rules are accepted, those naming an unknown capsule denied; a damaged or
 * missing bundle is refused, saying why.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  Agent,
  type AnyEnvelope,
  BUILTIN_POLICY_HASH,
  createIdentity,
  MemoryArtifactStore,
  type NetworkParams,
  PolicyDeniedError,
  SeededRandom,
} from '@can-swarm/peer'
import { systemClock } from '@can-swarm/peer/net'
import { describe, expect, it } from 'vitest'
import {
  explainPolicyDenial,
  loadTabPolicy,
  PolicyLoadError,
  preflightDenial,
  type TabPolicy,
} from '../src/app/policy.ts'
import { testNetwork } from './network.ts'

const BUNDLE = join(import.meta.dirname, '..', '..', 'peer', 'policy-bundle')
const SOURCE = { wasm: 'https://tab.invalid/base.wasm', manifest: 'https://tab.invalid/base.json' }

/** A `fetch` serving the bundle's files from disk, with `change` applied to the WASM bytes. */
function bundleFetch(change: (wasm: Uint8Array) => Uint8Array = (wasm) => wasm): typeof fetch {
  return (async (url: string | URL | Request) => {
    const name = String(url).split('/').pop()!
    const bytes = new Uint8Array(await readFile(join(BUNDLE, name)))
    const body = name.endsWith('.wasm') ? change(bytes) : bytes
    return new Response(body.slice().buffer as ArrayBuffer)
  }) as typeof fetch
}

let network: NetworkParams | undefined

/** One network for every agent of these tests (an open bootstrap pool). */
async function params(): Promise<NetworkParams> {
  network ??= (await testNetwork({ anchors: [await createIdentity({ seed: new Uint8Array(32).fill(9) })] }))
    .params
  return network
}

async function agent(options: { policy?: TabPolicy; policyHash?: string; seed: number }) {
  const published: AnyEnvelope[] = []
  const made = new Agent({
    identity: await createIdentity({ seed: new Uint8Array(32).fill(options.seed) }),
    params: await params(),
    bus: { publish: (env: AnyEnvelope) => void published.push(env) },
    clock: systemClock(),
    random: new SeededRandom(options.seed),
    artifacts: new MemoryArtifactStore(),
    ...(options.policy ? { policy: options.policy.gates } : {}),
    ...(options.policyHash ? { policyHash: options.policyHash } : {}),
  })
  return { agent: made, published }
}

const input = new TextEncoder().encode('the swarm checks the swarm')

describe('the policy in the tab', () => {
  it('loads the committed bundle, every conformance vector passing, and refuses a NEED over the credit range before publishing it', async () => {
    const policy = await loadTabPolicy(SOURCE, { fetch: bundleFetch() })
    expect(policy.conformancePassed).toBe(policy.manifest.vectors.length)
    expect(policy.gates.capsule).toBe(policy.manifest.policyHash)
    const { agent: tab, published } = await agent({ policy, seed: 1 })

    // Previewed without counting (the tab orders its refusals with it), then refused by the preflight.
    const draft = (budget: number) => ({ kind: 'NEED' as const, refs: [], payload: { budget } as never })
    expect(preflightDenial(policy, draft(2_000_000))).toEqual([
      { rule: 'budget-credits', field: 'payload.budget' },
    ])
    expect(preflightDenial(policy, draft(20))).toBeUndefined()
    expect(policy.gates.stats().preflight.evaluations).toBe(0)
    const denied = tab.post({ requires: ['word-frequency'], inputs: [input], budget: 2_000_000 })
    await expect(denied).rejects.toBeInstanceOf(PolicyDeniedError)
    const error = (await denied.catch((e: unknown) => e)) as PolicyDeniedError
    expect(error.gate).toBe('preflight')
    expect(error.reasons).toEqual([{ rule: 'budget-credits', field: 'payload.budget' }])
    expect(published).toEqual([])
    expect(policy.gates.stats().denialsByRule).toEqual({ 'budget-credits': 1 })

    const words = explainPolicyDenial(error.gate, error.reasons, { payload: { budget: 2_000_000 } })
    expect(words).toBe(
      'Refused by the policy before anything was sent: rule "budget-credits" on payload.budget = 2000000: the credits named (budget, price, cost or bond) are outside the range the policy allows.',
    )

    // Within the policy, the NEED goes out, naming the policy it was evaluated under.
    await tab.post({ requires: ['word-frequency'], inputs: [input], budget: 20 })
    expect(published.map((env) => [env.kind, env.policy])).toEqual([['NEED', policy.manifest.policyHash]])
  })

  it("accepts envelopes of peers under the built-in rules or the same policy, and denies an unknown capsule's", async () => {
    const policy = await loadTabPolicy(SOURCE, { fetch: bundleFetch() })
    const { agent: tab } = await agent({ policy, seed: 2 })
    const { agent: node, published: fromNode } = await agent({ seed: 3 })
    const { agent: otherTab, published: fromTab } = await agent({
      policy: await loadTabPolicy(SOURCE, { fetch: bundleFetch() }),
      seed: 4,
    })
    const { agent: stranger, published: fromStranger } = await agent({ policyHash: 'f'.repeat(64), seed: 5 })
    await node.post({ requires: ['sha256'], inputs: [input], budget: 10 })
    await otherTab.post({ requires: ['sha256'], inputs: [input], budget: 10 })
    await stranger.post({ requires: ['sha256'], inputs: [input], budget: 10 })
    expect(fromNode[0]!.policy).toBe(BUILTIN_POLICY_HASH)
    expect(await tab.deliver(fromNode[0]!)).toBeUndefined()
    expect(await tab.deliver(fromTab[0]!)).toBeUndefined()
    expect(await tab.deliver(fromStranger[0]!)).toBe('policy: denied by capsule-unknown (policy)')
    expect(tab.threads()).toEqual([fromNode[0]!.thread, fromTab[0]!.thread].sort())
    expect(policy.gates.stats().ingress).toMatchObject({ evaluations: 3, denials: 1 })
  })

  it('refuses a damaged or missing bundle, saying why', async () => {
    const damaged = loadTabPolicy(SOURCE, {
      fetch: bundleFetch((wasm) => {
        const copy = wasm.slice()
        copy[copy.length - 1]! ^= 1
        return copy
      }),
    })
    await expect(damaged).rejects.toBeInstanceOf(PolicyLoadError)
    await expect(damaged).rejects.toThrow(/not to the manifest's policyHash .*npm run policy:build/)
    const missing = loadTabPolicy(SOURCE, {
      fetch: (async () => new Response('not found', { status: 404 })) as typeof fetch,
    })
    await expect(missing).rejects.toThrow(/could not be fetched \(HTTP 404\)/)
  })
})
