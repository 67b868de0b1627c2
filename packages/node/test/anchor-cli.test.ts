import { type ChildProcess, spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { killAnchors, startAnchorProcess } from './helpers/anchor-process.ts'

const root = join(import.meta.dirname, '..', '..', '..')
const node = process.execPath
let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-anchor-'))
})
afterEach(() => {
  killAnchors()
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function runSync(args: string[], env: Record<string, string> = {}) {
  return spawnSync(node, ['packages/node', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  })
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode)
    else child.on('exit', (code) => resolve(code))
  })
}

describe('node packages/node', () => {
  it('documents every option in --help', () => {
    const help = runSync(['--help'])
    expect(help.status).toBe(0)
    for (const option of [
      '--data',
      '--host',
      '--port',
      '--log-level',
      '--consensus',
      '--etcd',
      '--etcd-prefix',
      '--config',
      '--p2p-port',
      '--ws-port',
      '--peers',
      '--verifiers',
      '--no-bootstrap-mode',
    ]) {
      expect(help.stdout).toContain(option)
    }
    expect(help.stdout).toContain('CAN_SWARM_PORT')
  })

  it('refuses bad configuration with a clear message and exit code 2', async () => {
    expect(runSync(['--port', '70000']).stderr).toMatch(/port/)
    expect(runSync(['--port', '70000']).status).toBe(2)
    expect(runSync([], { CAN_SWARM_PORT: 'abc' }).stderr).toMatch(/CAN_SWARM_PORT: "abc" is not a number/)
    expect(runSync(['--consensus', 'etcd']).stderr).toMatch(/needs at least one --etcd URL/)
    const file = join(dir, 'bad-config.json')
    await writeFile(file, JSON.stringify({ port: 1, colour: 'blue' }))
    const bad = runSync(['--config', file])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/colour|Unrecognized key/)
  })

  it('serves health, readiness, metrics and status; keeps its identity; stops cleanly on SIGTERM', async () => {
    const data = join(dir, 'anchor-1')
    const first = await startAnchorProcess(['--data', data])
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(await (await fetch(`${first.url}/healthz`)).json()).toEqual({ status: 'ok' })
    const ready = await fetch(`${first.url}/readyz`)
    expect(ready.status).toBe(200)
    const metrics = await (await fetch(`${first.url}/metrics`)).text()
    expect(metrics).toMatch(/can_swarm_consensus_epoch 1/)
    expect(metrics).toMatch(/can_swarm_anchor_process_cpu_seconds_total/)
    const status = (await (await fetch(`${first.url}/api/status`)).json()) as {
      did: string
      consensus: string
    }
    expect(status).toMatchObject({ did: first.did, consensus: 'embedded' })
    expect((await fetch(`${first.url}/api/nope`)).status).toBe(404)
    expect((await fetch(`${first.url}/healthz`, { method: 'POST' })).status).toBe(405)

    // One process per data directory: a second anchor on it fails with the lock named.
    const second = spawnSync(
      node,
      ['packages/node', '--port', '0', '--p2p-port', '0', '--ws-port', '0', '--data', data],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 30_000,
      },
    )
    expect(second.status).toBe(1)
    expect(second.stdout).toMatch(/STORE_LOCKED|locked/)

    first.child.kill('SIGTERM')
    expect(await exited(first.child)).toBe(0)
    expect(first.logs.some((line) => line.includes('"msg":"stopped"'))).toBe(true)

    const again = await startAnchorProcess(['--data', data])
    expect(again.did).toBe(first.did)
    again.child.kill('SIGINT')
    expect(await exited(again.child)).toBe(0)
  })
})
