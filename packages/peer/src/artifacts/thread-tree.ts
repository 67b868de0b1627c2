/**
 * Thread trees (core/thread/merkle.ts) stored in Helia: the envelopes as DAG-CBOR blocks under
 * their ids, the inner nodes and the root block. Pinning the root keeps the whole thread. A light
 * peer that knows only a thread root fetches root → inner nodes → one envelope from any peer
 * holding them and checks the inclusion proof itself.
 *
 * @example
 * ```ts
 * const tree = await storeThreadTree(anchorArtifacts, envelopes, { pin: true })
 * // a light peer, given tree.root:
 * const { envelope, proof } = await fetchThreadEnvelope(lightArtifacts, tree.root, 0)
 * verifyInclusion(tree.root, envelope.id, proof) // true (already checked)
 * ```
 */
import { CID } from 'multiformats/cid'
import { decodeEnvelope, encodeEnvelope } from '../core/codec.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import {
  buildThreadTree,
  decodeThreadRoot,
  type InclusionProof,
  type ThreadTree,
  verifyInclusion,
  walkToLeaf,
} from '../core/thread/merkle.ts'
import type { AnyEnvelope } from '../core/types.ts'
import type { HeliaArtifacts } from './helia.ts'

/**
 * Stores one thread's envelopes and their tree as blocks; with `pin`, pins the root (and so every
 * block under it). Resolves with the tree (its `root` is the thread root).
 *
 * @throws {InvalidArgumentError} field `envelopes` as {@link buildThreadTree} does.
 */
export async function storeThreadTree(
  artifacts: HeliaArtifacts,
  envelopes: readonly AnyEnvelope[],
  options: { pin?: boolean; signal?: AbortSignal } = {},
): Promise<ThreadTree> {
  const tree = buildThreadTree(envelopes)
  const abort = options.signal ? { signal: options.signal } : {}
  const blockstore = artifacts.helia.blockstore
  for (const env of envelopes) {
    await blockstore.put(CID.parse(env.id), encodeEnvelope(env), abort)
  }
  for (const block of tree.blocks) await blockstore.put(CID.parse(block.cid), block.bytes, abort)
  if (options.pin) await artifacts.pin(tree.root, abort)
  return tree
}

/**
 * Fetches envelope number `index` (canonical order) of the thread with root `root`, with its
 * inclusion proof, walking the blocks down from the root; verifies the proof and the envelope's
 * id before returning. Does not verify the envelope's signature (see `verifyEnvelope`).
 *
 * @throws {InvalidArgumentError} field `root` when a block cannot be fetched or the proof does
 *   not hold; field `index` when it is outside the tree.
 */
export async function fetchThreadEnvelope(
  artifacts: HeliaArtifacts,
  root: string,
  index: number,
  options: { signal?: AbortSignal } = {},
): Promise<{ envelope: AnyEnvelope; proof: InclusionProof }> {
  const fetchBlock = async (cid: string): Promise<Uint8Array> => {
    const bytes = await artifacts.get(cid, options)
    if (bytes === undefined) {
      throw new InvalidArgumentError(`block ${cid} of thread root ${root} is not reachable`, 'root')
    }
    return bytes
  }
  const rootNode = decodeThreadRoot(await fetchBlock(root))
  const { envelopeId, proof } = await walkToLeaf(rootNode, index, (cid) => fetchBlock(cid.toString()))
  const envelope = decodeEnvelope(await fetchBlock(envelopeId))
  if (envelope.id !== envelopeId || !verifyInclusion(root, envelopeId, proof)) {
    throw new InvalidArgumentError(`the blocks under ${root} do not prove envelope ${envelopeId}`, 'root')
  }
  return { envelope, proof }
}
