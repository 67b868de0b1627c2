/**
 * Policy capsules on the real compiled policy (packages/peer/policy-bundle, built by opa 1.22.3 and
 * instrumented by tools/wasm-gas): engine, gas, the three gates, capsules, divergence.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import { makeIdentities, TEST_NET, testParams } from '../../../test-support/envelopes.ts'
import { need } from '../../../test-support/prerequisites.ts'
import { Agent } from '../src/agent/agent.ts'
import { SeededRandom } from '../src/agent/ports.ts'
import { artifactCid, MemoryArtifactStore } from '../src/core/artifacts.ts'
import { sha256Hex } from '../src/core/codec.ts'
import {
  CapsuleInvalidError,
  GasExceededError,
  PolicyDeniedError,
  UnknownCapsuleError,
} from '../src/core/errors.ts'
import type { AnyEnvelope, Envelope, UnsignedEnvelope } from '../src/core/types.ts'
import { PROTOCOL_VERSION } from '../src/core/types.ts'
import type { Identity } from '../src/crypto/ed25519.ts'
import { signEnvelope } from '../src/crypto/envelopes.ts'
import {
  type AcceptedCapsule,
  type BundleManifest,
  CapsuleRegistry,
  capsuleHashOf,
  createCapsule,
  DivergenceDetector,
  decodeCapsule,
  denialError,
  encodeCapsule,
  explainDecision,
  fetchUnknownCapsules,
  loadPolicyEngine,
  type PolicyCapsule,
  PolicyGates,
  runConformance,
  verifyCapsule,
} from '../src/policy/index.ts'
import { readPolicyBundle, readPolicyWasm } from '../src/policy/node.ts'

let bundle: { wasm: Uint8Array; manifest: BundleManifest }
let author: Identity
let stranger: Identity
let peer: Identity
let capsule: PolicyCapsule
let accepted: AcceptedCapsule
let registry: CapsuleRegistry

beforeAll(async () => {
  bundle = await readPolicyBundle('base')
  ;[author, stranger, peer] = (await makeIdentities(3, 0x70)) as [Identity, Identity, Identity]
  capsule = await createCapsule(bundle, author)
  registry = new CapsuleRegistry({ trustedAuthors: [author.did] })
  accepted = await registry.accept(encodeCapsule(capsule))
})

function unsigned<K extends AnyEnvelope['kind']>(
  kind: K,
  payload: unknown,
  extra: Partial<UnsignedEnvelope> = {},
): UnsignedEnvelope {
  return {
    v: PROTOCOL_VERSION,
    net: TEST_NET,
    kind,
    thread: 'need-policy',
    sender: peer.did,
    lamport: 1,
    ts: 0,
    payload: payload as never,
    refs: [],
    policy: accepted.hash,
    epoch: 1,
    ...extra,
  }
}

/** A received envelope as the ingress gate sees it (the gate reads fields; the id and sig are not its job). */
function received(kind: string, payload: unknown, extra: Partial<UnsignedEnvelope> = {}): Envelope {
  return {
    ...unsigned(kind as AnyEnvelope['kind'], payload, extra),
    id: 'bafy-test',
    sig: new Uint8Array(64),
  }
}

const CLAIM_ID = artifactCid(new Uint8Array([1]))
const COMMIT_ID = artifactCid(new Uint8Array([2]))
const heartbeat = { task: 'p/t0', claim: CLAIM_ID, progress: 10 }
const telemetry = { cpuMs: 1, wallMs: 50, memoryBytes: 0, inputBytes: 10, outputBytes: 64 }

function commitEnvelope(overrides: Record<string, unknown> = {}): Envelope<'COMMIT'> {
  return received('COMMIT', {
    task: 'p/t0',
    claim: 'bafyclaim',
    outputs: ['bafyout'],
    telemetry,
    verifyBounty: 0,
    ...overrides,
  }) as Envelope<'COMMIT'>
}

const gatesFor = (engine = accepted.engine) =>
  new PolicyGates({ engine, capsule: accepted.hash, trusted: registry })

