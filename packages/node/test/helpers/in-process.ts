/**
 * An anchor started in the test process on free loopback ports, silent, its data in `dir/anchor`;
 * `overrides` are configuration keys as `resolveConfig` takes them.
 */
import { join } from 'node:path'
import { pino } from 'pino'
import { type Anchor, startAnchor } from '../../src/anchor/anchor.ts'
import { resolveConfig } from '../../src/anchor/config.ts'

export function startTestAnchor(dir: string, overrides: Record<string, unknown> = {}): Promise<Anchor> {
  return startAnchor(
    resolveConfig(
      {
        data: join(dir, 'anchor'),
        port: 0,
        p2pPort: 0,
        wsPort: 0,
        webrtcPort: -1,
        logLevel: 'silent',
        ...overrides,
      },
      {},
    ),
    { logger: pino({ level: 'silent' }) },
  )
}
