/**
 * Plan sync: every followed thread's plan document (see document.ts) is kept in step with the
 * peers around through Automerge-repo over libp2p (network.ts), and stored where the peer keeps
 * its documents (a directory on Node, IndexedDB in browsers, nowhere by default).
 *
 * Both ways go through the agent, so trust never comes from the CRDT:
 * - out: every envelope the agent takes in for a followed thread is written into the document —
 *   its own at once (batched), other peers' after a random delay and only if no follower has
 *   written it meanwhile, so that a thread is not stored once per follower;
 * - in: every entry that appears in the document (from a peer or from storage) is checked — key is
 *   the CID of the bytes, bytes decode to a schema-valid envelope of the thread, the signature
 *   verifies — and handed to the agent in the protocol's total order, like envelope sync does.
 *   Before any of that, the changes a remote peer sends are inspected and refused unless they only
 *   add well-formed entries within the document limits (`syncMessageProblem`).
 *
 * Since every follower derives the same document from the NEED id, a peer that joins late
 * catches up with the whole thread from any follower, anchors included, without envelope sync.
 *
 * @example
 * ```ts
 * const plans = await createPlanSync({ libp2p: network.libp2p, agent, storage: planStorage('.data/automerge') })
 * await plans.follow('need-…')               // also automatic for every thread the agent sees
 * plans.handle('need-…')?.doc().envelopes     // the thread's signed envelopes, by id
 * await plans.stop()
 * ```
 */
import {
  type DocHandle,
  type DocumentId,
  type Message,
  Repo,
  type PeerId as RepoPeerId,
  type StorageAdapterInterface,
} from '@automerge/automerge-repo/slim'
import type { Libp2p } from '@libp2p/interface'
import { initPlanSyncWasm } from '#plan-sync/wasm'
import type { Agent } from '../agent/agent.ts'
import { compareEnvelopes, decodeEnvelope, encodeEnvelope } from '../core/codec.ts'
import type { AnyEnvelope, Cid } from '../core/types.ts'
import { verifyEnvelopes } from '../crypto/envelopes.ts'
import {
  DEFAULT_PLAN_DOC_LIMITS,
  type PlanDoc,
  type PlanDocLimits,
  type PlanDocShape,
  planDocumentId,
  planDocumentStart,
  syncMessageProblem,
} from './document.ts'
import { installForgettingStorage } from './forgetting-storage.ts'
import { type InspectVerdict, Libp2pNetworkAdapter } from './network.ts'

/** Options of {@link createPlanSync}. */
export interface PlanSyncOptions {
  libp2p: Libp2p
  agent: Agent
  /** Where plan documents are kept (see `planStorage`). @default none: memory only */
  storage?: StorageAdapterInterface
  /** Follow every thread the agent holds that has a winning DECIDE, and its own NEEDs. @default true */
  followAll?: boolean
  /** What a remote peer can make this peer store per document. @default DEFAULT_PLAN_DOC_LIMITS */
  limits?: Partial<PlanDocLimits>
  /** Envelopes the agent takes in are handled after this delay, in batches, in ms. @default 10 */
  observeDelayMs?: number
  /** The agent's own envelopes are written after this delay (one change per batch), in ms. @default 20 */
  writeDelayMs?: number
  /**
   * Other peers' envelopes are written after this delay plus a random part as long again, unless
   * another follower wrote them meanwhile, in ms. @default 1 000
   */
  relayDelayMs?: number
  /** Called with each verified envelope from a document before the agent gets it (e.g. to log it). */
  onEnvelope?: (env: AnyEnvelope) => void
  /** @default AUTOMERGE_PROTOCOL */
  protocol?: string
  /** Largest frame on the wire, in bytes. @default DEFAULT_MAX_FRAME_BYTES */
  maxFrameBytes?: number
  onError?: (error: unknown) => void
}

/** Counters of a {@link PlanSync}. */
export interface PlanSyncStats {
  /** Threads followed. */
  threads: number
  /** Envelopes handed to the agent from plan documents. */
  folded: number
  /** Entries not folded (bad CID, schema, thread or signature). */
  rejectedEntries: number
  /** Inbound messages refused before they reached the repo. */
  refusedMessages: number
  /** Envelopes this peer wrote into plan documents. */
  written: number
  /** Documents of settled threads dropped from memory (they stay in storage). */
  forgotten: number
}

