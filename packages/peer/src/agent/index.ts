export * from './agent.ts'
export * from './capabilities.ts'
export * from './ports.ts'
