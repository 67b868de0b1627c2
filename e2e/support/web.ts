/** Makes sure packages/web/dist is built and fresh before a browser test or benchmark opens it. */
import { buildWeb, isStale } from '@can-swarm/web/build'

/** Builds the web app when dist is missing or older than its sources. */
export async function ensureWebBuilt(): Promise<void> {
  if (isStale()) await buildWeb()
}