/** A peer's plan documents: follow threads, read their documents, stop. */
export interface PlanSync {
  /** The Automerge repo holding the plan documents. */
  readonly repo: Repo
  /** Follows a thread: loads or creates its document, syncs and folds it. Idempotent. */
  follow(thread: string): Promise<DocHandle<PlanDoc>>
  /** Stops syncing a thread's document (what is stored stays). */
  unfollow(thread: string): void
  /**
   * Writes what is pending into a thread's document, stops syncing it and drops it from memory (it
   * stays in storage). Done for every thread the agent reports settled when `followAll` is on.
   */
  forget(thread: string): Promise<void>
  /** The document handle of a followed thread, once it is ready. */
  handle(thread: string): DocHandle<PlanDoc> | undefined
  /** The threads followed. */
  followed(): string[]
  /** Writes every pending envelope now, waits for folds in progress and for storage. */
  flush(): Promise<void>
  stats(): PlanSyncStats
  /** Stops syncing, flushes storage. Idempotent. */
  stop(): Promise<void>
}

interface Followed {
  thread: string
  docId: DocumentId
  shape: PlanDocShape
  ready: Promise<DocHandle<PlanDoc>>
  handle: DocHandle<PlanDoc> | undefined
  /** Keys present in the document, and their bytes in total. */
  known: Set<Cid>
  bytes: number
  pendingOwn: Map<Cid, Uint8Array>
  pendingRelay: Map<Cid, Uint8Array>
  ownTimer: ReturnType<typeof setTimeout> | undefined
  relayTimer: ReturnType<typeof setTimeout> | undefined
  toFold: Set<Cid>
  folding: Promise<void> | undefined
  rejected: Set<Cid>
  /** Entries whose signatures were checked when a sync message brought them (until folded). */
  verified: Set<Cid>
  /** Peers that said they do not follow this thread. */
  notFollowing: Set<string>
  offChange: () => void
}

