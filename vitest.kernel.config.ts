import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/kernel/**/*.test.ts'],
    // above every guest's own timeout, twice (runInGuest boots a fresh guest once when the engine hung; timeoutSec
    // ≤ 1200 s + vmrun's backstop; longer guests set guestTimeoutMs()), so a guest that overruns is stopped by vmrun
    // and the failure shows the guest's output and console, not a bare vitest timeout
    testTimeout: 2_800_000,
    hookTimeout: 2_800_000,
    fileParallelism: false,
  },
});
