/**
 * A thread's envelopes as one IPLD DAG with Merkle inclusion proofs a light peer can check.
 *
 * Envelope ids are already CIDs of DAG-CBOR blocks (the wire form, see codec.ts), so they are the
 * leaves. In the protocol's total order (lamport, sender, id; duplicates once) they are folded
 * into a binary tree of DAG-CBOR nodes `{ l: <CID>, r: <CID> }` with the shape of RFC 9162's
 * Merkle tree (the left subtree holds the largest power of two of leaves below the count), and a
 * root block `{ v: 1, type, thread, count, tree }` names the thread, the number of leaves and the
 * top node. The root's CID is the thread root.
 *
 * An inclusion proof is the leaf's index, the count and the sibling CIDs from the leaf up. The
 * verifier recomputes the top node along the path the index and count dictate (RFC 9162 §2.1.3.2)
 * and the root block around it; since the count is inside the root, the path's shape is fixed
 * and an inner node cannot be passed off as a leaf. Every node is an IPLD block, so a light peer
 * holding only the root CID can also fetch root → nodes down to its envelope (thread-tree.ts).
 *
 * Pure, synchronous and isomorphic (DAG-CBOR, multiformats and noble's SHA-256 only).
 *
 * @example
 * ```ts
 * const tree = buildThreadTree(envelopes)
 * const proof = proveInclusion(tree, envelope.id)!
 * verifyInclusion(tree.root, envelope.id, proof)   // true
 * ```
 */
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from '@noble/hashes/sha2.js'
import { CID } from 'multiformats/cid'
import * as digest from 'multiformats/hashes/digest'
import { checkCborBudget } from '../cbor-budget.ts'
import { cidProblem, compareEnvelopes } from '../codec.ts'
import { InvalidArgumentError } from '../errors.ts'
import type { Cid, Envelope } from '../types.ts'

/** The `type` of a thread root block. */
export const THREAD_TREE_TYPE = 'can-swarm/thread-tree'
/** Version of the thread tree layout. */
export const THREAD_TREE_VERSION = 1
/** Most path entries a proof may carry (a tree of 2^64 leaves is deeper than any thread). */
const MAX_PATH_LENGTH = 64

const DAG_CBOR_CODE = 0x71
const SHA2_256_CODE = 0x12

/** The fields of an envelope that place it in a thread tree. */
export type TreeLeaf = Pick<Envelope, 'id' | 'lamport' | 'sender' | 'thread'>

/** An IPLD block: its CID and its DAG-CBOR bytes. */
export interface TreeBlock {
  cid: Cid
  bytes: Uint8Array
}

/** The decoded root block of a thread tree. */
export interface ThreadRootNode {
  v: number
  type: string
  thread: string
  count: number
  /** The top node of the binary tree (the only envelope's id when `count` is 1). */
  tree: CID
}

/** A thread's tree, built by {@link buildThreadTree}. */
export interface ThreadTree {
  /** CID of the root block: the thread root. */
  readonly root: Cid
  readonly thread: string
  /** Envelope ids in canonical order (duplicates once). */
  readonly leaves: readonly Cid[]
  /** The root block and every inner node, root first (the envelopes are not among them). */
  readonly blocks: readonly TreeBlock[]
}

/** A proof that an envelope is in the thread tree with a given root. */
export interface InclusionProof {
  thread: string
  /** The envelope's position in the thread's canonical order, from 0. */
  index: number
  /** Number of envelopes in the tree. */
  count: number
  /** Sibling CIDs from the leaf up to the top node. */
  path: Cid[]
}

function blockOf(value: unknown): { cid: CID; bytes: Uint8Array } {
  const bytes = dagCbor.encode(value)
  return { cid: CID.createV1(DAG_CBOR_CODE, digest.create(SHA2_256_CODE, sha256(bytes))), bytes }
}

function innerNode(left: CID, right: CID): { cid: CID; bytes: Uint8Array } {
  return blockOf({ l: left, r: right })
}

function rootNode(thread: string, count: number, tree: CID): { cid: CID; bytes: Uint8Array } {
  return blockOf({ v: THREAD_TREE_VERSION, type: THREAD_TREE_TYPE, thread, count, tree })
}