describe('the committed bundle', () => {
  it('matches its manifest: policy hash = SHA-256 of the WASM, one vector per conformance id', () => {
    expect(sha256Hex(bundle.wasm)).toBe(bundle.manifest.policyHash)
    expect(bundle.manifest.engine.opa).toBe('v1.22.3')
    expect(bundle.manifest.schemaVersion).toBe(1)
    expect(bundle.manifest.gasLimit).toBe(100_000)
    expect(bundle.manifest.vectors.map((v) => v.id)).toEqual(bundle.manifest.conformance)
    expect(bundle.manifest.conformance.length).toBeGreaterThanOrEqual(20)
  })

  it('passes every conformance vector on the JavaScript engine too', async () => {
    const engine = await loadPolicyEngine(bundle.wasm)
    expect(engine.policyHash).toBe(bundle.manifest.policyHash)
    const { passed, failed } = runConformance(engine, bundle.manifest.vectors)
    expect(failed).toEqual([])
    expect(passed).toEqual(bundle.manifest.conformance)
  })
})

describe('policy engine', () => {
  it('counts gas deterministically: the same units and digest on every instance, every time', async () => {
    const a = await loadPolicyEngine(bundle.wasm)
    const b = await loadPolicyEngine(bundle.wasm)
    const input = bundle.manifest.vectors.find((v) => v.id === 'conf-good-003')!.input
    const first = a.evaluate(input)
    a.evaluate(bundle.manifest.vectors[0]!.input)
    const again = a.evaluate(input)
    const other = b.evaluate(input)
    expect(first.allowed).toBe(true)
    expect(first.gasUsed).toBeGreaterThan(1000)
    expect(first.gasUsed).toBeLessThan(100_000)
    expect(again).toEqual(first)
    expect(other).toEqual(first)
    expect(again.evalDigest).toBe(first.evalDigest)
    expect(other.evalDigest).toBe(first.evalDigest)
    expect(first.evalDigest).toMatch(/^[0-9a-f]{64}$/)
    // The digest covers the decision: another input, another digest.
    expect(a.evaluate(bundle.manifest.vectors[0]!.input).evalDigest).not.toBe(first.evalDigest)
  })

  it('stops a deliberately expensive policy with a typed GasExceeded denial, not a hang', async () => {
    const engine = await loadPolicyEngine(await readPolicyWasm('expensive'))
    const cheap = engine.evaluate({ n: 3 })
    expect(cheap.allowed).toBe(true)
    expect(cheap.gasUsed).toBeLessThan(100_000)
    const decision = engine.evaluate({ n: 100_000 })
    expect(decision.allowed).toBe(false)
    expect(decision.reasons).toEqual([{ rule: 'gas-limit', field: 'gas' }])
    expect(decision.gasUsed).toBe(100_000)
    expect(decision.gasExceeded).toBeInstanceOf(GasExceededError)
    expect(decision.gasExceeded!.code).toBe('GAS_EXCEEDED')
    // The instance stays usable after the trap, and still counts the same.
    expect(engine.evaluate({ n: 3 })).toEqual(cheap)
    const gates = new PolicyGates({ engine, capsule: 'x' })
    expect(() => gates.enforce('ingress', decision)).toThrow(GasExceededError)
  })

  it('denies with GasExceeded when the base policy gets too little gas', () => {
    const input = bundle.manifest.vectors[0]!.input
    const decision = accepted.engine.evaluate(input, { gasLimit: 100 })
    expect(decision.allowed).toBe(false)
    expect(decision.gasExceeded).toBeInstanceOf(GasExceededError)
    expect(accepted.engine.evaluate(input).allowed).toBe(true)
  })

  it('refuses a module that is not instrumented for gas', async () => {
    const raw = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])
    await expect(loadPolicyEngine(raw)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'wasm' })
  })
})

