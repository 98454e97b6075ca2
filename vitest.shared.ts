import type { ViteUserConfig } from 'vitest/config';

/**
 * Shared vitest settings: resolve workspace packages to their TypeScript sources
 * (the `@irb/source` export condition) so tests never need a prior build.
 */
export function irbTestConfig(overrides: ViteUserConfig['test'] = {}): ViteUserConfig {
  return {
    resolve: { conditions: ['@irb/source', 'module', 'node', 'import', 'default'] },
    ssr: { resolve: { conditions: ['@irb/source', 'module', 'node', 'import', 'default'] } },
    test: {
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: 60_000,
      hookTimeout: 120_000,
      ...overrides,
    },
  };
}
