import { describe, it, expect } from '@jest/globals';
import { AgentError, ErrorCodes, asAgentError, isAgentError, makeConfigError } from '../src/errors.js';

describe('errors', () => {
  it('every code equals its key (codes are a stable contract)', () => {
    for (const [key, code] of Object.entries(ErrorCodes)) expect(code).toBe(key);
  });

  it('serialises as {code, message} and keeps its cause', () => {
    const cause = new Error('low level');
    const e = new AgentError(ErrorCodes.HTTP_STATUS, 'target answered 500', { cause, status: 500 });
    expect(JSON.parse(JSON.stringify(e))).toEqual({ code: 'HTTP_STATUS', message: 'target answered 500' });
    expect(e.cause).toBe(cause);
    expect(e.status).toBe(500);
    expect(isAgentError(e, ErrorCodes.HTTP_STATUS)).toBe(true);
    expect(isAgentError(e, ErrorCodes.JOB_TIMEOUT)).toBe(false);
    expect(isAgentError(cause)).toBe(false);
  });

  it('a config error lists every problem, one per line', () => {
    const e = makeConfigError([
      { path: '/connections/0/queries/test', message: 'an APIProxy connection needs at least one test query' },
      { path: '/job_timeout_seconds', message: 'must be an integer' },
    ]);
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toBe(
      'config is invalid (2 problems):\n  /connections/0/queries/test: an APIProxy connection needs at least one test query\n  /job_timeout_seconds: must be an integer',
    );
    expect(e.problems).toHaveLength(2);
  });
});

describe('asAgentError', () => {
  it('keeps an AgentError and wraps anything else as INTERNAL without its message', () => {
    const own = new AgentError(ErrorCodes.JOB_TIMEOUT, 'late');
    expect(asAgentError(own)).toBe(own);
    const foreign = new TypeError('cannot read peter@initech.com');
    const wrapped = asAgentError(foreign);
    expect(wrapped.code).toBe('INTERNAL');
    expect(wrapped.message).toBe('unexpected TypeError; run with LOGLEVEL=DEBUG for details');
    expect(wrapped.cause).toBe(foreign);
  });
});