describe('preflight gate', () => {
  it('allows the good path and caches by envelope content', () => {
    const gates = gatesFor()
    const env = unsigned('NEED', {
      need: 'need-policy',
      epoch: 1,
      requires: ['sha256'],
      inputs: [],
      produces: 'text/plain',
      budget: 50,
      deadlineMs: 0,
      bidWindowMs: 400,
    })
    const first = gates.preflight(env)
    expect(first.allowed).toBe(true)
    expect(first.gasUsed).toBeGreaterThan(0)
    expect(gates.preflight({ ...env, lamport: 9, ts: 5 })).toBe(first)
    expect(gates.stats().preflight).toMatchObject({ evaluations: 2, cacheHits: 1, denials: 0 })
  })

  it('denies an over-budget NEED, naming rule and field', () => {
    const gates = gatesFor()
    const decision = gates.preflight(
      unsigned('NEED', { need: 'n', budget: 2_000_000, bidWindowMs: 400, requires: [], inputs: [] }),
    )
    expect(decision.allowed).toBe(false)
    expect(decision.reasons).toEqual([{ rule: 'budget-credits', field: 'payload.budget' }])
    expect(explainDecision(decision)).toBe('denied by budget-credits (payload.budget)')
    const error = denialError('preflight', decision)
    expect(error).toBeInstanceOf(PolicyDeniedError)
    expect(error).toMatchObject({ code: 'POLICY_DENIED', field: 'payload.budget' })
    expect(gates.stats().denialsByRule).toEqual({ 'budget-credits': 1 })
  })

  it('denies retries and TTLs over budget', () => {
    const gates = gatesFor()
    const propose = gates.preflight(
      unsigned('PROPOSE', { need: 'n', proposal: 'p', patch: [], ballot: 17, price: 1 }),
    )
    expect(propose.reasons).toEqual([{ rule: 'budget-retries', field: 'payload.ballot' }])
    const claim = gates.preflight(
      unsigned('CLAIM', { task: 'p/t', leaseTtlMs: 3_600_000, cost: 1, etaMs: 1 }),
    )
    expect(claim.reasons).toEqual([{ rule: 'budget-ttl', field: 'payload.leaseTtlMs' }])
  })

  it('denies an oversize payload (over 1 MiB)', () => {
    const gates = gatesFor()
    const big = unsigned('UPDATE_PLAN', {
      ops: [{ op: 'ANNOTATE', task: 't', key: 'k', value: 'x'.repeat(1_048_577) }],
    })
    const decision = gates.preflight(big)
    expect(decision.allowed).toBe(false)
    expect(decision.reasons).toEqual([{ rule: 'payload-size', field: 'payload' }])
  })
})

describe('ingress gate', () => {
  it('allows a good envelope and denies an unknown kind', () => {
    const gates = gatesFor()
    expect(gates.ingress(received('HEARTBEAT', heartbeat)).allowed).toBe(true)
    const bogus = gates.ingress(received('SPAM', heartbeat))
    expect(bogus.allowed).toBe(false)
    expect(bogus.reasons).toEqual([{ rule: 'kind-allowed', field: 'kind' }])
  })

  it('lets an anchor’s GRANT through, at ingress and at preflight (no lease could start otherwise)', () => {
    const gates = gatesFor()
    const grant = { task: 'p/t0', claim: CLAIM_ID, leaseTtlMs: 2_000 }
    expect(gates.ingress(received('GRANT', grant)).allowed).toBe(true)
    expect(gates.preflight(unsigned('GRANT', grant)).allowed).toBe(true)
  })

  it('denies an oversize payload', () => {
    const gates = gatesFor()
    const decision = gates.ingress(
      received('CHECKPOINT', { epoch: 1, merkleRoot: 'x'.repeat(1_100_000), signers: [] }),
    )
    expect(decision.reasons).toEqual([{ rule: 'payload-size', field: 'payload' }])
  })

  it('enforces the message budget per sender and thread', () => {
    const gates = gatesFor()
    const env = received('HEARTBEAT', heartbeat)
    for (let i = 0; i < 10_000; i += 1) expect(gates.ingress(env).allowed).toBe(true)
    const over = gates.ingress(env)
    expect(over.reasons).toEqual([{ rule: 'budget-messages', field: 'sender' }])
    expect(gates.ingress(received('HEARTBEAT', heartbeat, { thread: 'other' })).allowed).toBe(true)
  })

  it('rejects an envelope evaluated under an unknown capsule, with a clear reason', () => {
    const gates = gatesFor()
    const decision = gates.ingress(received('HEARTBEAT', heartbeat, { policy: 'bafkunknowncapsule' }))
    expect(decision.allowed).toBe(false)
    expect(decision.reasons).toEqual([{ rule: 'capsule-unknown', field: 'policy' }])
    const error = denialError('ingress', decision, 'bafkunknowncapsule')
    expect(error).toBeInstanceOf(UnknownCapsuleError)
    expect(error!.message).toContain('not known or not trusted')
    expect(gates.stats().ingress).toMatchObject({ evaluations: 1, denials: 1 })
  })
})