/** Starts plan sync for an agent on a libp2p node. */
export async function createPlanSync(options: PlanSyncOptions): Promise<PlanSync> {
  await initPlanSyncWasm()
  const { agent } = options
  const limits: PlanDocLimits = { ...DEFAULT_PLAN_DOC_LIMITS, ...options.limits }
  const writeDelayMs = options.writeDelayMs ?? 20
  const observeDelayMs = options.observeDelayMs ?? 10
  const relayDelayMs = options.relayDelayMs ?? 1_000
  const onError = options.onError ?? (() => undefined)
  const byThread = new Map<string, Followed>()
  const byDoc = new Map<DocumentId, Followed>()
  const stats = { folded: 0, rejectedEntries: 0, refusedMessages: 0, written: 0, forgotten: 0 }
  let stopped = false

  let reevaluating: ReturnType<typeof setTimeout> | undefined
  const reevaluateShares = (): void => {
    reevaluating ??= setTimeout(() => {
      reevaluating = undefined
      if (!stopped) repo.shareConfigChanged()
    }, 100)
  }

  const inspect = async (message: Message): Promise<InspectVerdict> => {
    const state = byDoc.get(message.documentId as DocumentId)
    if (!state) return message.type === 'doc-unavailable' ? { verdict: 'ignore' } : { verdict: 'unavailable' }
    if (message.type === 'doc-unavailable') {
      if (state.notFollowing.size < 4096) state.notFollowing.add(message.senderId)
      reevaluateShares()
      return { verdict: 'deliver' }
    }
    state.notFollowing.delete(message.senderId)
    const entries: AnyEnvelope[] = []
    let problem = syncMessageProblem(
      message.data!,
      state.shape,
      { entries: state.known.size, bytes: state.bytes },
      limits,
      entries,
    )
    if (problem === undefined) {
      // Signatures too, before the entries enter the grow-only document: a badly signed entry
      // would stay there, be served to every follower and take room honest entries need.
      const fresh = entries.filter((env) => !state.known.has(env.id) && !state.verified.has(env.id))
      const errors = await verifyEnvelopes(fresh)
      const bad = errors.findIndex((error) => error !== undefined)
      if (bad >= 0)
        problem = `entry ${fresh[bad]!.id.slice(0, 80)} is badly signed (${describe(errors[bad])})`
      else for (const env of fresh) if (state.verified.size < limits.maxEntries) state.verified.add(env.id)
    }
    if (problem === undefined) return { verdict: 'deliver' }
    stats.refusedMessages += 1
    return { verdict: 'refuse', reason: `plan document of ${state.thread}: ${problem}` }
  }

  const adapter = new Libp2pNetworkAdapter({
    libp2p: options.libp2p,
    inspect,
    onError,
    ...(options.protocol === undefined ? {} : { protocol: options.protocol }),
    ...(options.maxFrameBytes === undefined ? {} : { maxFrameBytes: options.maxFrameBytes }),
  })
  const shares = async (peer: RepoPeerId, docId?: DocumentId): Promise<boolean> => {
    const state = docId === undefined ? undefined : byDoc.get(docId)
    return state !== undefined && !state.notFollowing.has(peer)
  }
  const repo = new Repo({
    peerId: options.libp2p.peerId.toString() as RepoPeerId,
    network: [adapter],
    ...(options.storage ? { storage: options.storage } : {}),
    shareConfig: {
      announce: shares,
      access: async (_peer, docId) => byDoc.has(docId),
    },
  })
  // The library's storage subsystem never forgets a document it saw; this one does (bounded).
  const storage = options.storage ? installForgettingStorage(repo, options.storage, { onError }) : undefined

  const fold = async (state: Followed, keys: Cid[]): Promise<void> => {
    const handle = state.handle
    if (!handle || stopped) return
    const doc = handle.doc()
    const candidates: AnyEnvelope[] = []
    for (const key of keys) {
      if (state.rejected.has(key) || agent.replica(state.thread)?.has(key)) {
        state.verified.delete(key)
        continue
      }
      const bytes = doc.envelopes[key]
      try {
        if (!(bytes instanceof Uint8Array)) throw new Error('the entry is not bytes')
        const env = decodeEnvelope(bytes)
        if (env.id !== key) throw new Error(`the entry's key is not its envelope id ${env.id}`)
        if (env.thread !== state.thread) throw new Error(`the envelope belongs to thread ${env.thread}`)
        candidates.push(env)
      } catch (error) {
        reject(state, key, error)
      }
    }
    // Entries a sync message brought were verified at inspection; those written before (storage,
    // this peer's own) are verified here.
    const unchecked = candidates.filter((env) => !state.verified.has(env.id))
    const failures = new Map<Cid, unknown>()
    const verdicts = await verifyEnvelopes(unchecked)
    unchecked.forEach((env, index) => {
      if (verdicts[index] !== undefined) failures.set(env.id, verdicts[index])
    })
    for (const env of candidates) state.verified.delete(env.id)
    const errors = candidates.map((env) => failures.get(env.id))
    const valid = candidates.filter((env, index) => {
      if (errors[index] !== undefined) reject(state, env.id, errors[index])
      return errors[index] === undefined
    })
    valid.sort(compareEnvelopes)
    if (stopped) return
    const fresh = valid.filter((env) => !agent.replica(env.thread)?.has(env.id))
    for (const env of fresh) options.onEnvelope?.(env)
    // One fold and one round of reactions for the batch, not per envelope.
    await agent.deliverMany(fresh)
    stats.folded += fresh.length
  }

  const reject = (state: Followed, key: Cid, error: unknown): void => {
    stats.rejectedEntries += 1
    if (state.rejected.size < limits.maxEntries) state.rejected.add(key)
    onError(
      new Error(`plan sync: entry ${key.slice(0, 80)} of ${state.thread} not folded: ${describe(error)}`),
    )
  }

  const scheduleFold = (state: Followed, keys: Iterable<Cid>): void => {
    for (const key of keys) state.toFold.add(key)
    if (state.folding || state.toFold.size === 0) return
    state.folding = (async () => {
      await Promise.resolve() // so that `state.folding` is set before the loop can end
      try {
        while (state.toFold.size > 0 && !stopped) {
          const batch = [...state.toFold]
          state.toFold.clear()
          await fold(state, batch)
        }
      } catch (error) {
        onError(error)
      } finally {
        state.folding = undefined
      }
    })()
  }

  const noteEntry = (state: Followed, key: Cid, value: unknown): void => {
    if (state.known.has(key)) return
    state.known.add(key)
    if (value instanceof Uint8Array) state.bytes += value.length
  }

  const write = (state: Followed, pending: Map<Cid, Uint8Array>): void => {
    const handle = state.handle
    if (!handle || pending.size === 0 || stopped) return
    const entries = [...pending].filter(([key]) => !state.known.has(key))
    pending.clear()
    if (entries.length === 0) return
    const room = limits.maxEntries - state.known.size
    if (entries.length > room) {
      onError(
        new Error(`plan sync: the plan document of ${state.thread} is full (${limits.maxEntries} entries)`),
      )
      entries.length = Math.max(0, room)
    }
    handle.change((doc) => {
      for (const [key, bytes] of entries) if (doc.envelopes[key] === undefined) doc.envelopes[key] = bytes
    })
    stats.written += entries.length
  }

  const schedule = (state: Followed): void => {
    if (stopped) return
    if (state.pendingOwn.size > 0 && !state.ownTimer) {
      state.ownTimer = setTimeout(() => {
        state.ownTimer = undefined
        write(state, state.pendingOwn)
      }, writeDelayMs)
    }
    if (state.pendingRelay.size > 0 && !state.relayTimer) {
      state.relayTimer = setTimeout(
        () => {
          state.relayTimer = undefined
          write(state, state.pendingRelay)
        },
        relayDelayMs * (1 + Math.random()),
      )
    }
  }

  const enqueue = (state: Followed, env: AnyEnvelope): void => {
    if (state.known.has(env.id)) return
    const pending = env.sender === agent.did ? state.pendingOwn : state.pendingRelay
    pending.set(env.id, encodeEnvelope(env))
    if (state.handle) schedule(state)
  }

  const follow = (thread: string): Promise<DocHandle<PlanDoc>> => {
    const existing = byThread.get(thread)
    if (existing) return existing.ready
    if (stopped) return Promise.reject(new Error('plan sync is stopped'))
    const docId = planDocumentId(thread)
    const start = planDocumentStart(thread)
    const state: Followed = {
      thread,
      docId,
      shape: start.shape,
      ready: undefined as never,
      handle: undefined,
      known: new Set(),
      bytes: 0,
      pendingOwn: new Map(),
      pendingRelay: new Map(),
      ownTimer: undefined,
      relayTimer: undefined,
      toFold: new Set(),
      folding: undefined,
      rejected: new Set(),
      verified: new Set(),
      notFollowing: new Set(),
      offChange: () => undefined,
    }
    byThread.set(thread, state)
    byDoc.set(docId, state)
    state.ready = (async () => {
      // What storage holds of the document is loaded straight into its handle. Not `repo.find`:
      // it races each load against one promise that never settles, and every such race stays
      // attached to it, with the loaded document, for the life of the process (a leak of one
      // document per thread followed).
      const stored = await repo.storageSubsystem?.loadDocData(docId)
      if (stored) repo.import<PlanDoc>(stored, { docId })
      // Merging the shared root is a no-op when the document is already held.
      const handle = repo.import<PlanDoc>(start.root, { docId })
      await handle.whenReady()
      if (byThread.get(thread) !== state) return handle
      const onChange = ({ patches }: { patches: { action: string; path: (string | number)[] }[] }): void => {
        const keys: Cid[] = []
        for (const patch of patches) {
          if (patch.action !== 'put' || patch.path.length !== 2 || patch.path[0] !== 'envelopes') continue
          const key = String(patch.path[1])
          noteEntry(state, key, handle.doc().envelopes[key])
          keys.push(key)
        }
        if (keys.length > 0) scheduleFold(state, keys)
      }
      handle.on('change', onChange as never)
      state.offChange = () => handle.off('change', onChange as never)
      const envelopes = handle.doc().envelopes
      for (const [key, value] of Object.entries(envelopes)) noteEntry(state, key, value)
      state.handle = handle
      scheduleFold(state, state.known)
      for (const env of agent.replica(thread)?.envelopes() ?? []) enqueue(state, env)
      schedule(state)
      return handle
    })()
    state.ready.catch((error: unknown) => onError(error))
    return state.ready
  }

  // A plan document is for a plan: threads with a winning DECIDE, and this peer's own NEEDs. A flood
  // of NEEDs nobody funds opens no documents.
  const worthADocument = (thread: string): boolean => {
    const state = agent.replica(thread)?.state
    return state !== undefined && (state.winner !== undefined || state.need?.requester === agent.did)
  }

  // What the agent takes in is handled a moment later, in batches: documents are created and
  // written off the path that carries envelopes to the agent (a DECIDE waits for nothing here).
  const observed: AnyEnvelope[] = []
  let observeTimer: ReturnType<typeof setTimeout> | undefined
  const drainObserved = (): void => {
    observeTimer = undefined
    for (const env of observed.splice(0)) {
      const state = byThread.get(env.thread)
      if (state) enqueue(state, env)
      else if (options.followAll !== false && !stopped && worthADocument(env.thread)) {
        void follow(env.thread).catch(onError)
      }
    }
  }
  // A settled thread's document leaves memory (it stays in storage); news of it follows it again.
  const unsettled = agent.onSettled((thread) => {
    if (options.followAll !== false && !stopped) void api.forget(thread).catch(onError)
  })
  const unobserve = agent.observe((env) => {
    if (stopped) return
    observed.push(env)
    observeTimer ??= setTimeout(drainObserved, observeDelayMs)
  })
  if (options.followAll !== false)
    for (const thread of agent.threads()) if (worthADocument(thread)) void follow(thread).catch(onError)

  const clearTimers = (state: Followed): void => {
    if (state.ownTimer) clearTimeout(state.ownTimer)
    if (state.relayTimer) clearTimeout(state.relayTimer)
    state.ownTimer = undefined
    state.relayTimer = undefined
  }

  let stopping: Promise<void> | undefined
  const api: PlanSync = {
    repo,
    follow,
    unfollow(thread) {
      const state = byThread.get(thread)
      if (!state) return
      clearTimers(state)
      state.offChange()
      byThread.delete(thread)
      byDoc.delete(state.docId)
      repo.shareConfigChanged()
    },
    async forget(thread) {
      const state = byThread.get(thread)
      if (!state) return
      await state.ready.catch(() => undefined)
      if (byThread.get(thread) !== state) return
      clearTimers(state)
      write(state, state.pendingOwn)
      write(state, state.pendingRelay)
      await state.folding?.catch(() => undefined)
      if (byThread.get(thread) !== state) return
      api.unfollow(thread)
      if (!state.handle) return
      // The repo syncs a changed document a moment later (throttled): let that run before unloading.
      await new Promise((resolve) => setTimeout(resolve, UNLOAD_QUIET_MS))
      // Followed again meanwhile (news of the thread): it stays.
      if (stopped || byThread.has(thread)) return
      await repo.flush([state.docId]).catch(onError)
      if (stopped || byThread.has(thread)) return
      await repo.removeFromCache(state.docId).catch(onError)
      if (byThread.has(thread)) return
      storage?.forget(state.docId)
      stats.forgotten += 1
    },
    handle: (thread) => byThread.get(thread)?.handle,
    followed: () => [...byThread.keys()].sort(),
    async flush() {
      if (observeTimer) clearTimeout(observeTimer)
      drainObserved()
      for (const state of byThread.values()) {
        await state.ready.catch(() => undefined)
        clearTimers(state)
        write(state, state.pendingOwn)
        write(state, state.pendingRelay)
        await state.folding
      }
      await repo.flush()
    },
    stats: () => ({ threads: byThread.size, ...stats }),
    stop() {
      stopping ??= (async () => {
        unobserve()
        unsettled()
        // envelopes observed but not yet handled still go into documents already followed
        if (observeTimer) clearTimeout(observeTimer)
        for (const env of observed.splice(0)) {
          const state = byThread.get(env.thread)
          if (state) enqueue(state, env)
        }
        for (const state of byThread.values()) {
          clearTimers(state)
          write(state, state.pendingOwn)
          write(state, state.pendingRelay)
        }
        stopped = true
        if (reevaluating) clearTimeout(reevaluating)
        for (const state of byThread.values()) {
          state.offChange()
          await state.folding?.catch(() => undefined)
        }
        // A document still opening would make the repo's final flush throw ("DocHandle is not
        // ready"): let those that are opening finish first, for a bounded time.
        const opening = [...byThread.values()].map((state) => state.ready.catch(() => undefined))
        let timer: ReturnType<typeof setTimeout> | undefined
        await Promise.race([
          Promise.all(opening),
          new Promise((resolve) => {
            timer = setTimeout(resolve, 2_000)
          }),
        ])
        clearTimeout(timer)
        try {
          await repo.shutdown()
        } catch (error) {
          onError(error)
        }
      })()
      return stopping
    },
  }
  return api
}

/** Quiet time between unfollowing a settled thread's document and unloading it, in ms. */
const UNLOAD_QUIET_MS = 1_000

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
