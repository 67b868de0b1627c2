/**
 * A real etcd cluster for tests: Debian's `etcd-server` (`/usr/bin/etcd`) as N members on loopback
 * ports chosen free at runtime, data directories in a temp dir, health-checked before use, killed
 * and removed by `stop()` (and by a process-exit hook if a test run dies first).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Etcd3 } from 'etcd3'
import { ETCD_BIN, need } from './prerequisites.ts'

export { ETCD_BIN }

/**
 * Whether the etcd tests can run. In a dev shell without etcd they skip with a loud reason; with
 * CI=true a missing etcd throws (CI must install it: see .ci/run).
 */
export function etcdAvailable(where: string): boolean {
  return need('etcd', where)
}

/** A loopback TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

/** One member of a test cluster. */
export interface EtcdMember {
  name: string
  clientUrl: string
  peerUrl: string
  dataDir: string
  logFile: string
  process: ChildProcess | undefined
  paused: boolean
}

const liveProcesses = new Set<ChildProcess>()
const liveDirs = new Set<string>()
process.once('exit', () => {
  for (const child of liveProcesses) child.kill('SIGKILL')
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true })
})

class MemberExitedError extends Error {}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A running test cluster. */
export class EtcdCluster {
  readonly dir: string
  readonly members: EtcdMember[]
  readonly #initialCluster: string
  readonly #token: string

  private constructor(dir: string, members: EtcdMember[], token: string) {
    this.dir = dir
    this.members = members
    this.#token = token
    this.#initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',')
  }

  /**
   * Starts `size` members and waits until the cluster is healthy. A member that exits during the
   * start (a port taken since it was picked) makes it start over on new ports, up to 3 times.
   */
  static async start(options: { size?: number; healthTimeoutMs?: number } = {}): Promise<EtcdCluster> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await EtcdCluster.#startOnce(options)
      } catch (error) {
        if (attempt >= 3 || !(error instanceof MemberExitedError)) throw error
      }
    }
  }

  static async #startOnce(options: { size?: number; healthTimeoutMs?: number }): Promise<EtcdCluster> {
    const size = options.size ?? 3
    const dir = mkdtempSync(join(tmpdir(), 'can-swarm-etcd-'))
    liveDirs.add(dir)
    const members: EtcdMember[] = []
    for (let i = 0; i < size; i += 1) {
      const name = `m${i}`
      members.push({
        name,
        clientUrl: `http://127.0.0.1:${await freePort()}`,
        peerUrl: `http://127.0.0.1:${await freePort()}`,
        dataDir: join(dir, name),
        logFile: join(dir, `${name}.log`),
        process: undefined,
        paused: false,
      })
    }
    const cluster = new EtcdCluster(dir, members, `t-${process.pid}-${Date.now()}`)
    try {
      for (const member of members) cluster.#spawn(member)
      await cluster.waitHealthy(options.healthTimeoutMs ?? 60_000, true)
    } catch (error) {
      await cluster.stop()
      throw error
    }
    return cluster
  }

  /** Client URLs of every member. */
  get clientUrls(): string[] {
    return this.members.map((m) => m.clientUrl)
  }

  #spawn(member: EtcdMember): void {
    const log = openSync(member.logFile, 'a')
    // setpriv --pdeathsig: the member dies with the test process even if that is SIGKILLed.
    const [command, prefixArgs] = existsSync('/usr/bin/setpriv')
      ? ['/usr/bin/setpriv', ['--pdeathsig', 'SIGKILL', '--', ETCD_BIN]]
      : [ETCD_BIN, []]
    const child = spawn(
      command,
      [
        ...prefixArgs,
        '--name',
        member.name,
        '--data-dir',
        member.dataDir,
        '--listen-client-urls',
        member.clientUrl,
        '--advertise-client-urls',
        member.clientUrl,
        '--listen-peer-urls',
        member.peerUrl,
        '--initial-advertise-peer-urls',
        member.peerUrl,
        '--initial-cluster',
        this.#initialCluster,
        '--initial-cluster-token',
        this.#token,
        '--initial-cluster-state',
        'new',
        '--logger',
        'zap',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', log, log] },
    )
    member.process = child
    member.paused = false
    liveProcesses.add(child)
    child.once('exit', () => {
      liveProcesses.delete(child)
      if (member.process === child) member.process = undefined
    })
  }

  /** Polls every running member's /health until all say healthy. */
  async waitHealthy(timeoutMs = 60_000, failOnExit = false): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const gone = this.members.find((m) => m.process === undefined)
      if (failOnExit && gone)
        throw new MemberExitedError(`${gone.name} exited while starting; see ${gone.logFile}`)
      const running = this.members.filter((m) => m.process !== undefined && !m.paused)
      const states = await Promise.all(running.map((m) => this.#healthy(m)))
      if (running.length > 0 && states.every(Boolean)) return
      if (Date.now() > deadline) {
        throw new Error(`etcd cluster not healthy after ${timeoutMs} ms; logs in ${this.dir}`)
      }
      await sleep(200)
    }
  }

  async #healthy(member: EtcdMember): Promise<boolean> {
    try {
      const response = await fetch(`${member.clientUrl}/health`, { signal: AbortSignal.timeout(2_000) })
      const body = (await response.json()) as { health?: string }
      return body.health === 'true'
    } catch {
      return false
    }
  }

  /** The member that is the current leader (asks each running member). */
  async leader(timeoutMs = 30_000): Promise<EtcdMember> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      for (const member of this.members) {
        if (member.process === undefined || member.paused) continue
        const client = new Etcd3({ hosts: member.clientUrl, dialTimeout: 1_000 })
        try {
          const status = await client.maintenance.status({ deadline: Date.now() + 2_000 })
          if (status.leader !== '0' && status.leader === status.header.member_id) return member
        } catch {
          // not answering: try the next member
        } finally {
          client.close()
        }
      }
      if (Date.now() > deadline) throw new Error('no etcd leader found')
      await sleep(200)
    }
  }

  /** SIGKILLs a member and waits for it to exit. */
  async kill(member: EtcdMember): Promise<void> {
    const child = member.process
    if (child === undefined) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    if (member.paused) child.kill('SIGCONT')
    child.kill('SIGKILL')
    await exited
  }

  /** Restarts a killed member on its data directory. */
  restart(member: EtcdMember): void {
    if (member.process !== undefined) throw new Error(`${member.name} is still running`)
    this.#spawn(member)
  }

  /** SIGSTOPs a member (it neither answers nor votes until resumed). */
  pause(member: EtcdMember): void {
    member.process?.kill('SIGSTOP')
    member.paused = true
  }

  /** SIGCONTs a paused member. */
  resume(member: EtcdMember): void {
    member.process?.kill('SIGCONT')
    member.paused = false
  }

  /** Kills every member and removes the data directories. Idempotent. */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => this.kill(m)))
    rmSync(this.dir, { recursive: true, force: true })
    liveDirs.delete(this.dir)
  }
}