describe('commit gate', () => {
  const check = { outputsMatch: true, measured: { inputBytes: 10, outputBytes: 64 }, taskClass: 'sha256' }

  it('allows a commit whose telemetry matches the measurement', () => {
    const decision = gatesFor().commit(commitEnvelope(), check)
    expect(decision).toMatchObject({ allowed: true, reasons: [] })
  })

  it('denies telemetry above the measurement and outputs that do not match', () => {
    const gates = gatesFor()
    const overclaimed = gates.commit(commitEnvelope({ telemetry: { ...telemetry, cpuMs: 900 } }), {
      ...check,
      measured: { ...check.measured, cpuMs: 10 },
    })
    expect(overclaimed.reasons).toEqual([
      { rule: 'telemetry-above-measured', field: 'payload.telemetry.cpuMs' },
    ])
    const bytes = gates.commit(commitEnvelope({ telemetry: { ...telemetry, outputBytes: 6400 } }), check)
    expect(bytes.reasons).toEqual([{ rule: 'telemetry-exact', field: 'payload.telemetry.outputBytes' }])
    // The other way round: the verifier measured more than the worker claimed (under-reporting).
    const under = gates.commit(commitEnvelope(), {
      ...check,
      measured: { inputBytes: 10, outputBytes: 6400 },
    })
    expect(under.reasons).toEqual([{ rule: 'telemetry-exact', field: 'payload.telemetry.outputBytes' }])
    const wrong = gates.commit(commitEnvelope(), { ...check, outputsMatch: false })
    expect(wrong.reasons).toEqual([{ rule: 'outputs-match', field: 'payload.outputs' }])
  })

  it('caps the verify bounty per task class', () => {
    const gates = gatesFor()
    expect(gates.commit(commitEnvelope({ verifyBounty: 100 }), check).allowed).toBe(true)
    expect(gates.commit(commitEnvelope({ verifyBounty: 101 }), check).reasons).toEqual([
      { rule: 'bounty-cap', field: 'payload.verifyBounty' },
    ])
    expect(
      gates.commit(commitEnvelope({ verifyBounty: 101 }), { ...check, taskClass: 'word-frequency' }).allowed,
    ).toBe(true)
  })
})

