/** Starts and stops real anchor processes (`node packages/node`) for browser tests and benchmarks. */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'

/** The repository root. */
export const ROOT = join(import.meta.dirname, '..', '..')

/** A running anchor. */
export interface RunningAnchor {
  child: ChildProcess
  did: string
  url: string
  multiaddrs: string[]
  logs: string[]
  /** Stops the process (SIGTERM, SIGKILL after `graceMs`) and waits for its exit. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>
}

/** A free TCP port on 127.0.0.1 (the etcd test harness's helper). */
export { freePort } from '../../packages/node/test/consensus/helpers/etcd-cluster.ts'

/** Options of {@link startAnchorProcess}. */
export interface AnchorProcessOptions {
  data: string
  port: number
  p2pPort: number
  wsPort: number
  verifiers?: readonly string[]
  /** Time allowed to become ready, in ms. @default 60 000 */
  readyTimeoutMs?: number
}

/** Starts `node packages/node` and resolves when it logs "anchor ready". */
export function startAnchorProcess(options: AnchorProcessOptions): Promise<RunningAnchor> {
  const args = [
    'packages/node',
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
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: string[] = []
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`anchor not ready in time:\n${logs.join('\n')}`))
    }, options.readyTimeoutMs ?? 60_000)
    let buffer = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
        const line = buffer.slice(0, newline)
        buffer = buffer.slice(newline + 1)
        logs.push(line)
        if (logs.length > 2000) logs.shift()
        let entry: { msg?: string; did?: string; url?: string; multiaddrs?: string[] }
        try {
          entry = JSON.parse(line)
        } catch {
          continue
        }
        if (entry.msg === 'anchor ready') {
          clearTimeout(timer)
          resolve({ child, did: entry.did!, url: entry.url!, multiaddrs: entry.multiaddrs!, logs, stop })
        }
      }
    })
    child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString()))
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`anchor exited with ${code}:\n${logs.join('\n')}`))
    })
  })
}
