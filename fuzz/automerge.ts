/**
 * Plan-sync inputs: Automerge sync messages about a thread's plan document, and the frames that
 * carry them between peers. Mutation is structure-aware here too: a sync message is decoded to
 * its heads, needs, bloom filters and changes, each change to its operations (actions, objects,
 * keys, values), and the mutated tree is encoded back with Automerge's own encoders, so mutants
 * get past the checksums and reach the plan document checks.
 */
import '@automerge/automerge'
import { next as A } from '@automerge/automerge/slim'
import type { AnyEnvelope } from '@can-swarm/peer'
import { encodeEnvelope } from '@can-swarm/peer'
import {
  encodePlanSyncFrame,
  type PlanDoc,
  planDocumentId,
  planDocumentStart,
} from '@can-swarm/peer/plan-sync'
import { type Item, itemFromValue, itemToValue, text } from './cbor.ts'
import type { Codec } from './mutate.ts'

/** Chunk type byte of an Automerge change chunk (after 4 magic and 4 checksum bytes). */
const CHANGE_CHUNK = 1

/** Sync messages as trees; changes decoded to their operations when they are single changes. */
export const automergeCodec: Codec = {
  parse(bytes) {
    let message: ReturnType<typeof A.decodeSyncMessage>
    try {
      message = A.decodeSyncMessage(bytes)
    } catch {
      return undefined
    }
    const changes: Item[] = message.changes.map((change) => {
      if (change[8] !== CHANGE_CHUNK) return { t: 'bytes', v: change }
      try {
        return itemFromValue(A.decodeChange(change))
      } catch {
        return { t: 'bytes', v: change }
      }
    })
    return {
      t: 'map',
      entries: [
        [text('heads'), itemFromValue(message.heads)],
        [text('need'), itemFromValue(message.need)],
        [text('have'), itemFromValue(message.have)],
        [text('changes'), { t: 'array', items: changes }],
      ],
    }
  },
  write(item) {
    const value = itemToValue(item) as { changes?: unknown }
    const changes = Array.isArray(value.changes)
      ? value.changes.map((change) =>
          change instanceof Uint8Array ? change : A.encodeChange(change as A.DecodedChange),
        )
      : value.changes
    return A.encodeSyncMessage({ ...(value as object), changes } as A.DecodedSyncMessage)
  },
}

export interface PlanSyncSeeds {
  thread: string
  /** Sync messages two followers of the thread exchange (heads, bloom filters, changes, a whole document). */
  messages: Uint8Array[]
  /** Frames of those messages, and of a request and a doc-unavailable. */
  frames: Uint8Array[]
}

/**
 * Two followers of `thread` syncing its plan document: one holds the thread's envelopes, the other
 * starts from the shared root (then changes travel one by one), a third from nothing (then the
 * whole document travels as one chunk).
 */
export function planSyncSeeds(envelopes: readonly AnyEnvelope[]): PlanSyncSeeds {
  const thread = envelopes[0]!.thread
  const { root } = planDocumentStart(thread)
  let writer = A.load<PlanDoc>(root, { actor: '01'.repeat(16) })
  for (const env of envelopes.slice(0, 6)) {
    writer = A.change(writer, { time: 0 }, (draft) => {
      draft.envelopes[env.id] = encodeEnvelope(env)
    })
  }
  const messages: Uint8Array[] = []
  for (const start of [
    A.load<PlanDoc>(root, { actor: '02'.repeat(16) }),
    A.init<PlanDoc>({ actor: '03'.repeat(16) }),
  ]) {
    let [left, right] = [A.clone(writer), start]
    let [leftState, rightState] = [A.initSyncState(), A.initSyncState()]
    for (let round = 0; round < 4; round += 1) {
      let message: Uint8Array | null
      ;[leftState, message] = A.generateSyncMessage(left, leftState)
      if (message) {
        messages.push(message)
        ;[right, rightState] = A.receiveSyncMessage(right, rightState, message)
      }
      ;[rightState, message] = A.generateSyncMessage(right, rightState)
      if (message) {
        messages.push(message)
        ;[left, leftState] = A.receiveSyncMessage(left, leftState, message)
      }
    }
  }
  // Automerge sends a follower the whole document; a message with the changes one by one (as it
  // may send a peer that lacks only some) lets mutations reach the operations inside changes.
  const base = A.load<PlanDoc>(root)
  messages.push(
    A.encodeSyncMessage({
      heads: A.getHeads(writer),
      need: [],
      have: [{ lastSync: A.getHeads(base), bloom: new Uint8Array(0) }],
      changes: A.getChanges(base, writer),
    }),
  )
  const documentId = planDocumentId(thread)
  const frames = [
    ...messages.slice(0, 3).map((message) => encodePlanSyncFrame('sync', documentId, message)),
    encodePlanSyncFrame('request', documentId, messages[0]!),
    encodePlanSyncFrame('doc-unavailable', documentId, undefined),
  ]
  return { thread, messages, frames }
}
