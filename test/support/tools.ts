/**
 * Tests that need a tool (thin-provisioning-tools, lvm2, promtool, root, loop devices…) skip with a message on a
 * developer's machine that lacks it, and fail under CI (`CI` set): .ci/run installs every tool, so a missing
 * one there is a broken CI, not a reason to pass with less tested.
 */
export function requireTool<T>(value: T, missing: boolean, why: string): T {
  if (missing && process.env.CI && process.env.CI !== '0' && process.env.CI !== 'false') {
    throw new Error(`CI: ${why} — .ci/run must install it; tests are not skipped under CI`);
  }
  return value;
}

/** The availability flag itself: false (skip) on a developer machine, an error under CI. */
export function tool(available: boolean, why: string): boolean {
  return requireTool(available, !available, why);
}

/** A skip reason (null: run): under CI a reason is an error. */
export function skipReason(reason: string | null): string | null {
  return requireTool(reason, reason !== null, reason ?? '');
}
