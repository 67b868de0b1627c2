import { describe, expect, it } from 'vitest'
import { builtinCapabilities } from '../src/agent/capabilities.ts'
import { DEFAULT_GENESIS, deriveLedger } from '../src/core/economy/derive.ts'
import { requiredBond } from '../src/core/economy/proofs.ts'
import { selectCommittee } from '../src/core/economy/selection.ts'
import { BadSignatureError, SchemaViolationError } from '../src/core/errors.ts'
import { signManifest, verifyManifest } from '../src/crypto/manifest.ts'
import { finalThread } from './final-thread.ts'
import { makeIdentities, sign } from './helpers.ts'

const declared = { org: 'acme', asn: 'AS64500', region: 'eu-west', stake: 200, seq: 1 }

describe('verifier manifests', () => {
  it('verify after a trip through JSON, and name what is wrong otherwise', async () => {
    const [alice, mallory] = await makeIdentities(2, 71)
    const manifest = await signManifest(alice!, declared)
    expect(await verifyManifest(JSON.parse(JSON.stringify(manifest)))).toEqual(manifest)

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
    const [alice, bob, carol] = await makeIdentities(3, 72)
    const params = (await finalThread({ thread: 'unused', output: new Uint8Array(), tag: 73 })).params
    const manifests = [
      await signManifest(alice!, declared),
      await signManifest(bob!, { ...declared, org: 'bobco', stake: DEFAULT_GENESIS.faucetGrant + 1 }),
      await signManifest(carol!, { ...declared, org: 'carolco', region: 'us-east' }),
      await signManifest(carol!, { ...declared, org: 'carolco', region: 'us-east', stake: 0, seq: 2 }),
    ]
    const derived = deriveLedger({ replicas: [], params, nowMs: 0, manifests })
    expect(derived.ledger.conservationGap()).toBe(0)
    expect(derived.pool.map((entry) => entry.did)).toEqual([alice!.did])
    expect(derived.pool[0]).toMatchObject({ stake: 200, org: 'acme', asn: 'AS64500', region: 'eu-west' })
    expect(derived.ledger.account(alice!.did)).toMatchObject({
      balance: DEFAULT_GENESIS.faucetGrant - 200,
      staked: 200,
    })
    // Bob asked for more than he holds: refused, so he is not in the pool.
    expect(derived.refused).toContainEqual({ op: 'stake', reason: 'insufficient-funds' })
    expect(derived.ledger.account(bob!.did).staked).toBe(0)
    // Carol's newest manifest leaves: never bonded here, so nothing to unbond and no pool entry.
    expect(derived.ledger.account(carol!.did).staked).toBe(0)

    // A genesis verifier (listed, staked by the genesis rule) that leaves: its stake goes to unbonding.
    const fixture = await finalThread({ thread: 'need-leave', output: new Uint8Array([1]), tag: 76 })
    const listed = fixture.verifier
    const stays = deriveLedger({ replicas: [fixture.replica], params: fixture.params, nowMs: 0 })
    expect(stays.ledger.account(listed.did).staked).toBe(DEFAULT_GENESIS.verifierStake)
    const leaves = deriveLedger({
      replicas: [fixture.replica],
      params: fixture.params,
      nowMs: 0,
      manifests: [await signManifest(listed, { ...declared, stake: 100 })],
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
    })
    expect(gone.ledger.account(listed.did).staked).toBe(0)
    expect(gone.pool).toEqual([])
    expect(gone.ledger.conservationGap()).toBe(0)
  })

  it('feeds settled outcomes into reputation and the snapshot committees are drawn from', async () => {
    const output = await builtinCapabilities().run('word-frequency', [new TextEncoder().encode('a b a')])
    const fixture = await finalThread({ thread: 'need-rep', output, tag: 74 })
    const { verifier, worker, params, replica } = fixture
    const [other] = await makeIdentities(1, 75)
    const manifests = [
      await signManifest(verifier, declared),
      // same org as the verifier: the diversity cap keeps them out of one committee
      await signManifest(other!, { ...declared, region: 'ap-south' }),
    ]
    const derived = deriveLedger({ replicas: [replica], params, nowMs: Number.POSITIVE_INFINITY, manifests })
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
    const fixture = await finalThread({ thread: 'need-abuse', output, verifyBounty: 100, cost: 3, tag: 77 })
    const { worker, verifier, params, replica } = fixture
    const commit = replica.state.tasks.get('p/count')!.commit!
    const proof = { type: 'output-mismatch' as const, expected: [commit.outputs[0]!] }
    replica.receive(
      await sign(worker, 'CHALLENGE', 'need-abuse', {
        task: 'p/count',
        commit: commit.id,
        proof,
        bond: requiredBond(proof),
      }),
      0,
    )
    expect(replica.state.tasks.get('p/count')!.commit!.challenges.size).toBe(1)
    const derived = deriveLedger({ replicas: [replica], params, nowMs: Number.POSITIVE_INFINITY })
    const kinds = derived.outcomes.filter((o) => o.did === worker.did).map((o) => o.kind)
    expect(kinds).toEqual(expect.arrayContaining(['bounty-spike', 'self-challenge', 'finalized']))
    expect(derived.reputation.get(worker.did)).toBeLessThan(500)
    expect(derived.reputation.get(verifier.did)).toBeGreaterThan(500)

    // The same work with an ordinary bounty and no self-challenge: no abuse recorded.
    const fair = await finalThread({ thread: 'need-fair', output, verifyBounty: 2, cost: 3, tag: 78 })
    const clean = deriveLedger({
      replicas: [fair.replica],
      params: fair.params,
      nowMs: Number.POSITIVE_INFINITY,
    })
    expect(clean.outcomes.map((o) => o.kind)).not.toContain('bounty-spike')
    expect(clean.reputation.get(fair.worker.did)).toBeGreaterThan(500)
  })
})
