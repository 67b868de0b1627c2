/** Starts and stops real anchor processes (`node packages/node`) for browser tests and benchmarks. */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { type StartedAnchor, startAnchorProcess as startAnchor } from '../../test-support/anchor-process.ts'

/** The repository root. */
export const ROOT = join(import.meta.dirname, '..', '..')

/** A running anchor (the node tests' helper: one way to start an anchor process). */
export type RunningAnchor = StartedAnchor

/** A free TCP port on 127.0.0.1 (the etcd test harness's helper). */
export { freePort } from '../../test-support/etcd-cluster.ts'

/** Options of {@link startAnchorProcess}. */
export interface AnchorProcessOptions {
  data: string
  port: number
  p2pPort: number
  wsPort: number
  /**
   * The initial verifier pool of a network created in `data` (a genesis parameter, kept for ever):
   * only for a new data directory. Verifiers join a running network by staking (`PUT /api/pool/<did>`).
   */
  verifiers?: readonly string[]
  /** Time allowed to become ready, in ms. @default 60 000 */
  readyTimeoutMs?: number
}

/**
 * Starts `node packages/node` on the given ports and resolves when it logs "anchor ready".
 * @throws when `verifiers` is given for a data directory that holds a network already (an anchor
 *   keeps its genesis: a restart must not try to change its pool).
 */
export function startAnchorProcess(options: AnchorProcessOptions): Promise<RunningAnchor> {
  if (options.verifiers && existsSync(join(options.data, 'genesis.json'))) {
    return Promise.reject(
      new Error(
        `${options.data} holds a network already: --verifiers is a genesis parameter, given only when a network is created; verifiers join by staking`,
      ),
    )
  }
  const args = [
    '--data',
    options.data,
    '--port',
    String(options.port),
    '--p2p-port',
    String(options.p2pPort),
    '--ws-port',
    String(options.wsPort),
    '--log-level',
    'info',
  ]
  if (options.verifiers && options.verifiers.length > 0) args.push('--verifiers', options.verifiers.join(','))
  return startAnchor(
    args,
    options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs },
  )
}
