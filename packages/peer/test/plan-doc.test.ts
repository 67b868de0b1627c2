/**
 * The plan document's pure parts, in Node and in Chromium: the id and root every follower derives
 * on its own, entry checks, and the inspection that refuses sync messages doing anything but
 * adding well-formed entries within the limits.
 */
import { next as A } from '@automerge/automerge/slim'
import { beforeAll, describe, expect, it } from 'vitest'
import { initPlanSyncWasm } from '#plan-sync/wasm'
import { makeIdentities, sign } from '../../../test-support/envelopes.ts'
import { cidOfDagCbor, encodeEnvelope } from '../src/core/codec.ts'
import {
  DEFAULT_PLAN_DOC_LIMITS,
  entryProblem,
  type PlanDoc,
  type PlanDocCounts,
  type PlanDocLimits,
  planDocumentId,
  planDocumentRoot,
  planDocumentShape,
  syncMessageProblem,
} from '../src/plan-sync/document.ts'

const THREAD = 'need-plan-doc'
const entries: Array<[string, Uint8Array]> = []

beforeAll(async () => {
  await initPlanSyncWasm()
  const [requester] = await makeIdentities(1, 230)
  for (let i = 0; i < 3; i += 1) {
    const env = await sign(requester!, 'NEED', THREAD, {
      need: THREAD,
      epoch: 1,
      requires: ['sha256'],
      inputs: ['bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'],
      produces: 'text/plain',
      budget: 10 + i,
      deadlineMs: 0,
      bidWindowMs: 1,
    })
    entries.push([env.id, encodeEnvelope(env)])
  }
})

/**
 * The sync messages a peer holding `original` sends to a peer holding only the root, in a full
 * exchange (a Bloom filter false positive can take an extra round).
 */
function messagesFrom(original: A.Doc<PlanDoc>): Uint8Array[] {
  let sender = A.clone(original)
  let receiver = A.load<PlanDoc>(planDocumentRoot(THREAD))
  let senderState = A.initSyncState()
  let receiverState = A.initSyncState()
  const sent: Uint8Array[] = []
  for (let round = 0; round < 10; round += 1) {
    const [nextReceiverState, request] = A.generateSyncMessage(receiver, receiverState)
    receiverState = nextReceiverState
    if (request) [sender, senderState] = A.receiveSyncMessage(sender, senderState, request)
    const [nextSenderState, answer] = A.generateSyncMessage(sender, senderState)
    senderState = nextSenderState
    if (answer) {
      sent.push(answer)
      ;[receiver, receiverState] = A.receiveSyncMessage(receiver, receiverState, answer)
    }
    if (!request && !answer) break
  }
  return sent
}

/** The first problem found in the messages that bring the root up to `doc`. */
function exchangeProblem(
  doc: A.Doc<PlanDoc>,
  counts: PlanDocCounts,
  limits: PlanDocLimits,
): string | undefined {
  const shape = planDocumentShape(THREAD)
  for (const message of messagesFrom(doc)) {
    const problem = syncMessageProblem(message, shape, counts, limits)
    if (problem !== undefined) return problem
  }
  return undefined
}

function withChange(change: (draft: PlanDoc) => void): A.Doc<PlanDoc> {
  return A.change(A.load<PlanDoc>(planDocumentRoot(THREAD)), change)
}

