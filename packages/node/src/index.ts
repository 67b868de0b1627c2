/**
 * @packageDocumentation
 * The CAN Swarm anchor node as a library: start an anchor in-process (`startAnchor` with a config
 * from `resolveConfig`), create or load its identity and genesis, serve its HTTP API on a server of
 * your own (`httpRequestListener`), and the DECIDE stores (see `./consensus/index.ts`). The command
 * line (`can-swarm-anchor`, `src/main.ts`) is a thin shell over these.
 */
export * from './anchor/anchor.ts'
export type { AnchorArtifacts } from './anchor/artifacts.ts'
export * from './anchor/config.ts'
export * from './anchor/genesis.ts'
export { type HttpOptions, httpRequestListener } from './anchor/http.ts'
export * from './anchor/identity.ts'
export * from './consensus/index.ts'
