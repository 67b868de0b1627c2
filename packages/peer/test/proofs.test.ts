import { describe, expect, it } from 'vitest'
import { makeIdentities, sign } from '../../../test-support/envelopes.ts'
import { artifactCid } from '../src/core/artifacts.ts'
import {
  contradictingVerifier,
  PROOF_COST,
  requiredBond,
  violatesJsonSchema,
} from '../src/core/economy/proofs.ts'
import type { AnyEnvelope } from '../src/core/types.ts'

describe('challenge proofs', () => {
  it('cost a bond proportional to the work of checking them', () => {
    expect(requiredBond({ type: 'output-mismatch', expected: [] })).toBe(PROOF_COST['output-mismatch'])
    expect(requiredBond({ type: 'contradicting-attestations', attestations: [] })).toBeLessThan(
      requiredBond({ type: 'output-mismatch', expected: [] }),
    )
  })

  it('find an equivocating verifier in two contradicting ATTESTs, and nothing else', async () => {
    const [verifier, other] = await makeIdentities(2, 211)
    const thread = 'need-proof'
    const commit = artifactCid(new TextEncoder().encode('commit-1'))
    const attest = (who = verifier!, verdict: 'pass' | 'fail' = 'pass', c = commit) =>
      sign(who, 'ATTEST', thread, { task: 'p/t', commit: c, verdict, evalDigest: 'x' })
    const pass = await attest()
    const fail = await attest(verifier!, 'fail')
    const otherFail = await attest(other!, 'fail')
    const elsewhere = await attest(verifier!, 'fail', artifactCid(new TextEncoder().encode('commit-2')))
    const log = new Map<string, AnyEnvelope>([pass, fail, otherFail, elsewhere].map((env) => [env.id, env]))
    const lookup = (id: string) => log.get(id)
    const check = (ids: string[]) =>
      contradictingVerifier({ type: 'contradicting-attestations', attestations: ids }, commit, lookup)
    expect(check([pass.id, fail.id])).toBe(verifier!.did)
    expect(check([pass.id, otherFail.id])).toBeUndefined()
    expect(check([pass.id, elsewhere.id])).toBeUndefined()
    expect(check([pass.id, pass.id])).toBeUndefined()
    expect(check([pass.id, 'unknown'])).toBeUndefined()
    expect(check([pass.id])).toBeUndefined()
  })

  it('see a JSON output that does not parse as a schema violation', () => {
    const bytes = (text: string) => new TextEncoder().encode(text)
    expect(violatesJsonSchema('application/json', bytes('[1,2'))).toBe(true)
    expect(violatesJsonSchema('application/json', bytes('[1,2]'))).toBe(false)
    expect(violatesJsonSchema('application/json', new Uint8Array([0xff, 0xfe]))).toBe(true)
    expect(violatesJsonSchema('text/plain', bytes('[1,2'))).toBe(false)
  })
})
