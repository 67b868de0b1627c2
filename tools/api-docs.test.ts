import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { missingDefaults } from './api-docs.ts'

describe('the API reference', () => {
  it('names every optional …Options property without @default (and only those)', () => {
    const model = {
      kind: 'Package',
      name: '@x/peer',
      members: [
        {
          kind: 'EntryPoint',
          name: '',
          members: [
            {
              kind: 'Interface',
              name: 'PeerOptions',
              members: [
                {
                  kind: 'PropertySignature',
                  name: 'roles',
                  isOptional: true,
                  docComment: '/** The roles. @default none */',
                },
                { kind: 'PropertySignature', name: 'bus', isOptional: true, docComment: '/** The bus. */' },
                { kind: 'PropertySignature', name: 'tuning', isOptional: true },
                {
                  kind: 'PropertySignature',
                  name: 'params',
                  isOptional: false,
                  docComment: '/** Required. */',
                },
              ],
            },
            {
              kind: 'Interface',
              name: 'Peer',
              members: [{ kind: 'PropertySignature', name: 'sync', isOptional: true }],
            },
          ],
        },
      ],
    }
    expect(missingDefaults(model)).toEqual(['PeerOptions.bus', 'PeerOptions.tuning'])
  })

  it('is generated from the packages, and every optional option of theirs says its default', () => {
    const result = spawnSync(process.execPath, [join(import.meta.dirname, 'api-docs.ts'), '--check'], {
      cwd: join(import.meta.dirname, '..'),
      encoding: 'utf8',
      timeout: 240_000,
    })
    expect(result.stderr).not.toContain('without @default')
    expect(result.status).toBe(0)
    expect(result.stdout).toContain('says its default')
  }, 240_000)
})
