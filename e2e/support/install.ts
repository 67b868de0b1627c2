/**
 * The packages as a user outside this repository gets them: `npm pack` the peer and the anchor
 * packages (each builds its `dist/` first), then install the tarballs into two fresh projects in a
 * temporary directory — no workspace links, no aliases, no TypeScript loader:
 *
 * - `node-app/`: `@can-swarm/peer` and `@can-swarm/node` (the anchor runs from there) and
 *   `worker.mjs` (e2e/install/node-app), a worker with a capability of its own;
 * - `vite-app/`: `@can-swarm/peer` and Vite, `index.html` and `main.js` (e2e/install/vite-app), a
 *   page that embeds a verifier; built with `vite build`.
 *
 * It needs the npm registry (or npm's cache, which `npm ci` filled): `npm run test:e2e` runs it
 * before it enters its private network namespace, and passes the directory to the tests in
 * `CAN_SWARM_INSTALL_DIR`. Sizes are measured on the way (`sizes.json` in the directory).
 */
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

const ROOT = join(import.meta.dirname, '..', '..')
const TEMPLATES = join(ROOT, 'e2e', 'install')

/** What {@link prepareInstall} measured, in bytes. */
export interface InstallSizes {
  /** Each packed tarball. */
  tarballs: Record<string, number>
  /** `node_modules` of the Node project (peer + anchor and their dependencies). */
  nodeAppInstalled: number
  /** `node_modules` of the Vite project (peer + Vite). */
  viteAppInstalled: number
  /** The built page: every file, and the JavaScript gzipped. */
  viteBundle: number
  viteBundleJsGzip: number
  /** Seconds each step took. */
  seconds: Record<string, number>
}

function run(command: string, args: string[], cwd: string): void {
  // The installed projects must not see this repository's source condition (.npmrc): they run dist/.
  const env = { ...process.env, NODE_OPTIONS: '', npm_config_node_options: '' }
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 600_000 })
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} (in ${cwd}) exited ${result.status}:\n${result.stdout}\n${result.stderr}`,
    )
  }
}

/** The sum of `measure(path)` over every file under `path` (or of `path` itself, a file). */
function sumOverFiles(path: string, measure: (file: string) => number): number {
  if (!statSync(path).isDirectory()) return measure(path)
  let total = 0
  for (const entry of readdirSync(path)) total += sumOverFiles(join(path, entry), measure)
  return total
}

const bytesUnder = (path: string) => sumOverFiles(path, (file) => statSync(file).size)
const gzipBytesUnder = (path: string, suffix: string) =>
  sumOverFiles(path, (file) => (file.endsWith(suffix) ? gzipSync(readFileSync(file)).length : 0))

/** The version of a package installed at the repository root (Vite for the page project). */
function rootVersion(name: string): string {
  return (
    JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }
  ).version
}

/**
 * Packs, installs and builds into `dir` (created); returns the sizes. `log` gets one line per step.
 * @throws when a step fails, with its output.
 */
export function prepareInstall(dir: string, log: (line: string) => void = () => undefined): InstallSizes {
  const seconds: Record<string, number> = {}
  const step = (name: string, work: () => void) => {
    log(`${name}…`)
    const started = performance.now()
    work()
    seconds[name] = Math.round((performance.now() - started) / 100) / 10
    log(`${name}: ${seconds[name]} s`)
  }
  const tarballs = join(dir, 'tarballs')
  mkdirSync(tarballs, { recursive: true })
  // The peer first: the anchor's build reads the peer's declarations.
  step('pack', () => {
    for (const name of ['@can-swarm/peer', '@can-swarm/node']) {
      run('npm', ['pack', '--silent', '--workspace', name, '--pack-destination', tarballs], ROOT)
    }
  })
  const tarball = (name: string) =>
    join(tarballs, readdirSync(tarballs).find((file) => file.startsWith(name))!)
  const nodeApp = join(dir, 'node-app')
  const viteApp = join(dir, 'vite-app')
  cpSync(join(TEMPLATES, 'node-app'), nodeApp, { recursive: true })
  cpSync(join(TEMPLATES, 'vite-app'), viteApp, { recursive: true })
  writeFileSync(
    join(nodeApp, 'package.json'),
    JSON.stringify({
      name: 'node-app',
      private: true,
      type: 'module',
      dependencies: {
        '@can-swarm/peer': `file:${tarball('can-swarm-peer-')}`,
        '@can-swarm/node': `file:${tarball('can-swarm-node-')}`,
      },
    }),
  )
  writeFileSync(
    join(viteApp, 'package.json'),
    JSON.stringify({
      name: 'vite-app',
      private: true,
      type: 'module',
      dependencies: { '@can-swarm/peer': `file:${tarball('can-swarm-peer-')}` },
      devDependencies: { vite: rootVersion('vite') },
    }),
  )
  const install = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error']
  step('install node-app', () => run('npm', install, nodeApp))
  step('install vite-app', () => run('npm', install, viteApp))
  step('vite build', () =>
    run(process.execPath, [join('node_modules', 'vite', 'bin', 'vite.js'), 'build'], viteApp),
  )
  const sizes: InstallSizes = {
    tarballs: Object.fromEntries(
      readdirSync(tarballs).map((file) => [file, statSync(join(tarballs, file)).size]),
    ),
    nodeAppInstalled: bytesUnder(join(nodeApp, 'node_modules')),
    viteAppInstalled: bytesUnder(join(viteApp, 'node_modules')),
    viteBundle: bytesUnder(join(viteApp, 'dist')),
    viteBundleJsGzip: gzipBytesUnder(join(viteApp, 'dist'), '.js'),
    seconds,
  }
  writeFileSync(join(dir, 'sizes.json'), `${JSON.stringify(sizes, null, 2)}\n`)
  return sizes
}