/** The largest power of two strictly below `n` (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

/**
 * Builds the tree of one thread's envelopes (any order; an id seen twice counts once).
 *
 * @throws {InvalidArgumentError} field `envelopes` when the list is empty or spans several threads,
 *   or an id is not a CID.
 */
export function buildThreadTree(envelopes: readonly TreeLeaf[]): ThreadTree {
  if (envelopes.length === 0) {
    throw new InvalidArgumentError('a thread tree needs at least one envelope', 'envelopes')
  }
  const thread = envelopes[0]!.thread
  const byId = new Map<Cid, TreeLeaf>()
  for (const env of envelopes) {
    if (env.thread !== thread) {
      throw new InvalidArgumentError(
        `envelopes of threads ${thread} and ${env.thread} given together: build one tree per thread`,
        'envelopes',
      )
    }
    const problem = cidProblem(env.id)
    if (problem !== undefined) throw new InvalidArgumentError(`envelope id ${problem}`, 'envelopes')
    byId.set(env.id, env)
  }
  const sorted = [...byId.values()].sort(compareEnvelopes)
  const leaves = sorted.map((env) => env.id)
  const leafCids = leaves.map((id) => CID.parse(id))
  const inner: TreeBlock[] = []
  const fold = (from: number, to: number): CID => {
    if (to - from === 1) return leafCids[from]!
    const k = splitPoint(to - from)
    const node = innerNode(fold(from, from + k), fold(from + k, to))
    inner.push({ cid: node.cid.toString(), bytes: node.bytes })
    return node.cid
  }
  const top = fold(0, leafCids.length)
  const root = rootNode(thread, leaves.length, top)
  return {
    root: root.cid.toString(),
    thread,
    leaves,
    blocks: [{ cid: root.cid.toString(), bytes: root.bytes }, ...inner.reverse()],
  }
}

/** The thread root (CID of the root block) of one thread's envelopes. See {@link buildThreadTree}. */
export function threadRoot(envelopes: readonly TreeLeaf[]): Cid {
  return buildThreadTree(envelopes).root
}

/** The sibling CIDs of leaf `index` among `leaves`, from the leaf up (RFC 9162 §2.1.3.1). */
function auditPath(leaves: readonly CID[], index: number): CID[] {
  const path: CID[] = []
  let from = 0
  let to = leaves.length
  while (to - from > 1) {
    const k = splitPoint(to - from)
    if (index < from + k) {
      path.push(subtree(leaves, from + k, to))
      to = from + k
    } else {
      path.push(subtree(leaves, from, from + k))
      from += k
    }
  }
  return path.reverse()
}

/** The top CID of the subtree over `leaves[from, to)`. */
function subtree(leaves: readonly CID[], from: number, to: number): CID {
  if (to - from === 1) return leaves[from]!
  const k = splitPoint(to - from)
  return innerNode(subtree(leaves, from, from + k), subtree(leaves, from + k, to)).cid
}

/**
 * The inclusion proof of `envelopeId` in `tree`, or undefined when the envelope is not in it.
 * Costs O(n) hashing (the siblings are recomputed); keep the tree's blocks to answer many.
 */
export function proveInclusion(tree: ThreadTree, envelopeId: Cid): InclusionProof | undefined {
  const index = tree.leaves.indexOf(envelopeId)
  if (index < 0) return undefined
  const leaves = tree.leaves.map((id) => CID.parse(id))
  return {
    thread: tree.thread,
    index,
    count: leaves.length,
    path: auditPath(leaves, index).map(String),
  }
}

/**
 * The top node a proof leads to from `leaf` (RFC 9162 §2.1.3.2), or undefined when the path does
 * not fit the index and count.
 */
function topFromPath(leaf: CID, index: number, count: number, path: readonly CID[]): CID | undefined {
  if (index >= count) return undefined
  let fn = index
  let sn = count - 1
  let r = leaf
  for (const p of path) {
    if (sn === 0) return undefined
    if (fn % 2 === 1 || fn === sn) {
      r = innerNode(p, r).cid
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2)
          sn = Math.floor(sn / 2)
        }
      }
    } else {
      r = innerNode(r, p).cid
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  return sn === 0 ? r : undefined
}

