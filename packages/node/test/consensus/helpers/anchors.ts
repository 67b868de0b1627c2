/**
 * Test anchors as child processes (fixtures/anchor.ts): spawned with a config, their JSON lines
 * collected as they arrive, killed and awaited on demand.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ANCHOR = fileURLToPath(new URL('../fixtures/anchor.ts', import.meta.url))

/** One acknowledged decision as an anchor printed it. */
export interface Ack {
  need: string
  outcome: 'decided' | 'existing' | 'conflict'
  proposal: string
  decider: string
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

/** A running anchor process. */
export class AnchorProcess {
  readonly acks: Ack[] = []
  readonly lines: unknown[] = []
  readonly exited: Promise<number | null>
  stderr = ''
  done: { acks: number; retryMismatches: number } | undefined
  readonly #child: ChildProcess

  constructor(config: Record<string, unknown>) {
    const child = spawn(process.execPath, [ANCHOR, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    this.#child = child
    live.add(child)
    child.stdin!.on('error', () => undefined) // EPIPE once the anchor is gone
    let buffer = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk
      let newline = buffer.indexOf('\n')
      while (newline >= 0) {
        const line = JSON.parse(buffer.slice(0, newline)) as { ack?: Ack; done?: boolean }
        buffer = buffer.slice(newline + 1)
        this.lines.push(line)
        if (line.ack) this.acks.push(line.ack)
        if (line.done) this.done = line as never
        newline = buffer.indexOf('\n')
      }
    })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-4_000)
    })
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        live.delete(child)
        resolve(code)
      }),
    )
  }

  /** Asks an anchor started with `stopOnStdin` to stop taking new NEEDs. */
  stop(): void {
    this.#child.stdin!.end('stop\n')
  }

  /** SIGKILLs the process and waits for it to exit. */
  async kill(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    this.#child.kill('SIGKILL')
    await this.exited
  }

  /** Waits for a clean exit; throws with its stderr otherwise. */
  async finished(): Promise<void> {
    const code = await this.exited
    if (code !== 0 || this.done === undefined) {
      throw new Error(`anchor exited with ${code}: ${this.stderr}`)
    }
  }
}

/** Polls `condition` every 100 ms until it holds; throws after `timeoutMs` with `what`. */
export async function eventually(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 90_000,
) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
