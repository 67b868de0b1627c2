/** The anchor's HTTP server with nothing behind it but what a test gives (on a free loopback port). */
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import { type HttpOptions, startHttp } from '../../src/anchor/http.ts'

export async function startTestHttp(
  options: Partial<HttpOptions>,
): Promise<{ port: number; close: () => Promise<void> }> {
  const { server } = await startHttp({
    host: '127.0.0.1',
    port: 0,
    registry: new Registry(),
    webRoot: undefined,
    notReady: () => [],
    status: () => ({}),
    ...options,
  })
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}
