/**
 * One shape for everything dminspect finds wrong or worth knowing, from any layer: the format readers report
 * what they saw (`Observation`: kind, severity, message, evidence), the audit adds what to do about it (`Finding`:
 * + remedy). Kinds are strings owned by the layer that raises them (`lvm/scan.ts`, `pool-source/lvm.ts`,
 * `audit/`); the audit's union of them is `audit/findings.ts`.
 */
export type Severity = 'critical' | 'warning' | 'info';

export interface Observation<K extends string = string> {
  kind: K;
  severity: Severity;
  /** One line, for people. */
  message: string;
  /** The facts behind it (files, ids, numbers), for machines. */
  evidence: Record<string, unknown>;
}

export interface Finding<K extends string = string> extends Observation<K> {
  /** What to do about it (may be empty for a plain observation). */
  remedy: string;
}

export const SEVERITY_ORDER: Readonly<Record<Severity, number>> = { critical: 0, warning: 1, info: 2 };

/** Most severe first; a stable sort (the order of equal severities is kept). */
export function sortFindings<F extends { severity: Severity }>(findings: F[]): F[] {
  return findings.sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]);
}
