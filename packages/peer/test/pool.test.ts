import { describe, expect, it } from 'vitest'
import { makeIdentities, sign, TEST_NET } from '../../../test-support/envelopes.ts'
import { builtinCapabilities } from '../src/agent/capabilities.ts'
import { type AcceptedManifest, DEFAULT_GENESIS, deriveLedger } from '../src/core/economy/derive.ts'
import { requiredBond } from '../src/core/economy/proofs.ts'
import { selectCommittee } from '../src/core/economy/selection.ts'
import { BadSignatureError, MalformedEnvelopeError, SchemaViolationError } from '../src/core/errors.ts'
import type { Did } from '../src/core/types.ts'
import { MAX_MANIFEST_BYTES, manifestFromJson, signManifest, verifyManifest } from '../src/crypto/manifest.ts'
import { type FinalThread, finalThread } from './final-thread.ts'

const declared = { net: TEST_NET, org: 'acme', asn: 'AS64500', region: 'eu-west', stake: 200, seq: 1 }
/** The id of a network other than {@link TEST_NET}. */
const OTHER_NET = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
/** Credits each funded party holds at genesis (nothing else mints any, A7). */
const ALLOCATION = 1_000

/** A genesis rule allocating {@link ALLOCATION} to each of `dids`. */
const allocating = (...dids: Did[]) => ({ allocations: dids.map((did) => ({ did, amount: ALLOCATION })) })

/** The fixture's requester, worker and verifier funded at genesis, its verifier staked. */
function funded(fixture: FinalThread) {
  return {
    genesis: allocating(fixture.requester.did, fixture.worker.did, fixture.verifier.did),
    genesisVerifiers: [fixture.verifier.did],
  }
}

describe('verifier manifests', () => {
  it('refuses manifest text over the limit before parsing it (found by the fuzzer: 3 MB of nested brackets)', () => {
    const bomb = new TextEncoder().encode(`{"region":${'['.repeat(3_000_000)}`)
    expect(() => manifestFromJson(bomb)).toThrow(MalformedEnvelopeError)
    expect(() => manifestFromJson(bomb)).toThrow(new RegExp(`at most ${MAX_MANIFEST_BYTES} bytes`))
    expect(() => manifestFromJson(new TextEncoder().encode('{"v":'))).toThrow(MalformedEnvelopeError)
    expect(() => manifestFromJson(Uint8Array.from([0x7b, 0xff, 0x7d]))).toThrow(MalformedEnvelopeError)
    expect(manifestFromJson(new TextEncoder().encode('{"v":2}'))).toEqual({ v: 2 })
  })

  it('verify after a trip through JSON, and name what is wrong otherwise', async () => {
    const [alice, mallory] = await makeIdentities(2, 71)
    const manifest = await signManifest(alice!, declared)
    expect(await verifyManifest(JSON.parse(JSON.stringify(manifest)))).toEqual(manifest)
    expect(await verifyManifest(manifest, TEST_NET)).toEqual(manifest)
    // A manifest of one network is refused by another, and its net cannot be edited after signing.
    await expect(verifyManifest(manifest, OTHER_NET)).rejects.toMatchObject({ field: 'net' })
    await expect(verifyManifest({ ...manifest, net: OTHER_NET })).rejects.toBeInstanceOf(BadSignatureError)
    const foreign = await signManifest(alice!, { ...declared, net: OTHER_NET })
    await expect(verifyManifest(foreign, TEST_NET)).rejects.toBeInstanceOf(SchemaViolationError)
    await expect(verifyManifest({ ...manifest, net: 'can-swarm' })).rejects.toMatchObject({ field: 'net' })
    // Version 1 manifests (no network) are refused.
    const { net: _net, ...unbound } = manifest
    await expect(verifyManifest({ ...unbound, v: 1 })).rejects.toBeInstanceOf(SchemaViolationError)

    await expect(verifyManifest({ ...manifest, stake: 201 })).rejects.toBeInstanceOf(BadSignatureError)
    const forged = await signManifest(mallory!, declared)
    await expect(verifyManifest({ ...forged, did: alice!.did })).rejects.toBeInstanceOf(BadSignatureError)
    await expect(verifyManifest({ ...manifest, asn: '64500' })).rejects.toMatchObject({ field: 'asn' })
    await expect(verifyManifest({ ...manifest, extra: 1 })).rejects.toBeInstanceOf(SchemaViolationError)
    await expect(verifyManifest({ ...manifest, sig: '!!' })).rejects.toBeInstanceOf(BadSignatureError)
    await expect(verifyManifest('nope')).rejects.toBeInstanceOf(SchemaViolationError)
  })
})

