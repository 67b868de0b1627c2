/** Starts `node packages/node` as a child process for tests and waits for "anchor ready". */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..', '..', '..', '..')

export interface StartedAnchor {
  child: ChildProcess
  did: string
  multiaddrs: string[]
  url: string
  logs: string[]
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>
}

/** Every anchor started here, so that a test's afterAll can kill what is left. */
export const startedAnchors: ChildProcess[] = []

export function startAnchorProcess(
  args: readonly string[],
  options: { /** Run inside this named network namespace (`ip netns exec`). */ netns?: string } = {},
): Promise<StartedAnchor> {
  const argv = [
    process.execPath,
    'packages/node',
    '--port',
    '0',
    '--p2p-port',
    '0',
    '--ws-port',
    '0',
    ...args,
  ]
  const command = options.netns === undefined ? argv : ['ip', 'netns', 'exec', options.netns, ...argv]
  const child = spawn(command[0]!, command.slice(1), {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  startedAnchors.push(child)
  const logs: string[] = []
  const stop = (): Promise<number | null> =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve(child.exitCode)
      child.once('exit', (code) => resolve(code))
      child.kill('SIGTERM')
    })
  return new Promise((resolve, reject) => {
    let buffer = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
        const line = buffer.slice(0, newline)
        buffer = buffer.slice(newline + 1)
        logs.push(line)
        const entry = JSON.parse(line) as { msg: string; did: string; url: string; multiaddrs: string[] }
        if (entry.msg === 'anchor ready') {
          resolve({ child, did: entry.did, url: entry.url, multiaddrs: entry.multiaddrs, logs, stop })
        }
      }
    })
    child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString()))
    child.on('exit', (code) => reject(new Error(`anchor exited with ${code}:\n${logs.join('\n')}`)))
  })
}

/** Kills every anchor still running (for afterAll). */
export function killAnchors(): void {
  for (const child of startedAnchors.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
}
