/** Turning a provider's raw value into a Secret, with errors that never quote the value. */
import { AgentError, ErrorCodes } from '../errors.js';
import type { Secret } from './source.js';

/** The shape a secret must have, shown in every SECRET_INVALID message. */
const EXPECTED = 'must be a JSON object of strings, e.g. {"credentials": "..."}';

/** "an array", "a string", "null"… — a JSON value's kind, never its content. */
export function describeJsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return typeof value === 'string' ? 'a string' : `a ${typeof value}`;
}

/**
 * " (line 2 column 7)" or " (at character 12)" from a JSON.parse error, else "". Only the numbers are
 * kept: V8's messages quote the input text, which may be a secret.
 */
export function jsonErrorPosition(err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  const lineColumn = /\(line (\d+) column (\d+)\)/.exec(message);
  if (lineColumn) return ` (line ${lineColumn[1]} column ${lineColumn[2]})`;
  const position = /at position (\d+)/.exec(message);
  return position ? ` (at character ${position[1]})` : '';
}

/** AgentError(SECRET_INVALID) for the secret at `location`; `reason` must not contain any part of the value. */
export function makeInvalidSecretError(provider: string, location: string, reason: string): AgentError {
  return new AgentError(
    ErrorCodes.SECRET_INVALID,
    `${provider}: the secret at ${location} ${EXPECTED}, but ${reason}. Store it in that form.`,
  );
}

/**
 * Assert that `value` is a JSON object whose values are strings, numbers or booleans; return it as a
 * frozen, null-prototype Secret with every value a string. Throws AgentError(SECRET_INVALID) naming the
 * location, the provider and at most a key, never a value.
 */
export function assertSecret(value: unknown, provider: string, location: string): Secret {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw makeInvalidSecretError(provider, location, `it is ${describeJsonKind(value)}`);
  }
  const secret: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [key, item] of Object.entries(value)) {
    if (typeof item === 'string') secret[key] = item;
    else if (typeof item === 'number' || typeof item === 'boolean') secret[key] = String(item);
    else throw makeInvalidSecretError(provider, location, `the value of key ${JSON.stringify(key)} is ${describeJsonKind(item)}`);
  }
  return Object.freeze(secret);
}

/** Parse a secret's text (JSON) and {@link assertSecret} it. Throws AgentError(SECRET_INVALID), with no cause. */
export function parseSecret(text: string, provider: string, location: string): Secret {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // No cause: the SyntaxError's message quotes the text.
    throw makeInvalidSecretError(provider, location, `it is not valid JSON${jsonErrorPosition(err)}`);
  }
  return assertSecret(value, provider, location);
}
