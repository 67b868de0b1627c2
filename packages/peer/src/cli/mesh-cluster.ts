/**
 * Starting and driving the processes of a loopback mesh: the relay, the peers (`mesh-peer.ts`,
 * forked with an IPC channel), and the private network namespace the whole mesh can run in.
 * Every child is killed when the driver exits, whatever the reason.
 */
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { MeshPeerConfig } from './mesh-peer.ts'

export type { MeshPeerConfig }

const here = dirname(fileURLToPath(import.meta.url))
const PEER_SCRIPT = join(here, 'mesh-peer.ts')
/** The relay package's entry point. */
export const RELAY_ENTRY = resolve(here, '../../../relay/src/index.ts')

const children = new Set<ChildProcess>()
let cleanupInstalled = false

function track(child: ChildProcess): void {
  children.add(child)
  child.once('exit', () => children.delete(child))
  if (cleanupInstalled) return
  cleanupInstalled = true
  const killAll = (): void => {
    for (const process of children) process.kill('SIGKILL')
  }
  process.once('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAll()
      process.exit(130)
    })
  }
}

/** A forked mesh peer, driven by request/response over IPC. */
export class PeerProcess {
  readonly index: number
  readonly child: ChildProcess
  peerId = ''
  did = ''
  multiaddrs: string[] = []
  #next = 1
  #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()

  constructor(index: number, child: ChildProcess) {
    this.index = index
    this.child = child
    child.on('message', (message: { id: number; result?: unknown; error?: string }) => {
      const waiter = this.#pending.get(message.id)
      if (!waiter) return
      this.#pending.delete(message.id)
      if (message.error !== undefined) waiter.reject(new Error(`peer ${index}: ${message.error}`))
      else waiter.resolve(message.result)
    })
    child.once('exit', (code, signal) => {
      for (const waiter of this.#pending.values()) {
        waiter.reject(new Error(`peer ${index} exited (${code ?? signal})`))
      }
      this.#pending.clear()
    })
  }

  /** Forks a peer process and starts its node with `config`. */
  static async start(
    index: number,
    config: MeshPeerConfig,
    options: {
      timeoutMs?: number /** Run inside this named network namespace (`ip netns exec`). */
      netns?: string
    } = {},
  ) {
    const child =
      options.netns === undefined
        ? fork(PEER_SCRIPT, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
        : spawn('ip', ['netns', 'exec', options.netns, process.execPath, PEER_SCRIPT], {
            serialization: 'advanced',
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          })
    track(child)
    const peer = new PeerProcess(index, child)
    const info = (await peer.call('start', config, options.timeoutMs ?? 90_000)) as {
      peerId: string
      did: string
      multiaddrs: string[]
    }
    peer.peerId = info.peerId
    peer.did = info.did
    peer.multiaddrs = info.multiaddrs
    return peer
  }

  /** Calls a method of the peer; rejects after `timeoutMs`. */
  call<T = unknown>(method: string, params?: unknown, timeoutMs = 60_000): Promise<T> {
    const id = this.#next++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`peer ${this.index}: ${method} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer)
          resolve(value as T)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(error)
        },
      })
      this.child.send({ id, method, params })
    })
  }

  /** Stops the node, then the process (killed when it does not exit within 5 s). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    await this.call('stop', undefined, 5000).catch(() => {})
    this.child.disconnect?.()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}

/** A relay child process. */
export interface RelayProcess {
  peerId: string
  multiaddrs: string[]
  child: ChildProcess
  stop(): Promise<void>
}

/** Starts `node packages/relay --data <dataDir>` and reads its multiaddrs. */
export async function startRelayProcess(dataDir: string, timeoutMs = 90_000): Promise<RelayProcess> {
  const child = spawn(process.execPath, [RELAY_ENTRY, '--data', dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  track(child)
  const info = await new Promise<{ peerId: string; multiaddrs: string[] }>((resolve, reject) => {
    let buffer = ''
    const timer = setTimeout(() => reject(new Error('relay did not print its addresses in time')), timeoutMs)
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      for (const line of buffer.split('\n')) {
        if (line.startsWith('{')) {
          clearTimeout(timer)
          resolve(JSON.parse(line))
        }
      }
    })
    child.once('exit', (code) => reject(new Error(`relay exited with ${code}`)))
  })
  return {
    ...info,
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  }
}

/** A fresh random 32-byte seed, hex. */
export function randomSeedHex(): string {
  return randomBytes(32).toString('hex')
}

/** True inside a namespace made by {@link netnsCommand}. */
export function inPrivateNetns(): boolean {
  return process.env.CAN_SWARM_NETNS === '1'
}

/**
 * The command that runs `argv` inside a fresh network namespace holding only `lo`
 * (`unshare -n` as root, `unshare -rn` where unprivileged user namespaces work), or `undefined`
 * when neither is possible here.
 */
export function netnsCommand(argv: readonly string[]): string[] | undefined {
  if (!existsSync('/usr/bin/unshare') && !existsSync('/bin/unshare')) return undefined
  const script = 'ip link set lo up 2>/dev/null || true; CAN_SWARM_NETNS=1 exec "$@"'
  for (const flags of process.getuid?.() === 0 ? ['-n'] : ['-rn']) {
    try {
      execFileSync('unshare', [flags, 'true'], { stdio: 'ignore', timeout: 5000 })
      return ['unshare', flags, 'sh', '-c', script, 'sh', ...argv]
    } catch {}
  }
  return undefined
}
