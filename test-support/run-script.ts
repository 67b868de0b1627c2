/**
 * Runs a multi-process network scenario script in a private network namespace (only `lo`) when
 * this machine allows it, else on the host's loopback with a printed notice. The script prints
 * progress on stderr and its result as the last JSON line on stdout. The child is killed on
 * timeout; its own children die with it (they are killed on exit and have IPC to it).
 */
import { spawn } from 'node:child_process'
import { netnsCommand } from '@can-swarm/peer/mesh'

/** Runs `node <script> ...args`; resolves to the last JSON line it printed. */
export async function runScenario<T>(script: string, args: string[] = [], timeoutMs = 120_000): Promise<T> {
  const argv = [process.execPath, script, ...args]
  const wrapped = netnsCommand(argv)
  if (!wrapped) {
    if (process.env.CI === 'true')
      throw new Error('CI must be able to create a network namespace (unshare -n)')
    process.stderr.write(`notice: no private network namespace here; running ${script} on host loopback\n`)
  }
  const [command, ...rest] = wrapped ?? argv
  const child = spawn(command!, rest, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(timer)
  const last = stdout
    .trim()
    .split('\n')
    .reverse()
    .find((line) => line.startsWith('{'))
  if (code !== 0 || last === undefined) {
    throw new Error(
      `${script} exited with ${code}\nstdout:\n${stdout.slice(-4000)}\nstderr:\n${stderr.slice(-4000)}`,
    )
  }
  return JSON.parse(last) as T
}