describe('capsules', () => {
  it('round-trips, verifies, and is accepted with its hash = artifact CID of its encoding', async () => {
    const bytes = encodeCapsule(capsule)
    const decoded = decodeCapsule(bytes)
    await verifyCapsule(decoded)
    expect(accepted.hash).toBe(capsuleHashOf(bytes))
    expect(accepted.capsule.conformance).toEqual(bundle.manifest.conformance)
    expect(registry.has(accepted.hash)).toBe(true)
    const store = new MemoryArtifactStore()
    expect(await store.put(bytes)).toBe(accepted.hash)
    const other = new CapsuleRegistry({ trustedAuthors: [author.did] })
    expect((await other.fetch(accepted.hash, store)).hash).toBe(accepted.hash)
  })

  it('detects a tampered capsule: altered WASM after signing fails the signature', async () => {
    const wasm = capsule.wasm.slice()
    wasm[wasm.length - 1] = wasm[wasm.length - 1]! ^ 1
    const tampered = { ...capsule, wasm, policyHash: sha256Hex(wasm) }
    await expect(verifyCapsule(tampered)).rejects.toBeInstanceOf(CapsuleInvalidError)
    const fresh = new CapsuleRegistry({ trustedAuthors: [author.did] })
    await expect(fresh.accept(encodeCapsule(tampered))).rejects.toMatchObject({
      code: 'CAPSULE_INVALID',
      field: 'sig',
    })
    expect(fresh.hashes()).toEqual([])
  })

  it('refuses an untrusted author and a capsule whose conformance fails locally', async () => {
    const untrusted = await createCapsule(bundle, stranger)
    const fresh = new CapsuleRegistry({ trustedAuthors: [author.did] })
    await expect(fresh.accept(untrusted)).rejects.toMatchObject({ field: 'author' })
    const lying = await createCapsule(
      {
        wasm: bundle.wasm,
        manifest: {
          ...bundle.manifest,
          vectors: bundle.manifest.vectors.map((v) =>
            v.id === 'conf-kind-001' ? { ...v, expect: { allowed: true, rules: [] } } : v,
          ),
        },
      },
      author,
    )
    await expect(fresh.accept(lying)).rejects.toMatchObject({ code: 'CAPSULE_INVALID', field: 'conformance' })
    // A vector records the gas units; an engine that counts differently fails it.
    const wrongGas = await createCapsule(
      {
        wasm: bundle.wasm,
        manifest: {
          ...bundle.manifest,
          vectors: bundle.manifest.vectors.map((v, i) =>
            i === 0 ? { ...v, expect: { ...v.expect, gasUsed: v.expect.gasUsed! + 1 } } : v,
          ),
        },
      },
      author,
    )
    await expect(fresh.accept(wrongGas)).rejects.toMatchObject({
      code: 'CAPSULE_INVALID',
      field: 'conformance',
    })
  })
})

describe('capsule distribution', () => {
  it('fetches an unknown capsule met at ingress, verifies it, and then lets its envelopes in', async () => {
    const store = new MemoryArtifactStore()
    // Another trusted capsule (same policy, re-signed with another vector order: another hash).
    const second = await createCapsule(
      {
        wasm: bundle.wasm,
        manifest: { ...bundle.manifest, vectors: [...bundle.manifest.vectors].reverse() },
      },
      author,
    )
    const secondHash = await store.put(encodeCapsule(second))
    const mine = new CapsuleRegistry({ trustedAuthors: [author.did] })
    const own = await mine.accept(capsule)
    let settle: { resolve: (hash: string) => void; reject: (error: unknown) => void } | undefined
    const fetched = new Promise<string>((resolve, reject) => {
      settle = { resolve, reject }
    })
    const gates = new PolicyGates({
      engine: own.engine,
      capsule: own.hash,
      trusted: mine,
      onUnknownCapsule: fetchUnknownCapsules(mine, store, {
        onAccepted: (hash) => settle!.resolve(hash),
        onError: (error) => settle!.reject(error),
      }),
    })
    const env = received('HEARTBEAT', heartbeat, { policy: secondHash })
    expect(gates.ingress(env).reasons).toEqual([{ rule: 'capsule-unknown', field: 'policy' }])
    expect(await fetched).toBe(secondHash)
    expect(gates.ingress(env).allowed).toBe(true)
    expect(mine.has(secondHash)).toBe(true)
  })

  it('keeps denying a capsule whose fetch or verification fails', async () => {
    const store = new MemoryArtifactStore()
    const bad = await createCapsule(bundle, stranger)
    const badHash = await store.put(encodeCapsule(bad))
    const mine = new CapsuleRegistry({ trustedAuthors: [author.did] })
    const own = await mine.accept(capsule)
    const failure = await new Promise<unknown>((resolve) => {
      const gates = new PolicyGates({
        engine: own.engine,
        capsule: own.hash,
        trusted: mine,
        onUnknownCapsule: fetchUnknownCapsules(mine, store, { onError: resolve }),
      })
      gates.ingress(received('HEARTBEAT', heartbeat, { policy: badHash }))
    })
    expect(failure).toBeInstanceOf(CapsuleInvalidError)
    expect(mine.has(badHash)).toBe(false)
  })
})

