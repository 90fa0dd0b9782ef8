/** Validation of the names that become report paths and keys, shared by every storage provider. */
import { AgentError, ErrorCodes } from '../errors.js';
import { ID_PATTERN } from '../names.js';

const SEGMENT = ID_PATTERN;

/** True when `value` is safe as one path segment: 1–128 of [A-Za-z0-9._-], not "." and without "..". */
export function isSafeSegment(value: unknown): value is string {
  return typeof value === 'string' && SEGMENT.test(value);
}

/**
 * Assert that a job id or connection uuid can be used as one path segment, so that no value can
 * reach outside its folder or key prefix. Throws AgentError(STORAGE_ERROR); the value is not echoed.
 */
export function assertSafeSegment(value: unknown, what: 'job id' | 'connection uuid'): asserts value is string {
  if (!isSafeSegment(value)) {
    throw new AgentError(
      ErrorCodes.STORAGE_ERROR,
      `The ${what} cannot be used in a report path: it must be 1-128 characters of A-Z, a-z, 0-9, ".", "_" or "-", ` +
        `and must not be "." or contain "..". Use a ${what} of that form.`,
    );
  }
}

/** Assert that `n` is a report number (an integer ≥ 1). Throws AgentError(STORAGE_ERROR). */
export function assertReportNumber(n: unknown): asserts n is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
    throw new AgentError(
      ErrorCodes.STORAGE_ERROR,
      'The report number must be an integer of 1 or more (report_1.csv is the first report).',
    );
  }
}

/** The file name of report `n`: `report_<n>.csv`. */
export function reportFileName(n: number): string {
  assertReportNumber(n);
  return `report_${n}.csv`;
}

/**
 * Normalise a storage prefix: leading and trailing "/" are dropped, and every "/"-separated segment
 * must pass {@link isSafeSegment}. Returns "" for no prefix, or undefined when the prefix is invalid.
 */
export function normalizePrefix(prefix: string | undefined): string | undefined {
  if (prefix === undefined) return '';
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '';
  const segments = trimmed.split('/');
  return segments.every(isSafeSegment) ? segments.join('/') : undefined;
}

/** What a valid prefix looks like, for error messages. */
export const PREFIX_RULE =
  'use "/"-separated segments of A-Z, a-z, 0-9, ".", "_" or "-" (each 1-128 characters, none "." or containing "..")';

/** {@link normalizePrefix}, throwing AgentError(CONFIG_INVALID) when the prefix is invalid. */
export function assertPrefix(prefix: string | undefined): string {
  const normalized = normalizePrefix(prefix);
  if (normalized === undefined) {
    throw new AgentError(ErrorCodes.CONFIG_INVALID, `The storage prefix is invalid: ${PREFIX_RULE}.`);
  }
  return normalized;
}

/** Check the `prefix` option shared by every storage provider. */
export function checkPrefix(prefix: unknown, add: (field: string, message: string) => void): void {
  if (prefix === undefined) return;
  if (typeof prefix !== 'string' || prefix.trim() === '') add('prefix', 'must be a non-empty string; set it or remove it');
  else if (normalizePrefix(prefix) === undefined) add('prefix', `is invalid: ${PREFIX_RULE}`);
}