describe('the verifier pool from manifests', () => {
  it('bonds the declared stake on joining, unbonds it on leaving, and refuses stake nobody holds', async () => {
    const [alice, bob, carol, dave] = await makeIdentities(4, 72)
    const params = (await finalThread({ output: new Uint8Array(), tag: 73 })).params
    const manifests = [
      await signManifest(alice!, declared),
      await signManifest(bob!, { ...declared, org: 'bobco', stake: ALLOCATION + 1 }),
      await signManifest(carol!, { ...declared, org: 'carolco', region: 'us-east' }),
      await signManifest(carol!, { ...declared, org: 'carolco', region: 'us-east', stake: 0, seq: 2 }),
      // Dave holds nothing: a manifest mints nothing (A7), so his stake is refused.
      await signManifest(dave!, { ...declared, org: 'daveco' }),
    ]
    const genesis = allocating(alice!.did, bob!.did, carol!.did)
    const derived = deriveLedger({ replicas: [], params, nowMs: 0, manifests, genesis })
    expect(derived.ledger.conservationGap()).toBe(0)
    expect(derived.pool.map((entry) => entry.did)).toEqual([alice!.did])
    expect(derived.pool[0]).toMatchObject({ stake: 200, org: 'acme', asn: 'AS64500', region: 'eu-west' })
    expect(derived.ledger.account(alice!.did)).toMatchObject({ balance: ALLOCATION - 200, staked: 200 })
    // Bob asked for more than he holds, Dave for what he does not hold: refused, out of the pool.
    expect(derived.refused.filter((r) => r.op === 'stake')).toEqual([
      { op: 'stake', reason: 'insufficient-funds' },
      { op: 'stake', reason: 'insufficient-funds' },
    ])
    expect(derived.ledger.account(bob!.did).staked).toBe(0)
    expect(derived.ledger.account(dave!.did)).toMatchObject({ balance: 0, staked: 0 })
    // Carol's newest manifest leaves: never bonded here, so nothing to unbond and no pool entry.
    expect(derived.ledger.account(carol!.did).staked).toBe(0)
    expect(derived.ledger.supply.minted).toBe(3 * ALLOCATION)
    // A manifest of another network bonds nothing here, even when a caller forgot to verify it.
    const foreign = deriveLedger({
      replicas: [],
      params,
      nowMs: 0,
      manifests: [await signManifest(alice!, { ...declared, net: OTHER_NET })],
      genesis,
    })
    expect(foreign.ledger.account(alice!.did)).toMatchObject({ balance: ALLOCATION, staked: 0 })
    expect(foreign.pool).toEqual([])

    // A genesis verifier (listed, staked by the genesis rule) that leaves: its stake goes to unbonding.
    const fixture = await finalThread({ output: new Uint8Array([1]), tag: 76 })
    const listed = fixture.verifier
    const stays = deriveLedger({
      replicas: [fixture.replica],
      params: fixture.params,
      nowMs: 0,
      ...funded(fixture),
    })
    expect(stays.ledger.account(listed.did).staked).toBe(DEFAULT_GENESIS.verifierStake)
    const leaves = deriveLedger({
      replicas: [fixture.replica],
      params: fixture.params,
      nowMs: 0,
      manifests: [await signManifest(listed, { ...declared, stake: 100 })],
      ...funded(fixture),
    })
    expect(leaves.ledger.account(listed.did)).toMatchObject({
      staked: 100,
      unbonding: [expect.objectContaining({ amount: DEFAULT_GENESIS.verifierStake - 100 })],
    })
    expect(leaves.pool.map((entry) => entry.did)).toEqual([listed.did])
    const gone = deriveLedger({
      replicas: [fixture.replica],
      params: fixture.params,
      nowMs: 0,
      manifests: [await signManifest(listed, { ...declared, stake: 0, seq: 2 })],
      ...funded(fixture),
    })
    expect(gone.ledger.account(listed.did).staked).toBe(0)
    expect(gone.pool).toEqual([])
    expect(gone.ledger.conservationGap()).toBe(0)
  })

  it('feeds settled outcomes into reputation and the snapshot committees are drawn from', async () => {
    const output = await builtinCapabilities().run('word-frequency', [new TextEncoder().encode('a b a')])
    const fixture = await finalThread({ output, tag: 74 })
    const { verifier, worker, params, replica } = fixture
    const [other] = await makeIdentities(1, 75)
    const manifests = [
      await signManifest(verifier, declared),
      // same org as the verifier: the diversity cap keeps them out of one committee
      await signManifest(other!, { ...declared, region: 'ap-south' }),
    ]
    const derived = deriveLedger({
      replicas: [replica],
      params,
      nowMs: Number.POSITIVE_INFINITY,
      manifests,
      genesis: allocating(fixture.requester.did, worker.did, verifier.did, other!.did),
      genesisVerifiers: [verifier.did],
    })
    expect(derived.outcomes).toContainEqual(expect.objectContaining({ did: worker.did, kind: 'finalized' }))
    expect(derived.outcomes).toContainEqual(
      expect.objectContaining({ did: verifier.did, kind: 'honest-attestation' }),
    )
    const entry = derived.pool.find((e) => e.did === verifier.did)!
    expect(entry.reputationPerMille).toBeGreaterThan(500)
    expect(derived.pool.find((e) => e.did === other!.did)!.reputationPerMille).toBe(500)
    expect(selectCommittee('seed', derived.pool, 0, { size: 2 })).toHaveLength(1)
    expect(selectCommittee('seed', derived.pool, 0, { size: 2, maxPerOrg: 2 })).toHaveLength(2)
  })

  it('lowers the reputation of a worker that spikes its bounty and challenges its own result', async () => {
    const output = await builtinCapabilities().run('word-frequency', [new TextEncoder().encode('a b a')])
    const fixture = await finalThread({ output, verifyBounty: 100, cost: 3, tag: 77 })
    const { worker, verifier, params, replica, task } = fixture
    const commit = replica.state.tasks.get(task)!.commit!
    const proof = { type: 'output-mismatch' as const, expected: [commit.outputs[0]!] }
    replica.receive(
      await sign(worker, 'CHALLENGE', fixture.thread, {
        task,
        commit: commit.id,
        proof,
        bond: requiredBond(proof),
      }),
      0,
    )
    expect(replica.state.tasks.get(task)!.commit!.challenges.size).toBe(1)
    const derived = deriveLedger({
      replicas: [replica],
      params,
      nowMs: Number.POSITIVE_INFINITY,
      ...funded(fixture),
    })
    const kinds = derived.outcomes.filter((o) => o.did === worker.did).map((o) => o.kind)
    expect(kinds).toEqual(expect.arrayContaining(['bounty-spike', 'self-challenge', 'finalized']))
    expect(derived.reputation.get(worker.did)).toBeLessThan(500)
    expect(derived.reputation.get(verifier.did)).toBeGreaterThan(500)
    // A self-challenge dated far in the future counts as of now, not of its own date.
    replica.receive(
      await sign(
        worker,
        'CHALLENGE',
        fixture.thread,
        {
          task,
          commit: commit.id,
          proof: { ...proof, expected: [fixture.input] },
          bond: requiredBond(proof),
        },
        { ts: 10 ** 13 },
      ),
      0,
    )
    const nowMs = 5_000_000
    const dated = deriveLedger({ replicas: [replica], params, nowMs, ...funded(fixture) })
    const selfChallenges = dated.outcomes.filter((o) => o.kind === 'self-challenge')
    expect(selfChallenges).toHaveLength(2)
    expect(Math.max(...selfChallenges.map((o) => o.atMs))).toBeLessThanOrEqual(nowMs)

    // The same work with an ordinary bounty and no self-challenge: no abuse recorded.
    const fair = await finalThread({ output, verifyBounty: 2, cost: 3, tag: 78 })
    const clean = deriveLedger({
      replicas: [fair.replica],
      params: fair.params,
      nowMs: Number.POSITIVE_INFINITY,
      ...funded(fair),
    })
    expect(clean.outcomes.map((o) => o.kind)).not.toContain('bounty-spike')
    expect(clean.reputation.get(fair.worker.did)).toBeGreaterThan(500)
  })

  it('applies a manifest at the time an anchor accepted it, on the same timeline as grants (A7)', async () => {
    const [eve, anchor] = await makeIdentities(2, 79)
    const params = (await finalThread({ output: new Uint8Array(), tag: 80 })).params
    const manifest = await signManifest(eve!, declared)
    const grant = { net: params.network, to: eve!.did, amount: ALLOCATION, atMs: 100, anchor: anchor!.did }
    const at = (atMs: number): AcceptedManifest => ({ ...manifest, atMs })
    const before = deriveLedger({ replicas: [], params, nowMs: 0, manifests: [at(50)], grants: [grant] })
    expect(before.refused).toEqual([{ op: 'stake', reason: 'insufficient-funds' }])
    expect(before.pool).toEqual([])
    const after = deriveLedger({ replicas: [], params, nowMs: 0, manifests: [at(150)], grants: [grant] })
    expect(after.refused).toEqual([])
    expect(after.pool.map((entry) => entry.did)).toEqual([eve!.did])
    expect(after.ledger.account(eve!.did)).toMatchObject({ balance: ALLOCATION - 200, staked: 200 })
    // At the same time, the grant comes first.
    expect(
      deriveLedger({ replicas: [], params, nowMs: 0, manifests: [at(100)], grants: [grant] }).pool,
    ).toHaveLength(1)
  })
})
