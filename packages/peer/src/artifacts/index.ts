/**
 * Content-addressed artifacts over Helia on the swarm's own libp2p node (see `helia.ts`), their
 * durable storage (`#artifacts/storage`: blockstore-fs on Node, IndexedDB in browsers) and thread
 * Merkle trees stored as IPLD blocks (see `thread-tree.ts`).
 *
 * @packageDocumentation
 */

export { openArtifactStorage, STORAGE_RUNTIME, type StorageLocation } from '#artifacts/storage'
export * from './helia.ts'
export * from './pin-set.ts'
export * from './thread-tree.ts'
