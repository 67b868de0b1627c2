/** A real nats-server (Debian's) on a random loopback port, for the tests of the NATS bridge. */
import { type ChildProcess, spawn } from 'node:child_process'

export interface NatsServer {
  /** `nats://127.0.0.1:<port>` */
  url: string
  stop(): Promise<void>
}

/** Starts nats-server on 127.0.0.1 and `port` (one it picks by default); resolves once it listens. */
export function startNatsServer(port = -1, timeoutMs = 10_000): Promise<NatsServer> {
  const child: ChildProcess = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  return new Promise((resolve, reject) => {
    let log = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`nats-server did not listen within ${timeoutMs} ms:\n${log}`))
    }, timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString()
      const match = /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(log)
      if (!match) return
      clearTimeout(timer)
      child.stderr!.removeAllListeners('data')
      child.stderr!.resume()
      resolve({
        url: `nats://127.0.0.1:${match[1]}`,
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done()
            child.once('exit', () => done())
            child.kill('SIGTERM')
          }),
      })
    })
  })
}
