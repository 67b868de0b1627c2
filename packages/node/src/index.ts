/**
 * @packageDocumentation
 * The CAN Swarm anchor node as a library: the DECIDE stores (see `./consensus/index.ts`).
 */
export * from './consensus/index.ts'
