/**
 * The eviction index of undecided threads (agent/undecided.ts) against a model that scans every
 * thread: the same victim after any sequence of adds (with re-ranks), deletes and touches.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { NEVER_EVICTED, NO_NEED_YET, UndecidedIndex } from '../src/agent/undecided.ts'

/** Every thread with its rank and requester; recency as the sequence number of the last event. */
class Model {
  threads = new Map<string, { requester: string; rank: number; seq: number }>()
  /** Per rank and requester: the last event touching one of its threads there. */
  requesterSeq = new Map<string, number>()
  seq = 0
  #mark(rank: number, requester: string) {
    this.seq += 1
    this.requesterSeq.set(`${rank}|${requester}`, this.seq)
  }
  add(thread: string, requester: string, rank: number) {
    this.delete(thread)
    this.seq += 1
    this.threads.set(thread, { requester, rank, seq: this.seq })
    this.#mark(rank, requester)
  }
  delete(thread: string) {
    const entry = this.threads.get(thread)
    if (!entry) return
    this.threads.delete(thread)
    this.#mark(entry.rank, entry.requester)
  }
  touch(thread: string) {
    const entry = this.threads.get(thread)
    if (!entry) return
    this.seq += 1
    entry.seq = this.seq
    this.#mark(entry.rank, entry.requester)
  }
  victim(): string | undefined {
    const candidates = [...this.threads].filter(([, entry]) => entry.rank !== NEVER_EVICTED)
    if (candidates.length === 0) return undefined
    const lowest = Math.min(...candidates.map(([, entry]) => entry.rank))
    const inRank = candidates.filter(([, entry]) => entry.rank === lowest)
    const count = (requester: string) => inRank.filter(([, entry]) => entry.requester === requester).length
    const most = Math.max(...inRank.map(([, entry]) => count(entry.requester)))
    const requesters = [...new Set(inRank.map(([, entry]) => entry.requester))].filter(
      (r) => count(r) === most,
    )
    requesters.sort(
      (a, b) => this.requesterSeq.get(`${lowest}|${a}`)! - this.requesterSeq.get(`${lowest}|${b}`)!,
    )
    const mine = inRank.filter(([, entry]) => entry.requester === requesters[0])
    mine.sort((a, b) => a[1].seq - b[1].seq)
    return mine[0]![0]
  }
}

const thread = fc.constantFrom('t0', 't1', 't2', 't3', 't4', 't5', 't6', 't7', 't8', 't9')
const requester = fc.constantFrom('', 'alice', 'bob', 'carol', 'mallory')
const rank = fc.constantFrom(NO_NEED_YET, 0, 1, 2, NEVER_EVICTED)
const operation = fc.oneof(
  fc.record({ op: fc.constant('add' as const), thread, requester, rank }),
  fc.record({ op: fc.constant('delete' as const), thread }),
  fc.record({ op: fc.constant('touch' as const), thread }),
)

describe('UndecidedIndex', () => {
  it('names the victim a full scan would, after any adds, re-ranks, deletes and touches', () => {
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 80 }), (operations) => {
        const index = new UndecidedIndex()
        const model = new Model()
        for (const operation of operations) {
          if (operation.op === 'add') {
            index.add(operation.thread, operation.requester, operation.rank)
            model.add(operation.thread, operation.requester, operation.rank)
          } else if (operation.op === 'delete') {
            expect(index.delete(operation.thread)).toBe(model.threads.has(operation.thread))
            model.delete(operation.thread)
          } else {
            index.touch(operation.thread)
            model.touch(operation.thread)
          }
          expect(index.size).toBe(model.threads.size)
          expect(index.victim()).toBe(model.victim())
        }
      }),
      { numRuns: 500 },
    )
  })
})
