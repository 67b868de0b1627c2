/**
 * Node-only helpers of the peer package: the committed policy bundle read from disk and the
 * `--version` line every command prints. Browsers import the package root instead.
 *
 * @packageDocumentation
 */

export { type BlockFile, listBlockFiles } from './artifacts/storage.ts'
export { peerVersionLine, versionLine } from './cli/version.ts'
export {
  type NatsBridge,
  type NatsBridgeOptions,
  type NatsBridgeService,
  type NatsBridgeStats,
  natsBridgeService,
  natsSubjectPrefix,
  natsToken,
  startNatsBridge,
} from './nats.ts'
export { BUNDLE_DIR, readPolicyBundle, readPolicyWasm } from './policy/node.ts'
