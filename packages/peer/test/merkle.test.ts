/**
 * Thread trees and inclusion proofs (core/thread/merkle.ts), in Node and in Chromium: every member
 * proves, nothing else does, any tampering breaks a proof, and a light peer walking the stored
 * blocks down from the root finds the same proof.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from '@noble/hashes/sha2.js'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import * as digest from 'multiformats/hashes/digest'
import { describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../src/core/errors.ts'
import {
  buildThreadTree,
  decodeThreadRoot,
  type InclusionProof,
  proveInclusion,
  THREAD_TREE_TYPE,
  type TreeLeaf,
  threadRoot,
  verifyInclusion,
  walkToLeaf,
} from '../src/core/thread/merkle.ts'
import { arbCid, arbEnvelope } from './arbitraries.ts'

const THREAD = 'need-merkle'

/** Leaves of one thread: distinct ids, lamports and senders drawn from small sets (ties happen). */
const arbLeaves = (maxLength = 70): fc.Arbitrary<TreeLeaf[]> =>
  fc
    .uniqueArray(arbCid, { minLength: 1, maxLength })
    .chain((ids) =>
      fc.tuple(
        fc.constant(ids),
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: ids.length, maxLength: ids.length }),
        fc.array(fc.constantFrom('did:key:a', 'did:key:b'), { minLength: ids.length, maxLength: ids.length }),
      ),
    )
    .map(([ids, lamports, senders]) =>
      ids.map((id, index) => ({ id, lamport: lamports[index]!, sender: senders[index]!, thread: THREAD })),
    )

function blockCid(value: unknown): string {
  return CID.createV1(0x71, digest.create(0x12, sha256(dagCbor.encode(value)))).toString()
}

