import { spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isAuthorityRefusal } from '../src/core/thread/refusals.ts'

const root = join(import.meta.dirname, '..', '..', '..')
const node = process.execPath

function run(script: string, args: string[]) {
  const result = spawnSync(node, [join(root, 'packages/peer/src/cli', script), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  })
  const lines = result.stdout.trim().split('\n')
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    last: lines[lines.length - 1] ?? '',
  }
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('npm run sim', () => {
  it('prints a JSON summary as its last line and writes signed traces', async () => {
    const result = run('sim.ts', [
      '--seeds',
      '2',
      '--seed',
      '5',
      '--faults',
      'partition',
      '--trace',
      dir,
      '--quiet',
    ])
    expect(result.status, result.stderr).toBe(0)
    const summary = JSON.parse(result.last)
    expect(summary).toMatchObject({ seeds: 2, violations: 0 })
    expect(summary.finalized).toBeGreaterThan(0)
    expect(summary.properties).toEqual(['P1', 'P2', 'P4', 'P5', 'P6', 'P9', 'P10', 'no-agent-error'])
    expect(summary.byFault.partition.seeds).toBe(2)
    expect(await readdir(dir)).toEqual(['seed-5', 'seed-6'])
  })

  it('runs with the compiled policy at every gate and with the economy', () => {
    const result = run('sim.ts', ['--seed', '9', '--faults', 'byzantine', '--policy', '--economy', '--quiet'])
    expect(result.status, result.stderr).toBe(0)
    const summary = JSON.parse(result.last)
    expect(summary.violations).toBe(0)
    expect(summary.properties).toEqual([
      'P1',
      'P2',
      'P4',
      'P5',
      'P6',
      'P9',
      'P10',
      'no-agent-error',
      'P3',
      'conservation',
    ])
    expect(summary.policy.evaluations).toBeGreaterThan(100)
    expect(summary.economy.operations).toBeGreaterThan(10)
  })

  it('runs the attacker and reports every attack it tried as refused or contained', () => {
    const result = run('sim.ts', ['--seed', '3', '--faults', 'attacker', '--quiet'])
    expect(result.status, result.stderr).toBe(0)
    const summary = JSON.parse(result.last)
    expect(summary.violations).toBe(0)
    expect(summary.properties).toContain('P9')
    expect(summary.attacker.tried).toBeGreaterThan(10)
    expect(summary.attacker.refused).toBe(summary.attacker.tried)
    const catalogue = summary.attacker.catalogue as Record<string, { tried: number; refused: number }>
    expect(Object.keys(catalogue).length).toBeGreaterThan(5)
    for (const [attack, counts] of Object.entries(catalogue))
      expect(counts.refused, attack).toBe(counts.tried)
    // The honest peers refused by authority codes, not only by the races of the protocol.
    const authority = Object.keys(summary.refusals).filter((code) => isAuthorityRefusal(code))
    expect(authority.length).toBeGreaterThan(3)
  })

  it('explains bad options and has --help', () => {
    const bad = run('sim.ts', ['--faults', 'earthquake'])
    expect(bad.status).not.toBe(0)
    expect(bad.stderr).toMatch(/unknown fault class "earthquake"/)
    expect(run('sim.ts', ['--seeds', '0']).stderr).toMatch(/--seeds must be a positive integer/)
    const help = run('sim.ts', ['--help'])
    expect(help.status).toBe(0)
    expect(help.stdout).toMatch(/--faults <classes>/)
  })
})

describe('npm run replay', () => {
  it('replays traces to the same state hash twice, and rejects a tampered one', async () => {
    const peerDir = join(dir, 'seed-5', 'peer-2')
    const [file] = (await readdir(peerDir)).filter((name) => name.endsWith('.jsonl'))
    const path = join(peerDir, file!)
    const first = run('replay.ts', [path])
    expect(first.status, first.stderr).toBe(0)
    const result = JSON.parse(first.last)
    expect(result.ok).toBe(true)
    expect(result.stateHash).toMatch(/^[0-9a-f]{64}$/)
    expect(JSON.parse(run('replay.ts', [path]).last).stateHash).toBe(result.stateHash)

    const whole = run('replay.ts', [join(dir, 'seed-5'), '--quiet'])
    expect(whole.status, whole.stderr).toBe(0)
    expect(JSON.parse(whole.last)).toMatchObject({ ok: true })
    expect(JSON.parse(whole.last).files).toBeGreaterThan(3)

    const original = (await readFile(path, 'utf8')).trimEnd().split('\n')
    const lines = [...original]
    const tampered = join(dir, 'tampered.jsonl')
    lines[2] = lines[2]!.replace(/"ts":(\d+)/, '"ts":99$1')
    await writeFile(tampered, `${lines.join('\n')}\n`)
    const bad = run('replay.ts', [tampered])
    expect(bad.status).toBe(1)
    expect(bad.stderr).toMatch(/line 3: envelope rejected/)
    expect(JSON.parse(bad.last)).toMatchObject({ ok: false })

    const truncated = join(dir, 'truncated.jsonl')
    await writeFile(truncated, `${original.slice(0, 3).join('\n')}\n`)
    expect(run('replay.ts', [truncated]).stderr).toMatch(/truncated: no end record/)
    expect(run('replay.ts', [join(dir, 'missing.jsonl')]).status).toBe(2)
  })
})
