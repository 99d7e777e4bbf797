import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/kernel/**/*.test.ts'],
    // above every guest's own timeout (runInGuest timeoutSec ≤ 1200 s + vmrun's backstop), so a guest that overruns is
    // stopped by vmrun and the failure shows the guest's output and console, not a bare vitest timeout
    testTimeout: 1_500_000,
    hookTimeout: 1_500_000,
    fileParallelism: false,
  },
});
