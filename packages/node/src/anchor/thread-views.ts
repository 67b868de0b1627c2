/**
 * `GET /api/threads/<thread>` without re-encoding the thread per request: each thread's envelopes
 * are kept as DAG-JSON texts, versioned by its replica and the replica's size (a replica only ever
 * gains envelopes, so a new size is new envelopes): a repeated request encodes nothing, a request
 * after news encodes only the new envelopes, and no request looks at any other thread. The texts
 * are bounded by `maxChars` in all, the least recently asked threads dropped first.
 */

import type { ThreadReplica } from '@can-swarm/peer'
import { envelopeToJson } from '@can-swarm/peer'

interface View {
  replica: ThreadReplica
  size: number
  lines: string[]
  /** Envelope id → its DAG-JSON text. */
  texts: Map<string, string>
  chars: number
}

/** Default {@link ThreadViews} bound: 33 554 432 characters (32 MiB of ASCII). */
export const DEFAULT_THREAD_VIEW_CHARS = 32 * 1024 * 1024

export class ThreadViews {
  readonly maxChars: number
  readonly #replica: (thread: string) => ThreadReplica | undefined
  /** Least recently asked first. */
  readonly #views = new Map<string, View>()
  #chars = 0
  #encoded = 0

  constructor(replica: (thread: string) => ThreadReplica | undefined, options: { maxChars?: number } = {}) {
    this.#replica = replica
    this.maxChars = options.maxChars ?? DEFAULT_THREAD_VIEW_CHARS
  }

  /** Envelopes encoded so far (the views' work). */
  get encoded(): number {
    return this.#encoded
  }

  /** Characters held. */
  get chars(): number {
    return this.#chars
  }

  /** The thread's envelopes, one DAG-JSON text each, in log order; undefined for an unknown thread. */
  lines(thread: string): string[] | undefined {
    const replica = this.#replica(thread)
    const held = this.#views.get(thread)
    if (held) {
      this.#views.delete(thread)
      this.#chars -= held.chars
    }
    if (!replica) return undefined
    let view = held?.replica === replica ? held : undefined
    if (!view || view.size !== replica.size) {
      const texts = new Map<string, string>()
      const lines: string[] = []
      let chars = 0
      for (const env of replica.envelopes()) {
        let text = view?.texts.get(env.id)
        if (text === undefined) {
          text = envelopeToJson(env)
          this.#encoded += 1
        }
        texts.set(env.id, text)
        lines.push(text)
        chars += text.length
      }
      view = { replica, size: replica.size, lines, texts, chars }
    }
    this.#views.set(thread, view)
    this.#chars += view.chars
    for (const [oldest, kept] of this.#views) {
      if (this.#chars <= this.maxChars || oldest === thread) break
      this.#views.delete(oldest)
      this.#chars -= kept.chars
    }
    return view.lines
  }
}
