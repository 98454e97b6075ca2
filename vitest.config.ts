import { defineConfig } from 'vitest/config';

// `pnpm vitest` from the root runs every package's tests as one run.
export default defineConfig({
  test: { projects: ['packages/*', 'apps/*'] },
});
