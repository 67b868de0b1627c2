/**
 * The anchor's envelope log on the segment log: envelopes round-trip as their wire bytes, a log of
 * an earlier version (DAG-JSON lines) is imported once (a torn last line dropped, a damaged middle
 * line refused in words), and a record whose checksum holds but that is no envelope is moved aside.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AnyEnvelope } from '@can-swarm/peer'
import { envelopeToJson } from '@can-swarm/peer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeIdentities, sign } from '../../../../test-support/envelopes.ts'
import { EnvelopeLog } from '../../src/anchor/log.ts'
import { SegmentLog } from '../../src/storage/segment-log.ts'

let root: string
let envs: AnyEnvelope[]
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'can-swarm-envelope-log-'))
  const [who] = await makeIdentities(1, 91)
  envs = []
  for (let i = 0; i < 6; i += 1) {
    envs.push(
      await sign(who!, 'HEARTBEAT', 'thread', {
        task: 'p/t',
        claim: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
        progress: i,
      }),
    )
  }
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})

describe('the envelope log', () => {
  it('keeps envelopes once each, across restarts', async () => {
    const data = join(root, 'plain')
    await mkdir(data)
    const { log } = await EnvelopeLog.open(data)
    for (const env of [...envs, envs[0]!]) log.append(env)
    expect(log.size).toBe(6)
    await log.flush()
    log.close()
    const again = await EnvelopeLog.open(data)
    again.log.close()
    expect(again.envelopes.map((env) => env.id)).toEqual(envs.map((env) => env.id))
    expect(again.report).toMatchObject({ records: 6, tornBytes: 0, undecodable: 0, imported: 0 })
  })

  it('imports a log of an earlier version once, dropping a torn last line', async () => {
    const data = join(root, 'legacy')
    await mkdir(data)
    const lines = envs.slice(0, 4).map((env) => envelopeToJson(env))
    writeFileSync(join(data, 'envelopes.jsonl'), `${lines.join('\n')}\n${lines[0]!.slice(0, 40)}`)
    const first = await EnvelopeLog.open(data)
    first.log.close()
    expect(first.report.imported).toBe(4)
    expect(first.envelopes.map((env) => env.id)).toEqual(envs.slice(0, 4).map((env) => env.id))
    expect(existsSync(join(data, 'envelopes.jsonl'))).toBe(false)
    expect(existsSync(join(data, 'envelopes.jsonl.imported'))).toBe(true)
    const second = await EnvelopeLog.open(data)
    second.log.close()
    expect(second.report.imported).toBe(0)
    expect(second.envelopes).toHaveLength(4)

    const damaged = join(root, 'legacy-damaged')
    await mkdir(damaged)
    writeFileSync(join(damaged, 'envelopes.jsonl'), `${lines[0]}\nnot an envelope\n${lines[1]}\n`)
    await expect(EnvelopeLog.open(damaged)).rejects.toThrow(/line 2 is not an envelope/)
  })

  it('moves aside a whole record that is not an envelope', async () => {
    const data = join(root, 'foreign')
    await mkdir(data)
    const { log } = SegmentLog.open({ dir: join(data, 'log') }, () => undefined)
    log.append(new TextEncoder().encode('checksummed, but no envelope'))
    log.close()
    const { log: envelopes, report } = await EnvelopeLog.open(data)
    envelopes.append(envs[5]!)
    envelopes.close()
    expect(report.undecodable).toBe(1)
    expect(readdirSync(join(data, 'log', 'quarantine'))).toEqual(['undecodable-0.bad'])
    const again = await EnvelopeLog.open(data)
    again.log.close()
    expect(again.envelopes.map((env) => env.id)).toEqual([envs[5]!.id])
  })

  it('opened lazily, replays what eager opening reads, across segments, skipping what is no envelope', async () => {
    const data = join(root, 'lazy')
    await mkdir(data)
    // Small segments: the replay crosses several files.
    const { log: segments } = SegmentLog.open(
      { dir: join(data, 'log'), maxSegmentBytes: 1024 },
      () => undefined,
    )
    segments.append(new TextEncoder().encode('checksummed, but no envelope'))
    segments.close()
    const first = await EnvelopeLog.open(data, { maxSegmentBytes: 1024 })
    for (const env of [...envs, envs[2]!]) first.log.append(env)
    await first.log.flush()
    first.log.close()
    const lazy = await EnvelopeLog.open(data, { lazy: true, maxSegmentBytes: 1024 })
    expect(lazy.envelopes).toEqual([])
    expect(lazy.report.segments).toBeGreaterThan(1)
    expect(lazy.log.size).toBe(0)
    const replayed = [...lazy.log.replay()]
    expect(replayed.map((env) => env.id)).toEqual(envs.map((env) => env.id))
    // Replayed envelopes are in the index: appending one again writes nothing.
    expect(lazy.log.size).toBe(6)
    expect(lazy.log.undecodable).toBe(1)
    lazy.log.append(envs[0]!)
    expect(lazy.log.appended).toBe(0)
    lazy.log.close()
    const eager = await EnvelopeLog.open(data, { maxSegmentBytes: 1024 })
    eager.log.close()
    expect(eager.envelopes.map((env) => env.id)).toEqual(replayed.map((env) => env.id))
  })
})
