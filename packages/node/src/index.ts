/**
 * @packageDocumentation
 * The CAN Swarm anchor node. Today: the DECIDE stores (see `./consensus/index.ts`); the anchor
 * CLI (`node packages/node`) arrives with the rest of the anchor-node issue.
 */
export * from './consensus/index.ts'
