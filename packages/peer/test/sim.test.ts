import { describe, expect, it } from 'vitest'
import { replayTrace, writeTrace } from '../src/audit/trace.ts'
import { isAuthorityRefusal } from '../src/core/thread/refusals.ts'
import { FAULT_CLASSES, type FaultClass, type PeerThreadLog, runSimulation } from '../src/sim/world.ts'

describe('simulator', () => {
  it('finishes the work with no violations and no faults, in bootstrap and in full mode', async () => {
    for (const seed of [1, 2]) {
      const result = await runSimulation({ seed, faults: 'none' })
      expect(result.violations).toEqual([])
      expect(result.bootstrap).toBe(seed % 2 === 0)
      expect(result.needs).toBe(2)
      expect(result.finalizedNeeds).toBe(2)
      expect(result.converged).toBe(true)
      expect(result.properties).toEqual(expect.arrayContaining(['P1', 'P2', 'P4', 'P5', 'P6', 'P9', 'P10']))
      expect(result.attacks).toBeUndefined()
    }
  })

  it('is deterministic: a seed replays to the same result', async () => {
    const a = await runSimulation({ seed: 7, faults: 'combined' })
    const b = await runSimulation({ seed: 7, faults: 'combined' })
    expect(b).toEqual(a)
  })

  it('holds every property (P1, P2, P4–P6, P9, P10) under every fault class, and the faults really bite', async () => {
    const totals = new Map<string, Record<string, number>>()
    const attacks = new Map<string, { tried: number; refused: number }>()
    const authorityRefusals = new Set<string>()
    const run = async (seed: number, faults: FaultClass, sum: Record<string, number>) => {
      const result = await runSimulation({ seed, faults })
      expect(result.violations, `seed ${seed} ${faults}`).toEqual([])
      expect(result.converged, `seed ${seed} ${faults}`).toBe(true)
      sum.finalized! += result.finalizedTasks
      sum.forged! += result.droppedForged
      sum.lost! += result.droppedLost
      for (const [key, value] of Object.entries(result.observed)) sum[key] = (sum[key] ?? 0) + value
      for (const [name, counts] of Object.entries(result.attacks ?? {})) {
        const held = attacks.get(name) ?? { tried: 0, refused: 0 }
        attacks.set(name, { tried: held.tried + counts.tried, refused: held.refused + counts.refused })
      }
      if (faults === 'attacker')
        for (const code of Object.keys(result.refusals))
          if (isAuthorityRefusal(code)) authorityRefusals.add(code)
    }
    for (const [index, faults] of FAULT_CLASSES.entries()) {
      const sum: Record<string, number> = { finalized: 0, forged: 0, lost: 0 }
      for (const seed of [100 + index, 200 + index, 300 + index, 400 + index]) await run(seed, faults, sum)
      totals.set(faults, sum)
    }
    // Each requester's home anchor decides first and the other only after a back-off, so a
    // partition splits a decision less often than it used to: more seeds, until one does.
    const partition = totals.get('partition')!
    for (let seed = 500; partition.conflictingDecides === 0 && seed < 560; seed += 1) {
      await run(seed, 'partition', partition)
    }
    for (const [faults, sum] of totals) expect(sum.finalized, faults).toBeGreaterThan(0)
    expect(totals.get('loss')!.lost).toBeGreaterThan(0)
    expect(partition.conflictingDecides).toBeGreaterThan(0)
    expect(partition.reconciles).toBeGreaterThan(0)
    expect(partition.orphanedTasks).toBeGreaterThan(0)
    // The attacker tried many kinds of attack; every attempt was refused or contained (P9), and
    // the honest peers refused it by authority codes.
    expect(attacks.size).toBeGreaterThan(10)
    for (const [name, counts] of attacks) expect(counts.refused, name).toBe(counts.tried)
    expect(authorityRefusals.size).toBeGreaterThan(5)
    expect(totals.get('attacker')!.forged).toBeGreaterThan(0)
    expect(totals.get('crash')!.restarts).toBeGreaterThan(0)
    expect(totals.get('byzantine')!.forged).toBeGreaterThan(0)
    expect(totals.get('byzantine')!.equivocations).toBeGreaterThan(0)
    expect(totals.get('none' as never)).toBeUndefined()
  })

  it('rejects a bad peer count with a clear error', async () => {
    await expect(runSimulation({ seed: 1, peers: 3 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'peers',
    })
    await expect(runSimulation({ seed: 1, peers: 8, bootstrap: false })).rejects.toMatchObject({
      field: 'peers',
    })
  })
})

describe('signed traces', () => {
  async function traces(): Promise<PeerThreadLog[]> {
    const logs: PeerThreadLog[] = []
    await runSimulation({ seed: 3, faults: 'reorder', needs: 1, onTrace: (log) => void logs.push(log) })
    return logs
  }

  it('replay to the recorded state hash; every peer of a converged run agrees', async () => {
    const logs = await traces()
    expect(logs.length).toBeGreaterThan(5)
    const hashes = new Set<string>()
    for (const log of logs) {
      const text = await writeTrace({
        recorder: log.identity,
        params: log.params,
        thread: log.thread,
        entries: log.entries,
      })
      const result = await replayTrace(text)
      expect(result.stateHash).toBe(log.stateHash)
      expect(result.envelopes).toBe(log.entries.length)
      hashes.add(result.stateHash)
      // A second replay gives the same hash.
      expect((await replayTrace(text)).stateHash).toBe(result.stateHash)
    }
    expect(hashes.size).toBe(1)
  })

  it('are rejected when tampered, reordered or truncated, naming the line', async () => {
    const log = (await traces())[2]!
    const text = await writeTrace({
      recorder: log.identity,
      params: log.params,
      thread: log.thread,
      entries: log.entries,
    })
    const lines = text.trimEnd().split('\n')
    const join = (parts: string[]) => `${parts.join('\n')}\n`

    const tampered = [...lines]
    tampered[3] = tampered[3]!.replace(/"lamport":(\d+)/, (_m, n) => `"lamport":${Number(n) + 1}`)
    await expect(replayTrace(join(tampered))).rejects.toMatchObject({ code: 'TRACE_INVALID', line: 4 })

    const reordered = [...lines]
    ;[reordered[2], reordered[3]] = [reordered[3]!, reordered[2]!]
    await expect(replayTrace(join(reordered))).rejects.toMatchObject({ code: 'TRACE_INVALID', line: 3 })

    await expect(replayTrace(join(lines.slice(0, -1)))).rejects.toThrow(/truncated/)
    await expect(replayTrace(join([...lines.slice(0, 4), lines[lines.length - 1]!]))).rejects.toMatchObject({
      code: 'TRACE_INVALID',
    })

    const forgedEnd = [...lines]
    forgedEnd[forgedEnd.length - 1] = forgedEnd[forgedEnd.length - 1]!.replace(
      /"stateHash":"[0-9a-f]{4}/,
      '"stateHash":"0000',
    )
    await expect(replayTrace(join(forgedEnd))).rejects.toThrow(/state hash/)

    await expect(replayTrace('')).rejects.toMatchObject({ code: 'TRACE_INVALID', line: 1 })
    await expect(replayTrace('not json\n')).rejects.toMatchObject({ code: 'TRACE_INVALID', line: 1 })
  })
})
