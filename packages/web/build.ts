/**
 * Builds the web app into packages/web/dist (`npm run build:web`). With `--if-stale` it builds
 * only when dist is missing or older than a source it is made from (the app, the peer package,
 * the vite config, the lock file), so `npm start` stays fast once built.
 */
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { build } from 'vite'

const HERE = import.meta.dirname
const ROOT = join(HERE, '..', '..')
const DIST_INDEX = join(HERE, 'dist', 'index.html')
const SOURCES = [
  join(HERE, 'src'),
  join(HERE, 'index.html'),
  join(HERE, 'embed.html'),
  join(HERE, 'vite.config.ts'),
  join(ROOT, 'packages', 'peer', 'src'),
  join(ROOT, 'package-lock.json'),
]

function newestMtimeMs(path: string): number {
  if (!existsSync(path)) return 0
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  let newest = stat.mtimeMs
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtimeMs(join(path, entry)))
  return newest
}

/** True when dist is missing or older than one of its sources. */
export function isStale(): boolean {
  if (!existsSync(DIST_INDEX)) return true
  const built = statSync(DIST_INDEX).mtimeMs
  return SOURCES.some((source) => newestMtimeMs(source) > built)
}

/** Builds the app (quietly unless `verbose`). */
export async function buildWeb(options: { verbose?: boolean } = {}): Promise<void> {
  await build({ configFile: join(HERE, 'vite.config.ts'), logLevel: options.verbose ? 'info' : 'warn' })
}

if (import.meta.main) {
  const ifStale = process.argv.includes('--if-stale')
  if (ifStale && !isStale()) {
    console.log('web app: packages/web/dist is up to date')
  } else {
    console.log(ifStale ? 'web app: building packages/web/dist (missing or stale)…' : 'web app: building…')
    await buildWeb({ verbose: !ifStale })
    console.log('web app: built into packages/web/dist')
  }
}