describe('plan document', () => {
  it('every follower derives the same id and root; threads do not share them', () => {
    expect(planDocumentId(THREAD)).toBe(planDocumentId(THREAD))
    expect(planDocumentId(THREAD)).not.toBe(planDocumentId(`${THREAD}-other`))
    expect(planDocumentRoot(THREAD)).toEqual(planDocumentRoot(THREAD))
    expect(planDocumentShape(THREAD)).toEqual(planDocumentShape(THREAD))
    expect(planDocumentShape(THREAD).rootHash).not.toBe(planDocumentShape(`${THREAD}-other`).rootHash)
    const doc = A.load<PlanDoc>(planDocumentRoot(THREAD))
    expect(doc.v).toBe(1)
    expect(String(doc.thread)).toBe(THREAD)
    expect(Object.keys(doc.envelopes)).toEqual([])
    // The shape computed with the root is the shape of the root as any follower loads it.
    expect(A.getHeads(doc)).toEqual([planDocumentShape(THREAD).rootHash])
    expect(A.getObjectId(doc.envelopes)).toBe(planDocumentShape(THREAD).envelopesObject)
  })

  it('entries written by two peers merge into one map', () => {
    const one = withChange((draft) => {
      draft.envelopes[entries[0]![0]] = entries[0]![1]
    })
    const two = withChange((draft) => {
      draft.envelopes[entries[1]![0]] = entries[1]![1]
    })
    const merged = A.merge(A.clone(one), two)
    expect(Object.keys(merged.envelopes).sort()).toEqual([entries[0]![0], entries[1]![0]].sort())
  })

  it('an entry must be bytes keyed by their CID and within the size limit', () => {
    const [key, bytes] = entries[0]!
    expect(entryProblem(key, bytes, DEFAULT_PLAN_DOC_LIMITS)).toBeUndefined()
    expect(entryProblem(entries[1]![0], bytes, DEFAULT_PLAN_DOC_LIMITS)).toMatch(/not keyed by the CID/)
    expect(entryProblem(key, 'text', DEFAULT_PLAN_DOC_LIMITS)).toMatch(/not bytes/)
    expect(entryProblem(key, bytes, { ...DEFAULT_PLAN_DOC_LIMITS, maxEntryBytes: 10 })).toMatch(
      /over the limit/,
    )
  })

  it('a sync message that only adds well-formed entries passes', () => {
    const doc = withChange((draft) => {
      for (const [key, bytes] of entries) draft.envelopes[key] = bytes
    })
    expect(messagesFrom(doc).length).toBeGreaterThan(0)
    expect(exchangeProblem(doc, { entries: 0, bytes: 0 }, DEFAULT_PLAN_DOC_LIMITS)).toBeUndefined()
  })

  it('refuses tampered, overwritten, deleted, foreign and excess entries', () => {
    const shape = planDocumentShape(THREAD)
    const limits = DEFAULT_PLAN_DOC_LIMITS
    const empty = { entries: 0, bytes: 0 }
    const problem = (doc: A.Doc<PlanDoc>, counts = empty, chosen = limits) =>
      exchangeProblem(doc, counts, chosen)

    const tampered = withChange((draft) => {
      draft.envelopes[entries[0]![0]] = entries[1]![1]
    })
    expect(problem(tampered)).toMatch(/not keyed by the CID/)

    const written = withChange((draft) => {
      draft.envelopes[entries[0]![0]] = entries[0]![1]
    })
    const overwritten = A.change(A.clone(written), (draft) => {
      draft.envelopes[entries[0]![0]] = entries[1]![1]
    })
    expect(problem(overwritten)).toMatch(/overwrites/)
    const deleted = A.change(A.clone(written), (draft) => {
      delete draft.envelopes[entries[0]![0]]
    })
    expect(problem(deleted)).toMatch(/does more than put/)

    const foreign = withChange((draft) => {
      ;(draft as unknown as Record<string, unknown>).extra = 'x'
    })
    expect(problem(foreign)).toMatch(/does more than put/)
    const notBytes = withChange((draft) => {
      ;(draft.envelopes as Record<string, unknown>)[cidOfDagCbor(new Uint8Array([0xa0]))] = 5
    })
    expect(problem(notBytes)).toMatch(/not bytes/)
    const junk = new Uint8Array([0xa1, 0x61, 0x61, 0x01])
    const notEnvelope = withChange((draft) => {
      draft.envelopes[cidOfDagCbor(junk)] = junk
    })
    expect(problem(notEnvelope)).toMatch(/not an envelope/)

    const three = withChange((draft) => {
      for (const [key, bytes] of entries) draft.envelopes[key] = bytes
    })
    expect(problem(three, { entries: 0, bytes: 0 }, { ...limits, maxEntries: 2 })).toMatch(/exceed 2 entries/)
    expect(problem(three, { entries: 0, bytes: 0 }, { ...limits, maxDocBytes: 100 })).toMatch(
      /exceed 100 bytes/,
    )
    expect(problem(three, { entries: limits.maxEntries - 1, bytes: 0 })).toMatch(/entries/)
    expect(syncMessageProblem(new Uint8Array([1, 2, 3]), shape, empty, limits)).toMatch(
      /not an Automerge sync/,
    )
  })

  it('refuses a message that carries a chunk or a change twice, or chunks in one (found by the fuzzer: each copy cost a full decode)', () => {
    const shape = planDocumentShape(THREAD)
    const empty = { entries: 0, bytes: 0 }
    const doc = withChange((draft) => {
      for (const [key, bytes] of entries) draft.envelopes[key] = bytes
    })
    const carrying = messagesFrom(doc).find((message) => A.decodeSyncMessage(message).changes.length > 0)!
    const decoded = A.decodeSyncMessage(carrying)
    expect(syncMessageProblem(carrying, shape, empty, DEFAULT_PLAN_DOC_LIMITS)).toBeUndefined()
    // The same chunk a thousand times: refused at once, before a single copy is decoded.
    const repeated = A.encodeSyncMessage({ ...decoded, changes: Array(1000).fill(decoded.changes[0]!) })
    expect(syncMessageProblem(repeated, shape, empty, DEFAULT_PLAN_DOC_LIMITS)).toMatch(/same chunk twice/)
    // The same change inside two different chunks (the whole document, then the change alone).
    const whole = A.save(doc)
    const change = A.getChanges(A.load<PlanDoc>(planDocumentRoot(THREAD)), doc)[0]!
    const both = A.encodeSyncMessage({ ...decoded, changes: [whole, change] })
    expect(syncMessageProblem(both, shape, empty, DEFAULT_PLAN_DOC_LIMITS)).toMatch(
      /carries change \w+ twice/,
    )
    // Copies of the document inside one chunk (Automerge loads them one by one): not one chunk.
    const copies = new Uint8Array(whole.length * 600)
    for (let i = 0; i < 600; i += 1) copies.set(whole, i * whole.length)
    const concatenated = A.encodeSyncMessage({ ...decoded, changes: [copies] })
    expect(syncMessageProblem(concatenated, shape, empty, DEFAULT_PLAN_DOC_LIMITS)).toMatch(
      /not one Automerge chunk/,
    )
    // The whole document alone, or its changes one by one, pass.
    const alone = A.encodeSyncMessage({ ...decoded, changes: [whole] })
    expect(syncMessageProblem(alone, shape, empty, DEFAULT_PLAN_DOC_LIMITS)).toBeUndefined()
    const changes = A.getChanges(A.load<PlanDoc>(planDocumentRoot(THREAD)), doc)
    const single = A.encodeSyncMessage({ ...decoded, changes })
    expect(syncMessageProblem(single, shape, empty, DEFAULT_PLAN_DOC_LIMITS)).toBeUndefined()
  })
})
