import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../test-support/prerequisites.ts'
import { summarize } from './test.ts'

const report = (files: Record<string, string[]>) => {
  const statuses = Object.values(files).flat()
  return {
    numPassedTests: statuses.filter((s) => s === 'passed').length,
    numFailedTests: statuses.filter((s) => s === 'failed').length,
    numPendingTests: statuses.filter((s) => s === 'skipped').length,
    numTodoTests: 0,
    testResults: Object.entries(files).map(([name, list]) => ({
      name: join(REPO_ROOT, name),
      assertionResults: list.map((status) => ({ status })),
    })),
  }
}

describe('the closing report of npm test', () => {
  it('names each missing prerequisite, its reason, the tests it skipped and the setup command', () => {
    const lines = summarize(
      [
        report({
          'packages/node/test/etcd.test.ts': ['skipped', 'skipped', 'skipped'],
          'packages/node/test/log.test.ts': ['passed', 'failed', 'skipped'],
          'packages/web/test/storage.test.ts': ['skipped'],
        }),
      ],
      [
        {
          prerequisite: 'etcd',
          reason: 'etcd not found at /usr/bin/etcd',
          where: 'packages/node/test/etcd.test.ts',
        },
        {
          prerequisite: 'mount-namespace',
          reason: 'no mount namespace',
          where: 'packages/node/test/log.test.ts',
        },
        { prerequisite: 'chromium', reason: 'no Chromium', where: 'the chromium test project' },
      ],
    )
    expect(lines[0]).toBe('ran 7 tests in 3 files: 1 passed, 1 failed, 5 skipped')
    expect(lines[1]).toContain('`npm run setup`')
    expect(lines).toContain('  - etcd: etcd not found at /usr/bin/etcd')
    expect(lines).toContain('    3 tests in packages/node/test/etcd.test.ts')
    expect(lines).toContain('    1 tests in packages/node/test/log.test.ts')
    expect(lines).toContain('    the chromium test project')
    expect(lines.at(-1)).toBe(
      'skipped by design (runtime-specific or opt-in): packages/web/test/storage.test.ts (1)',
    )
  })

  it('says so when nothing was skipped for a prerequisite', () => {
    const lines = summarize([report({ 'a.test.ts': ['passed'] })], [])
    expect(lines).toEqual([
      'ran 1 tests in 1 files: 1 passed, 0 failed, 0 skipped',
      'nothing was skipped for a missing prerequisite',
    ])
  })
})
