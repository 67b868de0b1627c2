/**
 * A storage subsystem for the repo that can forget documents.
 *
 * Automerge-repo's `StorageSubsystem` (2.5.6) remembers, for every document it ever loaded or
 * saved, the chunks it wrote and the heads it saved last, and nothing removes those entries:
 * `repo.removeFromCache` drops the handle but not them. A peer that follows every settled thread
 * for a while and then forgets it (the anchor) therefore grows by ≈ 1 KB per thread, for good.
 *
 * This wrapper keeps the library's subsystem for the real work and bounds what it remembers by
 * giving it generations: a document is routed to the subsystem that was current when it was
 * opened (loaded: `loadDocData` or `loadDoc`, as plan sync and `repo.find` do); after {@link ForgettingStorageOptions.rotateAfter} documents of the current generation
 * have been forgotten a fresh subsystem becomes current, and a generation is dropped when none of
 * its documents is held any more. A document held so long that it would keep more than
 * {@link ForgettingStorageOptions.maxGenerations} generations alive moves to the current one (which
 * reads its chunk list from storage again; its next save is a full snapshot, which also removes
 * the chunks it replaces). So at most `rotateAfter × maxGenerations` forgotten documents are
 * remembered at any time, whatever the number of threads a peer goes through.
 *
 * Saves go to the generation that knows the document, also after it was forgotten (the repo's
 * throttled save can run once more after `removeFromCache`), so an unchanged document is not
 * written again; a save of a document no live generation knows counts as forgotten at once.
 *
 * Stateless calls (key/value storage, sync states, removal, the storage id) go to the current
 * generation.
 */
import type { DocumentId, Repo, StorageAdapterInterface } from '@automerge/automerge-repo/slim'

/** The library's storage subsystem (not exported by name from the package entry). */
export type StorageSubsystem = NonNullable<Repo['storageSubsystem']>

/** Options of {@link forgettingStorage}. */
export interface ForgettingStorageOptions {
  /** Forgotten documents of the current generation before a fresh one becomes current. @default 1 024 */
  rotateAfter?: number
  /** Generations kept alive by documents still held; the oldest is moved beyond that. @default 4 */
  maxGenerations?: number
  onError?: (error: unknown) => void
}

/** Counters of a {@link ForgettingStorage}. */
export interface ForgettingStorageStats {
  /** Generations alive (the current one included). */
  generations: number
  /** Documents held (opened and not forgotten). */
  held: number
  /** Forgotten documents still remembered by a live generation (bounded). */
  remembered: number
  /** Documents moved from an old generation to the current one. */
  moved: number
}

/** A storage subsystem that forgets; install it with {@link installForgettingStorage}. */
export interface ForgettingStorage {
  readonly subsystem: StorageSubsystem
  /** The document left memory (`repo.removeFromCache` resolved): its generation may forget it. */
  forget(documentId: DocumentId): void
  stats(): ForgettingStorageStats
}

interface Generation {
  readonly subsystem: StorageSubsystem
  /** Documents routed here and held (loaded, not forgotten). */
  readonly held: Set<DocumentId>
  /** Documents routed here and forgotten: the library still remembers them. */
  readonly forgotten: Set<DocumentId>
}

/** Default of {@link ForgettingStorageOptions.rotateAfter}, in documents. */
export const DEFAULT_ROTATE_AFTER_DOCUMENTS = 1_024
/** Default of {@link ForgettingStorageOptions.maxGenerations}. */
export const DEFAULT_MAX_STORAGE_GENERATIONS = 4

/**
 * Replaces `repo.storageSubsystem` (created by the repo from `adapter`) with one that can forget.
 * Returns undefined when the repo has no storage.
 */
export function installForgettingStorage(
  repo: Repo,
  adapter: StorageAdapterInterface,
  options: ForgettingStorageOptions = {},
): ForgettingStorage | undefined {
  const original = repo.storageSubsystem
  if (!original) return undefined
  const Subsystem = original.constructor as new (adapter: StorageAdapterInterface) => StorageSubsystem
  const storage = forgettingStorage(() => new Subsystem(adapter), original, options)
  repo.storageSubsystem = storage.subsystem
  return storage
}

/**
 * The wrapper itself: `create` makes a fresh library subsystem on the same storage, `first` is
 * the current generation to start with.
 */
