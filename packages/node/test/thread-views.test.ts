/**
 * `GET /api/threads/<thread>` through ThreadViews: a repeated request encodes nothing, news encode
 * only the new envelopes, other threads' envelopes cost nothing, a replaced replica is re-read, and
 * the texts are bounded.
 */

import type { AnyEnvelope, ThreadReplica } from '@can-swarm/peer'
import { artifactCid, envelopeToJson } from '@can-swarm/peer'
import { describe, expect, it } from 'vitest'
import { makeIdentities, sign } from '../../../test-support/envelopes.ts'
import { ThreadViews } from '../src/anchor/thread-views.ts'

/** A stand-in replica: its envelopes in log order and their number, as ThreadReplica has them. */
function replicaOf(envelopes: AnyEnvelope[]): ThreadReplica {
  return {
    get size() {
      return envelopes.length
    },
    envelopes: () => envelopes,
  } as unknown as ThreadReplica
}

const CLAIM = artifactCid(new TextEncoder().encode('a claim'))

async function heartbeats(thread: string, count: number, from = 0): Promise<AnyEnvelope[]> {
  const [worker] = await makeIdentities(1, 61)
  const list: AnyEnvelope[] = []
  for (let index = from; index < from + count; index += 1)
    list.push(
      await sign(worker!, 'HEARTBEAT', thread, {
        task: `${thread}/p/t`,
        claim: CLAIM,
        progress: index,
      }),
    )
  return list
}

describe('ThreadViews', () => {
  it('encodes each envelope once, and a thread costs nothing for the others', async () => {
    const a = await heartbeats('need-a', 20)
    const b = await heartbeats('need-b', 10)
    const replicas = new Map([
      ['need-a', replicaOf(a)],
      ['need-b', replicaOf(b)],
    ])
    const views = new ThreadViews((thread) => replicas.get(thread))
    expect(views.lines('need-a')).toEqual(a.map(envelopeToJson))
    expect(views.encoded).toBe(20)
    for (let i = 0; i < 10; i += 1) views.lines('need-a')
    expect(views.encoded).toBe(20) // repeated requests encode nothing
    b.push(...(await heartbeats('need-b', 500, 10))) // unrelated news
    expect(views.lines('need-a')).toHaveLength(20)
    expect(views.encoded).toBe(20)
    a.splice(5, 0, ...(await heartbeats('need-a', 1, 20))) // one new envelope, placed mid-log
    expect(views.lines('need-a')).toEqual(a.map(envelopeToJson))
    expect(views.encoded).toBe(21)
    expect(views.lines('need-unknown')).toBeUndefined()
    // A thread dropped and followed again (a new replica) is read afresh.
    replicas.set('need-a', replicaOf(a.slice(0, 3)))
    expect(views.lines('need-a')).toHaveLength(3)
  })

  it('keeps at most maxChars of texts, dropping the least recently asked threads', async () => {
    const threads = ['need-x', 'need-y', 'need-z']
    const replicas = new Map<string, ThreadReplica>()
    for (const thread of threads) replicas.set(thread, replicaOf(await heartbeats(thread, 10)))
    const one = (await heartbeats('need-x', 10)).map(envelopeToJson).join('').length
    const views = new ThreadViews((thread) => replicas.get(thread), { maxChars: 2 * one + 10 })
    for (const thread of threads) views.lines(thread)
    expect(views.chars).toBeLessThanOrEqual(2 * one + 10)
    const encoded = views.encoded
    views.lines('need-z') // kept
    expect(views.encoded).toBe(encoded)
    views.lines('need-x') // dropped: encoded again
    expect(views.encoded).toBe(encoded + 10)
  })
})
