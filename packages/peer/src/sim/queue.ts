/** A min-heap of timed events; ties run in insertion order, so a run is a pure function of its seed. */
export interface Timed {
  atMs: number
  seq: number
}

export class EventQueue<T extends Timed> {
  #heap: T[] = []
  #seq = 0

  get size(): number {
    return this.#heap.length
  }

  nextSeq(): number {
    this.#seq += 1
    return this.#seq
  }

  push(event: T): void {
    const heap = this.#heap
    heap.push(event)
    let index = heap.length - 1
    while (index > 0) {
      const parent = (index - 1) >> 1
      if (!before(heap[index]!, heap[parent]!)) break
      ;[heap[index], heap[parent]] = [heap[parent]!, heap[index]!]
      index = parent
    }
  }

  peek(): T | undefined {
    return this.#heap[0]
  }

  pop(): T | undefined {
    const heap = this.#heap
    const top = heap[0]
    const last = heap.pop()
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last
      let index = 0
      for (;;) {
        const left = index * 2 + 1
        const right = left + 1
        let smallest = index
        if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left
        if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right
        if (smallest === index) break
        ;[heap[index], heap[smallest]] = [heap[smallest]!, heap[index]!]
        index = smallest
      }
    }
    return top
  }
}

function before(a: Timed, b: Timed): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq)
}
