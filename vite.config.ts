import { defineConfig } from 'vitest/config'

/**
 * One config for the web app build (packages/web, once it lands) and the test projects.
 * The `node` project runs every package's tests in Node 24; a Chromium project for the
 * isomorphic peer tests joins it with the libp2p peer issue.
 */
export default defineConfig({
  test: {
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    projects: [
      {
        test: {
          name: 'node',
          include: ['packages/*/test/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
        },
      },
    ],
  },
})
