/**
 * The set of pinned artifact CIDs, kept apart from Helia's datastore so that it can be durable
 * with nothing but a file: Helia's own pin records live in its (in-memory) datastore and are
 * rebuilt from this set when the store opens.
 */

/** A set of pinned CIDs (base32 CIDv1 strings). Implementations persist every change before returning. */
export interface PinSet {
  has(cid: string): boolean
  add(cid: string): void
  delete(cid: string): void
  /** The pinned CIDs, in the order they were first pinned. */
  values(): string[]
  /** Flushes and releases the backing file, if any. Idempotent. */
  close(): void
}

/** A {@link PinSet} that lives and dies with the process. */
export function memoryPinSet(): PinSet {
  const pins = new Set<string>()
  return {
    has: (cid) => pins.has(cid),
    add: (cid) => void pins.add(cid),
    delete: (cid) => void pins.delete(cid),
    values: () => [...pins],
    close: () => undefined,
  }
}
