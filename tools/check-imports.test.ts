import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { checkImports, importSpecifiers, packageOf } from './check-imports.ts'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** A throwaway repository: `files` maps paths to contents (objects are written as JSON). */
function repo(files: Record<string, string | object>): string {
  const root = mkdtempSync(join(tmpdir(), 'can-swarm-imports-'))
  dirs.push(root)
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), typeof content === 'string' ? content : JSON.stringify(content))
  }
  return root
}

const base = {
  'package.json': { name: 'root', devDependencies: { vitest: '*', '@x/peer': '*' } },
  'packages/peer/package.json': {
    name: '@x/peer',
    dependencies: { zod: '*', libp2p: '*' },
    imports: { '#net/transports': './src/net/transports.ts' },
  },
  'packages/node/package.json': {
    name: '@x/node',
    dependencies: { '@x/peer': '*' },
    devDependencies: { etcd3: '*' },
  },
  'packages/peer/src/core/types.ts': "import { z } from 'zod'\nexport const t = z.string()\n",
  'packages/peer/src/index.ts':
    "export * from './core/types.ts'\nimport { createLibp2p } from 'libp2p'\nimport '#net/transports'\n",
  'packages/node/src/main.ts': "import { t } from '@x/peer'\nimport { readFileSync } from 'node:fs'\n",
  'packages/node/test/main.test.ts': "import { it } from 'vitest'\nimport { Etcd3 } from 'etcd3'\n",
  'bench/run.ts': "import { t } from '@x/peer'\n",
}

describe('the import walls', () => {
  it('pass on a repository that keeps them', () => {
    expect(checkImports(repo(base))).toEqual([])
  })

  it('pass on this repository', () => {
    expect(checkImports(join(import.meta.dirname, '..'))).toEqual([])
  })

  it('catch a reach-in from a package and from the tooling into another package', () => {
    const violations = checkImports(
      repo({
        ...base,
        'packages/node/src/main.ts': "import { t } from '../../peer/src/core/types.ts'\n",
        'bench/run.ts': "import { t } from '../packages/peer/src/index.ts'\n",
      }),
    )
    expect(violations.map((v) => [v.file, v.rule])).toEqual([
      ['packages/node/src/main.ts', 'reach-in'],
      ['bench/run.ts', 'reach-in'],
    ])
    expect(violations[0]!.message).toContain("'@x/peer'")
  })

  it('catch an undeclared dependency, a dev dependency in shipped code, and an unknown # import', () => {
    const violations = checkImports(
      repo({
        ...base,
        'packages/node/src/main.ts':
          "import { Etcd3 } from 'etcd3'\nimport pino from 'pino'\nconst x = await IMPORT('#nope')\n".replace(
            'IMPORT',
            'import',
          ),
      }),
    )
    expect(violations.map((v) => [v.specifier, v.rule])).toEqual([
      ['etcd3', 'undeclared'],
      ['pino', 'undeclared'],
      ['#nope', 'unknown-subpath-import'],
    ])
  })

  it('catch test code imported by shipped code, an impure core and a bare builtin', () => {
    const violations = checkImports(
      repo({
        ...base,
        'packages/peer/test/helpers.ts': 'export const h = 1\n',
        'packages/peer/src/index.ts': "import { h } from '../test/helpers.ts'\nimport fs from 'fs'\n",
        'packages/peer/src/core/types.ts':
          "import { readFile } from 'node:fs/promises'\nimport { createLibp2p } from 'libp2p'\nimport { x } from '../index.ts'\n",
      }),
    )
    expect(violations.map((v) => [v.file, v.specifier, v.rule]).sort()).toEqual(
      [
        ['packages/peer/src/index.ts', '../test/helpers.ts', 'test-code-in-src'],
        ['packages/peer/src/index.ts', 'fs', 'builtin-prefix'],
        ['packages/peer/src/core/types.ts', 'node:fs/promises', 'impure-core'],
        ['packages/peer/src/core/types.ts', 'libp2p', 'impure-core'],
        ['packages/peer/src/core/types.ts', '../index.ts', 'impure-core'],
      ].sort(),
    )
  })
})

describe('import cycles', () => {
  it('are found among value imports and ignored through type-only ones', () => {
    const violations = checkImports(
      repo({
        ...base,
        'packages/peer/src/core/a.ts': "import { b } from './b.ts'\nexport const a = 1\n",
        'packages/peer/src/core/b.ts': "import { c } from './c.ts'\nexport const b = 1\n",
        'packages/peer/src/core/c.ts': "import { a } from './a.ts'\nexport const c = 1\n",
        'packages/peer/src/core/d.ts': "import type { E } from './e.ts'\nexport type D = 1\n",
        'packages/peer/src/core/e.ts': "import type { D } from './d.ts'\nexport type E = 1\n",
      }),
    )
    expect(violations.map((v) => [v.rule, v.specifier])).toEqual([
      ['cycle', 'packages/peer/src/core/a.ts → packages/peer/src/core/b.ts → packages/peer/src/core/c.ts'],
    ])
  })
})

describe('import specifiers', () => {
  it('finds static, type-only, re-export, side-effect and dynamic imports, multi-line included', () => {
    const source = [
      "import { a } from 'one'",
      "import type { B } from '@scope/two/sub'",
      'import {',
      '  c,',
      '  d,',
      "} from './three.ts'",
      "export * from './four.ts'",
      "import 'five'",
      "const six = await IMPORT('six')".replace('IMPORT', 'import'),
      "/** import { no } from 'in-a-comment' */",
      "// import { no } from 'in-a-line-comment'",
      "const text = 'import from nowhere'",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: source text holding a template literal
      'const code = `await import(${JSON.stringify(path)})`',
    ].join('\n')
    expect(importSpecifiers(source).sort()).toEqual(
      ['one', '@scope/two/sub', './three.ts', './four.ts', 'five', 'six'].sort(),
    )
  })

  it('names the package of a specifier', () => {
    expect(packageOf('@libp2p/crypto/keys')).toBe('@libp2p/crypto')
    expect(packageOf('multiformats/cid')).toBe('multiformats')
    expect(packageOf('zod')).toBe('zod')
  })
})