describe('divergence detector', () => {
  it('reports verifiers whose digests differ for the same commit and capsule', async () => {
    const [a, b, c] = await makeIdentities(3, 0x71)
    const attest = (who: Identity, evalDigest: string) =>
      signEnvelope(
        {
          ...unsigned('ATTEST', { task: 'p/t0', commit: COMMIT_ID, verdict: 'pass', evalDigest }),
          sender: who.did,
        },
        who,
      ) as Promise<AnyEnvelope>
    const detector = new DivergenceDetector()
    expect(detector.observe(await attest(a!, 'd1'))).toBeUndefined()
    expect(detector.observe(await attest(b!, 'd1'))).toBeUndefined()
    const divergence = detector.observe(await attest(c!, 'd2'))
    expect(divergence?.digests).toEqual([
      { evalDigest: 'd1', verifiers: [a!.did, b!.did].sort() },
      { evalDigest: 'd2', verifiers: [c!.did] },
    ])
    expect(detector.divergences()).toHaveLength(1)
  })
})

describe('agent with policy gates', () => {
  it('stamps the capsule hash on what it publishes and refuses to publish what preflight denies', async () => {
    const gates = gatesFor()
    const published: AnyEnvelope[] = []
    const agent = new Agent({
      identity: peer,
      params: testParams({ verifiers: [peer.did], bootstrap: true }),
      bus: { publish: (env) => published.push(env) },
      clock: { now: () => 0, setTimer: () => () => {} },
      random: new SeededRandom(1),
      artifacts: new MemoryArtifactStore(),
      policy: gates,
    })
    await agent.post({ requires: ['sha256'], inputs: [new TextEncoder().encode('x')], budget: 50 })
    expect(published).toHaveLength(1)
    expect(published[0]!.policy).toBe(accepted.hash)
    await expect(
      agent.post({ requires: ['sha256'], inputs: [new TextEncoder().encode('x')], budget: 5_000_000 }),
    ).rejects.toBeInstanceOf(PolicyDeniedError)
    expect(published).toHaveLength(1)
    // Ingress: a delivered envelope under an unknown capsule never reaches the replica.
    const foreign = await signEnvelope(
      { ...unsigned('HEARTBEAT', heartbeat), sender: stranger.did, policy: 'bafkforeign', thread: 'need-x' },
      stranger,
    )
    expect(await agent.deliver(foreign as AnyEnvelope)).toBe('policy: denied by capsule-unknown (policy)')
    expect(agent.replica('need-x')).toBeUndefined()
    agent.stop()
  })
})

describe('the Rego toolchain (real opa)', () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url))
  const opa = join(root, '.tools', 'bin', 'opa')
  const present = need('opa', import.meta.filename)

  it.skipIf(!present)('opa test policies/ passes every conformance test with the pinned opa v1.22.3', () => {
    const version = spawnSync(opa, ['version'], { encoding: 'utf8', timeout: 30_000 })
    expect(version.stdout).toMatch(/^Version: 1\.22\.3$/m)
    const run = spawnSync(opa, ['test', 'policies/', '--format', 'json'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    })
    expect(run.status, run.stderr).toBe(0)
    const results = JSON.parse(run.stdout) as { name: string; fail?: boolean }[]
    expect(results.filter((r) => r.fail)).toEqual([])
    const ids = results
      .filter((r) => r.name.startsWith('test_conf_') && r.name !== 'test_conf_meta_001')
      .map((r) => r.name.slice(5).replaceAll('_', '-'))
      .sort()
    expect(ids).toEqual(bundle.manifest.conformance)
  })
})
