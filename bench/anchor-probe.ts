/**
 * Reading a running anchor process from outside, for benchmarks and the soak: its resident set
 * (`/proc/<pid>/status`) and its inspector (the anchor is started with `--inspect=127.0.0.1:0`,
 * which prints a `ws://127.0.0.1:<port>/<id>` URL to its stderr), spoken to over a WebSocket with
 * the DevTools protocol.
 *
 * @example
 * ```ts
 * const inspector = await AnchorInspector.open(anchor.logs)
 * const heap = await inspector.evaluate('process.memoryUsage().heapUsed')
 * inspector.close()
 * ```
 */
import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'

/** Environment for a child that should listen with its inspector on loopback, on a free port. */
export function withInspector<T>(start: () => T): T {
  const saved = process.env.NODE_OPTIONS
  process.env.NODE_OPTIONS = `${saved ?? ''} --inspect=127.0.0.1:0`.trim()
  try {
    return start()
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS
    else process.env.NODE_OPTIONS = saved
  }
}

/** A DevTools protocol session with an anchor's inspector. */
export class AnchorInspector {
  readonly #socket: WebSocket
  readonly #timeoutMs: number
  #next = 0

  private constructor(socket: WebSocket, timeoutMs: number) {
    this.#socket = socket
    this.#timeoutMs = timeoutMs
  }

  /** Connects to the inspector whose URL the anchor printed in `logs`. */
  static async open(logs: readonly string[], timeoutMs = 120_000): Promise<AnchorInspector> {
    const url = logs.map((line) => /ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.exec(line)?.[0]).find(Boolean)
    if (!url) throw new Error('the anchor did not print an inspector URL')
    const socket = new WebSocket(url)
    await new Promise((resolve, reject) => {
      socket.onopen = resolve
      socket.onerror = () => reject(new Error(`cannot reach the anchor's inspector at ${url}`))
    })
    return new AnchorInspector(socket, timeoutMs)
  }

  /** Calls a DevTools protocol method; rejects after the session's timeout. */
  call(
    method: string,
    params: Record<string, unknown> = {},
  ): Promise<{ result?: { result?: { value?: unknown } } }> {
    return new Promise((resolve, reject) => {
      const id = ++this.#next
      const socket = this.#socket
      const timer = setTimeout(() => {
        socket.removeEventListener('message', onMessage)
        reject(new Error(`inspector ${method} timed out`))
      }, this.#timeoutMs)
      function onMessage(event: MessageEvent) {
        const reply = JSON.parse(String(event.data)) as { id?: number }
        if (reply.id !== id) return
        clearTimeout(timer)
        socket.removeEventListener('message', onMessage)
        resolve(reply as never)
      }
      socket.addEventListener('message', onMessage)
      socket.send(JSON.stringify({ id, method, params }))
    })
  }

  /** Evaluates `expression` in the anchor's main context; its value (JSON-serializable). */
  async evaluate(expression: string): Promise<unknown> {
    const reply = await this.call('Runtime.evaluate', {
      expression,
      includeCommandLineAPI: true,
      returnByValue: true,
    })
    return reply.result?.result?.value
  }

  /**
   * Writes a heap snapshot of the anchor to `path` (the chunks the inspector streams, in order;
   * open it in Chrome DevTools' Memory tab or diff two with `node bench/heap-diff.ts`).
   */
  async heapSnapshot(path: string): Promise<void> {
    const out = createWriteStream(path)
    const onChunk = (event: MessageEvent) => {
      const message = JSON.parse(String(event.data)) as { method?: string; params?: { chunk?: string } }
      if (message.method === 'HeapProfiler.addHeapSnapshotChunk') out.write(message.params?.chunk ?? '')
    }
    this.#socket.addEventListener('message', onChunk)
    try {
      await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false })
    } finally {
      this.#socket.removeEventListener('message', onChunk)
      await new Promise((resolve) => out.end(resolve))
    }
  }

  close(): void {
    this.#socket.close()
  }
}

/** A process's resident set in MB (`VmRSS`), NaN when it has none (it has exited). */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? Number.NaN)
  return kb / 1024
}