/**
 * True when `proof` shows that the envelope `envelopeId` is in the thread tree whose root is
 * `root`. Never throws: a malformed root, id or proof is simply not a proof.
 */
export function verifyInclusion(root: Cid, envelopeId: Cid, proof: InclusionProof): boolean {
  try {
    if (cidProblem(root) !== undefined || cidProblem(envelopeId) !== undefined) return false
    if (typeof proof !== 'object' || proof === null || typeof proof.thread !== 'string') return false
    const { index, count, path } = proof
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(count) || index < 0 || count < 1) return false
    if (!Array.isArray(path) || path.length > MAX_PATH_LENGTH) return false
    const siblings: CID[] = []
    for (const entry of path) {
      if (cidProblem(entry) !== undefined) return false
      siblings.push(CID.parse(entry))
    }
    const top = topFromPath(CID.parse(envelopeId), index, count, siblings)
    if (top === undefined) return false
    return rootNode(proof.thread, count, top).cid.toString() === root
  } catch {
    return false
  }
}

/**
 * Decodes a thread root block, checking its shape.
 *
 * @throws {InvalidArgumentError} field `bytes` when they are not a thread root block.
 */
export function decodeThreadRoot(bytes: Uint8Array): ThreadRootNode {
  const value = decodeBlock(bytes) as Partial<ThreadRootNode> | null
  if (
    typeof value !== 'object' ||
    value === null ||
    value.v !== THREAD_TREE_VERSION ||
    value.type !== THREAD_TREE_TYPE ||
    typeof value.thread !== 'string' ||
    !Number.isSafeInteger(value.count) ||
    (value.count ?? 0) < 1 ||
    CID.asCID(value.tree) === null
  ) {
    throw new InvalidArgumentError('the block is not a thread tree root', 'bytes')
  }
  return value as ThreadRootNode
}

/**
 * Decodes an inner node `{ l, r }` of a thread tree.
 *
 * @throws {InvalidArgumentError} field `bytes` when they are not an inner node.
 */
export function decodeInnerNode(bytes: Uint8Array): { l: CID; r: CID } {
  const value = decodeBlock(bytes) as { l?: unknown; r?: unknown } | null
  const l = CID.asCID(value?.l)
  const r = CID.asCID(value?.r)
  if (l === null || r === null || Object.keys(value ?? {}).length !== 2) {
    throw new InvalidArgumentError('the block is not an inner node of a thread tree', 'bytes')
  }
  return { l, r }
}

/**
 * Walks from a decoded root down to leaf `index`, asking `node(cid)` for each inner node's bytes;
 * returns the leaf's id and its inclusion proof. A light peer runs this against blocks it
 * fetches, then checks the result with {@link verifyInclusion}.
 *
 * @throws {InvalidArgumentError} field `index` when it is outside the tree, or field `bytes` when
 *   a fetched block is not an inner node.
 */
export async function walkToLeaf(
  rootNodeValue: ThreadRootNode,
  index: number,
  node: (cid: CID) => Promise<Uint8Array>,
): Promise<{ envelopeId: Cid; proof: InclusionProof }> {
  const count = rootNodeValue.count
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw new InvalidArgumentError(`index must be from 0 to ${count - 1}`, 'index')
  }
  const down: CID[] = []
  let current = rootNodeValue.tree
  let from = 0
  let to = count
  while (to - from > 1) {
    const { l, r } = decodeInnerNode(await node(current))
    const k = splitPoint(to - from)
    if (index < from + k) {
      down.push(r)
      current = l
      to = from + k
    } else {
      down.push(l)
      current = r
      from += k
    }
  }
  return {
    envelopeId: current.toString(),
    proof: { thread: rootNodeValue.thread, index, count, path: down.reverse().map(String) },
  }
}

function decodeBlock(bytes: Uint8Array): unknown {
  try {
    checkCborBudget(bytes, { maxItems: 100_000, maxDepth: 16 }, 'block')
    return dagCbor.decode(bytes)
  } catch {
    throw new InvalidArgumentError('the block is not DAG-CBOR', 'bytes')
  }
}
