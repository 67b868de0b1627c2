export * from './agent-sync.ts'
export * from './protocol.ts'
export * from './sync.ts'
