import { defineConfig } from 'vitest/config';

// Fault injection against real processes: one file at a time, generous bounds.
export default defineConfig({
  test: {
    include: ['test/fault/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
