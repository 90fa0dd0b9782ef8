/** Assertions shared by the credentials tests. */
import { expect } from '@jest/globals';
import { AgentError } from '../../src/errors.js';

/** Distinctive text stored in secrets that must never show up in an error. */
export const LEAK = 'Zq9-UNIQUE-SECRET-do-not-leak-7f3a';

/** Everything an error carries that could end up in a log: messages, stacks, JSON forms, along the cause chain. */
export function errorText(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 10; depth++) {
    if (!(e instanceof Error)) {
      parts.push(String(e));
      break;
    }
    parts.push(e.message, e.stack ?? '', JSON.stringify(e));
    e = e.cause;
  }
  return parts.join('\n');
}

/** Await a promise that must reject with an AgentError, and return the error. */
export async function rejection(promise: Promise<unknown>): Promise<AgentError> {
  const err = await promise.then(
    () => new Error('expected a rejection, got a value'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}