describe('thread trees', () => {
  it('every member proves its inclusion, and no one else does (property)', () => {
    fc.assert(
      fc.property(arbLeaves(), arbCid, (leaves, stranger) => {
        const tree = buildThreadTree(leaves)
        for (const leaf of leaves) {
          const proof = proveInclusion(tree, leaf.id)!
          expect(verifyInclusion(tree.root, leaf.id, proof)).toBe(true)
          if (!tree.leaves.includes(stranger)) expect(verifyInclusion(tree.root, stranger, proof)).toBe(false)
        }
        if (!tree.leaves.includes(stranger)) expect(proveInclusion(tree, stranger)).toBeUndefined()
      }),
      { numRuns: 60 },
    )
  })

  it('a tampered proof or another root fails (property)', () => {
    const tamper = fc.constantFrom(
      'index+1',
      'index-1',
      'count+1',
      'count-1',
      'thread',
      'path-entry',
      'path-drop',
      'path-extra',
      'path-reverse',
      'root',
    )
    fc.assert(
      fc.property(arbLeaves(), fc.nat(), tamper, arbCid, (leaves, pick, how, randomCid) => {
        const tree = buildThreadTree(leaves)
        const id = tree.leaves[pick % tree.leaves.length]!
        const proof = proveInclusion(tree, id)!
        let root = tree.root
        const bad: InclusionProof = { ...proof, path: [...proof.path] }
        switch (how) {
          case 'index+1':
            bad.index += 1
            break
          case 'index-1':
            bad.index -= 1
            break
          case 'count+1':
            bad.count += 1
            break
          case 'count-1':
            bad.count -= 1
            break
          case 'thread':
            bad.thread = `${THREAD}-other`
            break
          case 'path-entry':
            if (bad.path.length === 0) bad.path.push(randomCid)
            else bad.path[pick % bad.path.length] = randomCid
            break
          case 'path-drop':
            if (bad.path.length === 0) bad.path.push(randomCid)
            else bad.path.pop()
            break
          case 'path-extra':
            bad.path.push(randomCid)
            break
          case 'path-reverse':
            if (bad.path.length < 2) bad.path.push(randomCid)
            else bad.path.reverse()
            break
          case 'root':
            root = threadRoot([...leaves, { id: randomCid, lamport: 9, sender: 'did:key:z', thread: THREAD }])
            break
        }
        // A reversed path of equal siblings or an index moved onto a twin leaf would still be honest.
        fc.pre(JSON.stringify(bad) !== JSON.stringify(proof) || root !== tree.root)
        fc.pre(!(how === 'path-reverse' && bad.path.every((entry) => entry === bad.path[0])))
        expect(verifyInclusion(root, id, bad)).toBe(false)
      }),
      { numRuns: 300 },
    )
  })

  it('the root depends on the set of envelopes, not on the order they came in', () => {
    fc.assert(
      fc.property(arbLeaves(30), fc.integer(), (leaves, seed) => {
        const shuffled = [...leaves].sort(
          (a, b) => ((a.id.charCodeAt(7) ^ seed) & 7) - ((b.id.charCodeAt(7) ^ seed) & 7),
        )
        expect(threadRoot(shuffled)).toBe(threadRoot(leaves))
        expect(threadRoot([...leaves, leaves[0]!])).toBe(threadRoot(leaves))
        if (leaves.length > 1) expect(threadRoot(leaves.slice(1))).not.toBe(threadRoot(leaves))
      }),
      { numRuns: 50 },
    )
  })

  it('has the documented layout: canonical order, RFC 9162 shape, a root block naming thread and count', () => {
    const [a, b, c] = ['x', 'y', 'z'].map((seed) =>
      CID.createV1(0x71, digest.create(0x12, sha256(new TextEncoder().encode(seed)))),
    ) as [CID, CID, CID]
    // c sorts first (lamport 1), then a and b (lamport 2, by sender).
    const tree = buildThreadTree([
      { id: a.toString(), lamport: 2, sender: 'did:key:a', thread: THREAD },
      { id: b.toString(), lamport: 2, sender: 'did:key:b', thread: THREAD },
      { id: c.toString(), lamport: 1, sender: 'did:key:z', thread: THREAD },
    ])
    expect(tree.leaves).toEqual([c, a, b].map(String))
    const left = { l: c, r: a }
    const top = { l: CID.parse(blockCid(left)), r: b }
    const root = { v: 1, type: THREAD_TREE_TYPE, thread: THREAD, count: 3, tree: CID.parse(blockCid(top)) }
    expect(tree.root).toBe(blockCid(root))
    expect(tree.blocks.map((block) => block.cid)).toEqual([blockCid(root), blockCid(top), blockCid(left)])
    expect(decodeThreadRoot(tree.blocks[0]!.bytes)).toMatchObject({ thread: THREAD, count: 3 })
    expect(proveInclusion(tree, b.toString())).toEqual({
      thread: THREAD,
      index: 2,
      count: 3,
      path: [blockCid(left)],
    })
    // One envelope: the top node is the envelope itself and the proof is empty.
    const single = buildThreadTree([{ id: a.toString(), lamport: 1, sender: 'did:key:a', thread: THREAD }])
    expect(proveInclusion(single, a.toString())).toEqual({ thread: THREAD, index: 0, count: 1, path: [] })
    expect(verifyInclusion(single.root, a.toString(), { thread: THREAD, index: 0, count: 1, path: [] })).toBe(
      true,
    )
  })

  it('an inner node cannot pass for an envelope', () => {
    fc.assert(
      fc.property(arbLeaves(40), fc.nat(), (leaves, pick) => {
        const tree = buildThreadTree(leaves)
        const inner = tree.blocks.slice(1)
        fc.pre(inner.length > 0)
        const node = inner[pick % inner.length]!.cid
        for (let index = 0; index < tree.leaves.length; index += 1) {
          const honest = proveInclusion(tree, tree.leaves[index]!)!
          for (let drop = 1; drop <= honest.path.length; drop += 1) {
            const shortened = { ...honest, path: honest.path.slice(drop) }
            expect(verifyInclusion(tree.root, node, shortened)).toBe(false)
          }
        }
      }),
      { numRuns: 25 },
    )
  })

  it('a light peer walks root → inner nodes to any envelope and gets a valid proof', async () => {
    await fc.assert(
      fc.asyncProperty(arbLeaves(50), fc.nat(), async (leaves, pick) => {
        const tree = buildThreadTree(leaves)
        const blocks = new Map(tree.blocks.map((block) => [block.cid, block.bytes]))
        const fetched: string[] = []
        const index = pick % tree.leaves.length
        const { envelopeId, proof } = await walkToLeaf(
          decodeThreadRoot(blocks.get(tree.root)!),
          index,
          async (cid) => {
            fetched.push(cid.toString())
            return blocks.get(cid.toString())!
          },
        )
        expect(envelopeId).toBe(tree.leaves[index])
        expect(proof).toEqual(proveInclusion(tree, envelopeId))
        expect(verifyInclusion(tree.root, envelopeId, proof)).toBe(true)
        expect(fetched.length).toBe(proof.path.length) // one inner node per level, nothing more
      }),
      { numRuns: 40 },
    )
  })

  it('builds over real envelopes and refuses what is not one thread', () => {
    const envelopes = fc.sample(arbEnvelope(), 12).map((env) => ({ ...env, thread: THREAD }))
    const tree = buildThreadTree(envelopes)
    for (const env of envelopes)
      expect(verifyInclusion(tree.root, env.id, proveInclusion(tree, env.id)!)).toBe(true)
    expect(() => buildThreadTree([])).toThrow(InvalidArgumentError)
    expect(() => buildThreadTree([envelopes[0]!, { ...envelopes[1]!, thread: 'need-other' }])).toThrow(
      /one tree per thread/,
    )
    expect(verifyInclusion('not-a-cid', envelopes[0]!.id, proveInclusion(tree, envelopes[0]!.id)!)).toBe(
      false,
    )
    expect(verifyInclusion(tree.root, envelopes[0]!.id, { thread: THREAD } as InclusionProof)).toBe(false)
  })
})
