/**
 * Starts `node packages/node` as a child process for tests, benchmarks and the browser e2e, and
 * waits for "anchor ready". Ports default to 0 (any free one) unless `args` name them.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')

export interface StartedAnchor {
  child: ChildProcess
  did: string
  multiaddrs: string[]
  url: string
  /** Its log lines: the first 100 (start-up, an inspector's URL), then the latest (2 000 in all). */
  logs: string[]
  /** Sends `signal` (SIGKILL after `graceMs`) and waits for the exit code. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>
}

/** Options of {@link startAnchorProcess}. */
export interface AnchorProcessOptions {
  /** Run inside this named network namespace (`ip netns exec`). */
  netns?: string
  /** Time allowed to become ready, in ms. @default 60 000 */
  readyTimeoutMs?: number
  /** The script to run. @default {@link ANCHOR_ENTRY} (from the repository root) */
  entry?: string
  /** The child's environment. @default this process's */
  env?: NodeJS.ProcessEnv
}

/**
 * The anchor's entry from its sources (`node packages/node` runs the compiled `dist/bin.js`, which
 * a test would otherwise see stale; the install test runs that one).
 */
export const ANCHOR_ENTRY = 'packages/node/src/bin.ts'

/** Log lines kept per anchor: the first {@link KEPT_FIRST_LINES}, then the latest. */
const MAX_LOG_LINES = 2000
const KEPT_FIRST_LINES = 100

/** Every anchor started here, so that a test's afterAll can kill what is left. */
export const startedAnchors: ChildProcess[] = []

const PORT_FLAGS = ['--port', '--p2p-port', '--ws-port']

export function startAnchorProcess(
  args: readonly string[],
  options: AnchorProcessOptions = {},
): Promise<StartedAnchor> {
  const ports = PORT_FLAGS.filter((flag) => !args.includes(flag)).flatMap((flag) => [flag, '0'])
  const argv = [process.execPath, options.entry ?? ANCHOR_ENTRY, ...ports, ...args]
  const command = options.netns === undefined ? argv : ['ip', 'netns', 'exec', options.netns, ...argv]
  const child = spawn(command[0]!, command.slice(1), {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  })
  startedAnchors.push(child)
  const logs: string[] = []
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    const code = await exited
    clearTimeout(timer)
    return code
  }
  // The first lines (the start-up report, an inspector's URL) stay; later ones roll over.
  const keep = (line: string) => {
    logs.push(line)
    if (logs.length > MAX_LOG_LINES) logs.splice(KEPT_FIRST_LINES, 1)
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
        keep(line)
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
    child.stderr!.on('data', (chunk: Buffer) => keep(chunk.toString()))
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`anchor exited with ${code}:\n${logs.join('\n')}`))
    })
  })
}

/** Kills every anchor still running (for afterAll). */
export function killAnchors(): void {
  for (const child of startedAnchors.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
}
