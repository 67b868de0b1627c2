import { type ChildProcess, spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ANCHOR_ENTRY, killAnchors, startAnchorProcess } from '../../../test-support/anchor-process.ts'

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

/** Every listener on a free port (a process that must not start, or must not clash). */
const ANY_PORTS = ['--port', '0', '--p2p-port', '0', '--ws-port', '0']

function runSync(args: string[], env: Record<string, string> = {}) {
  return spawnSync(node, [ANCHOR_ENTRY, ...args], {
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
      '--genesis',
      '--allowed-hosts',
      '--allowed-origins',
      '--http-requests-per-second',
      '--http-request-burst',
      '--upload-bytes-per-second',
      '--upload-burst-bytes',
      '--artifact-store-bytes',
      '--artifact-cache-bytes',
      '--artifact-cache-bytes-per-client',
    ]) {
      expect(help.stdout).toContain(option)
    }
    expect(help.stdout).toContain('CAN_SWARM_PORT')
    const genesisHelp = runSync(['genesis', '--help'])
    expect(genesisHelp.status).toBe(0)
    for (const option of ['--data', '--out', '--verifiers', '--no-bootstrap-mode']) {
      expect(genesisHelp.stdout).toContain(option)
    }
    const version = runSync(['--version'])
    expect(version.status).toBe(0)
    expect(version.stdout.trim()).toMatch(/^@can-swarm\/node \d+\.\d+\.\d+ \(protocol v2\)$/)
  })

  it('keeps its network genesis, refuses a configuration that contradicts it, and joins a network of several anchors', async () => {
    const data = join(dir, 'anchor-genesis')
    const first = await startAnchorProcess(['--data', data])
    const genesis = (await (await fetch(`${first.url}/api/genesis`)).json()) as {
      id: string
      body: { anchors: string[]; pool: { bootstrap: boolean; verifiers: string[] } }
    }
    expect(genesis.body.anchors).toEqual([first.did])
    expect(genesis.body.pool).toMatchObject({ bootstrap: true, verifiers: [] })
    const status = (await (await fetch(`${first.url}/api/status`)).json()) as { network: string }
    expect(status.network).toBe(genesis.id)
    first.child.kill('SIGTERM')
    expect(await exited(first.child)).toBe(0)
    // The same data directory is the same network.
    const again = await startAnchorProcess(['--data', data])
    expect(((await (await fetch(`${again.url}/api/genesis`)).json()) as { id: string }).id).toBe(genesis.id)
    again.child.kill('SIGTERM')
    expect(await exited(again.child)).toBe(0)
    // Another initial pool on an existing network is refused in words (exit 1), nothing started.
    const contradicting = runSync(['--data', data, ...ANY_PORTS, '--verifiers', again.did])
    expect(contradicting.status).toBe(1)
    expect(contradicting.stdout).toMatch(/--verifiers differs from this network's genesis pool/)

    // A network of two anchors: one genesis signed by both, each anchor started with it.
    const a = join(dir, 'group-a')
    const b = join(dir, 'group-b')
    const file = join(dir, 'group-genesis.json')
    const made = runSync(['genesis', '--data', `${a},${b}`, '--out', file])
    expect(made.status, made.stderr).toBe(0)
    const group = JSON.parse(made.stdout) as { network: string; anchors: string[] }
    expect(group.anchors).toHaveLength(2)
    const anchorA = await startAnchorProcess(['--data', a, '--genesis', file])
    const anchorB = await startAnchorProcess(['--data', b, '--genesis', file])
    for (const anchor of [anchorA, anchorB]) {
      const served = (await (await fetch(`${anchor.url}/api/genesis`)).json()) as {
        id: string
        body: { anchors: string[] }
      }
      expect(served.id).toBe(group.network)
      expect(served.body.anchors).toContain(anchor.did)
    }
    // A genesis that does not name this anchor is refused.
    const stranger = runSync(['--data', join(dir, 'not-in-group'), ...ANY_PORTS, '--genesis', file])
    expect(stranger.status).toBe(1)
    expect(stranger.stdout).toMatch(/does not name this anchor/)
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
      [ANCHOR_ENTRY, '--port', '0', '--p2p-port', '0', '--ws-port', '0', '--data', data],
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