export function forgettingStorage(
  create: () => StorageSubsystem,
  first: StorageSubsystem,
  options: ForgettingStorageOptions = {},
): ForgettingStorage {
  const rotateAfter = positive(options.rotateAfter, DEFAULT_ROTATE_AFTER_DOCUMENTS, 'rotateAfter')
  const maxGenerations = positive(options.maxGenerations, DEFAULT_MAX_STORAGE_GENERATIONS, 'maxGenerations')
  const onError = options.onError ?? (() => undefined)
  const generation = (subsystem: StorageSubsystem): Generation => ({
    subsystem,
    held: new Set(),
    forgotten: new Set(),
  })
  // Oldest first; the last is current.
  const generations: Generation[] = [generation(first)]
  // Every document a live generation knows (held or forgotten) → that generation.
  const owner = new Map<DocumentId, Generation>()
  // Documents moved to the current generation whose chunk lists it is reading: their saves wait,
  // so that the save knows the chunks it replaces. Read one after another (no burst of loads).
  const moving = new Map<DocumentId, Promise<unknown>>()
  let lastMove: Promise<unknown> = Promise.resolve()
  let moved = 0
  const current = (): Generation => generations[generations.length - 1]!

  // A document being loaded is held, by the generation that knows it if it is alive.
  const open = (documentId: DocumentId): StorageSubsystem => {
    let gen = owner.get(documentId)
    if (!gen) {
      gen = current()
      owner.set(documentId, gen)
    }
    gen.forgotten.delete(documentId)
    gen.held.add(documentId)
    return gen.subsystem
  }

  // Saves go where the document is known, so that an unchanged document is not written again (the
  // repo's throttled save can still run after a document left its cache). A save of a document
  // nobody loaded goes to the current generation, which then remembers it as forgotten.
  const saving = (documentId: DocumentId): StorageSubsystem => {
    const known = owner.get(documentId)
    if (known) return known.subsystem
    const gen = current()
    owner.set(documentId, gen)
    gen.forgotten.add(documentId)
    const { subsystem } = gen
    if (gen.forgotten.size >= rotateAfter) rotate()
    return subsystem
  }

  const drop = (gen: Generation): void => {
    const index = generations.indexOf(gen)
    if (index < 0 || gen === current()) return
    generations.splice(index, 1)
    for (const documentId of gen.forgotten) if (owner.get(documentId) === gen) owner.delete(documentId)
    for (const documentId of gen.held) if (owner.get(documentId) === gen) owner.delete(documentId)
  }

  const rotate = (): void => {
    generations.push(generation(create()))
    // Generations no held document needs any more go at once.
    for (const gen of generations.slice(0, -1)) if (gen.held.size === 0) drop(gen)
    while (generations.length > maxGenerations) {
      const oldest = generations[0]!
      const next = current()
      for (const documentId of oldest.held) {
        owner.set(documentId, next)
        next.held.add(documentId)
        moved += 1
        // The fresh generation learns which chunks the document has, so that its next save (a
        // full snapshot: it knows no saved heads) removes them.
        const loading = lastMove
          .then(() => next.subsystem.loadDocData(documentId))
          .catch(onError)
          .finally(() => {
            if (moving.get(documentId) === loading) moving.delete(documentId)
          })
        moving.set(documentId, loading)
        lastMove = loading
      }
      oldest.held.clear()
      drop(oldest)
    }
  }

  const subsystem = {
    id: () => current().subsystem.id(),
    load: (namespace: string, key: string) => current().subsystem.load(namespace, key),
    save: (namespace: string, key: string, data: Uint8Array) =>
      current().subsystem.save(namespace, key, data),
    remove: (namespace: string, key: string) => current().subsystem.remove(namespace, key),
    loadDocData: (documentId: DocumentId) => open(documentId).loadDocData(documentId),
    loadDoc: <T>(documentId: DocumentId) => open(documentId).loadDoc<T>(documentId),
    saveDoc: async (documentId: DocumentId, doc: Parameters<StorageSubsystem['saveDoc']>[1]) => {
      await moving.get(documentId)
      return saving(documentId).saveDoc(documentId, doc)
    },
    removeDoc: (documentId: DocumentId) => current().subsystem.removeDoc(documentId),
    loadSyncState: (...args: Parameters<StorageSubsystem['loadSyncState']>) =>
      current().subsystem.loadSyncState(...args),
    saveSyncState: (...args: Parameters<StorageSubsystem['saveSyncState']>) =>
      current().subsystem.saveSyncState(...args),
    // The repo listens for metrics events on the subsystem it created; nothing listens on this one.
    on: () => subsystem,
    off: () => subsystem,
    once: () => subsystem,
    emit: () => false,
  }

  return {
    subsystem: subsystem as unknown as StorageSubsystem,
    forget(documentId) {
      const gen = owner.get(documentId)
      if (!gen?.held.delete(documentId)) return
      gen.forgotten.add(documentId)
      if (gen === current()) {
        if (gen.forgotten.size >= rotateAfter) rotate()
      } else if (gen.held.size === 0) drop(gen)
    },
    stats: () => ({
      generations: generations.length,
      held: generations.reduce((sum, gen) => sum + gen.held.size, 0),
      remembered: generations.reduce((sum, gen) => sum + gen.forgotten.size, 0),
      moved,
    }),
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`)
  return value
}
