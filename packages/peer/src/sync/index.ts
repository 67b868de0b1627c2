export * from './protocol.ts'
export * from './sync.ts'
