/**
 * `npm run test:e2e`: the browser end-to-end tests (vitest project `e2e`). As root, where
 * `unshare` exists, they run inside a private network namespace holding only `lo` (DESIGN.md:
 * browser↔browser WebRTC is reliable there and no stray traffic can leave); otherwise on the host's
 * loopback, with a notice.
 *
 * First, still on the host's network (it needs the npm registry or npm's cache), it packs the
 * packages and installs them into a fresh Node project and a fresh Vite app for `install.e2e.ts`
 * (e2e/support/install.ts); their sizes go to test-results/install-sizes.json.
 */
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { missing } from '../test-support/prerequisites.ts'
import { prepareInstall } from './support/install.ts'

const ROOT = join(import.meta.dirname, '..')
const vitest = [
  process.execPath,
  join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'),
  'run',
  '--project',
  'e2e',
  '--outputFile.json=test-results/vitest-e2e.json',
  ...process.argv.slice(2),
]
const installDir = mkdtempSync(join(tmpdir(), 'can-swarm-install-'))
const sizes = prepareInstall(installDir, (line) => console.log(`[e2e] install: ${line}`))
mkdirSync(join(ROOT, 'test-results'), { recursive: true })
copyFileSync(join(installDir, 'sizes.json'), join(ROOT, 'test-results', 'install-sizes.json'))
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`
console.log(
  `[e2e] install: tarballs ${Object.entries(sizes.tarballs)
    .map(([name, bytes]) => `${name} ${mb(bytes)}`)
    .join(
      ', ',
    )}; installed ${mb(sizes.nodeAppInstalled)} (node app), ${mb(sizes.viteAppInstalled)} (vite app); ` +
    `page bundle ${mb(sizes.viteBundle)}, its JavaScript ${mb(sizes.viteBundleJsGzip)} gzipped`,
)
const env = { ...process.env, CAN_SWARM_E2E: '1', CAN_SWARM_INSTALL_DIR: installDir }

let result: ReturnType<typeof spawnSync>
if (process.env.CAN_SWARM_E2E_NETNS !== '0' && missing('netns') === undefined) {
  console.log('[e2e] running inside a private network namespace (unshare -n, only lo)')
  const quoted = vitest.map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(' ')
  result = spawnSync('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec ${quoted}`], {
    cwd: ROOT,
    env,
    stdio: 'inherit',
  })
} else {
  console.log(
    '[e2e] NOTICE: no private network namespace (needs root, unshare and ip): running on the host loopback',
  )
  result = spawnSync(vitest[0]!, vitest.slice(1), { cwd: ROOT, env, stdio: 'inherit' })
}
rmSync(installDir, { recursive: true, force: true })
process.exit(result.status ?? 1)
