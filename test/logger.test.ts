import { describe, it, expect } from '@jest/globals';
import { makeLogger, parseLogLevel } from '../src/logger.js';

function capture(level: string) {
  const chunks: string[] = [];
  const logger = makeLogger({ level, destination: { write: (s: string) => void chunks.push(s) } });
  return { logger, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

describe('logger', () => {
  it.each([
    ['DEBUG', 'debug'], ['debug', 'debug'], ['INFO', 'info'], ['Warning', 'warn'], ['WARN', 'warn'], ['ERROR', 'error'], ['critical', 'fatal'],
  ])('LOGLEVEL %s → pino %s', (name, level) => {
    expect(parseLogLevel(name)).toBe(level);
  });

  it('falls back to INFO with a warning on an unknown LOGLEVEL', () => {
    const { logger, lines } = capture('LOUD');
    expect(logger.level).toBe('info');
    expect(lines()[0]).toMatchObject({ level: 'warn', msg: expect.stringContaining('unknown LOGLEVEL') });
  });

  it('warns at startup that DEBUG exposes personal data and credentials', () => {
    const { lines } = capture('DEBUG');
    expect(lines()[0]).toMatchObject({ level: 'warn', msg: expect.stringMatching(/personal data.*credentials/) });
    expect(capture('INFO').lines()).toEqual([]);
  });

  it('redacts identifiers, bodies and headers below DEBUG, and secrets at every level', () => {
    const info = capture('INFO');
    info.logger.info({ identifiers: { email: 'peter@initech.com' }, body: '[{"ssn":"1"}]', secret: { credentials: 'c2VjcmV0' } }, 'x');
    const infoLine = JSON.stringify(info.lines());
    expect(infoLine).not.toContain('peter@initech.com');
    expect(infoLine).not.toContain('ssn');
    expect(infoLine).not.toContain('c2VjcmV0');

    const debug = capture('DEBUG');
    debug.logger.debug({ identifiers: { email: 'peter@initech.com' }, secret: { credentials: 'c2VjcmV0' }, headers: { authorization: 'Basic c2VjcmV0' } }, 'x');
    const debugLine = JSON.stringify(debug.lines());
    expect(debugLine).toContain('peter@initech.com');
    expect(debugLine).not.toContain('c2VjcmV0');
  });
});

describe('redaction at every depth (issue 10)', () => {
  const SECRET = 'c2VjcmV0LXZhbHVl';
  it.each(['secret', 'credentials', 'authorization', 'Authorization', 'x-api-key', 'X-Api-Key', 'cookie', 'set-cookie', 'client_secret', 'access_token', 'refresh_token', 'token', 'password', 'passphrase', 'private_key', 'api_key'])(
    'redacts %s at the top, nested three levels deep, inside arrays and in child bindings, at every level',
    (key) => {
      for (const level of ['INFO', 'DEBUG']) {
        const c = capture(level);
        c.logger.warn({ [key]: SECRET, a: { b: { c: { [key]: SECRET } } }, list: [{ deep: [{ [key]: SECRET }] }] }, 'x');
        c.logger.child({ ctx: { [key]: SECRET } }).warn('y');
        const text = JSON.stringify(c.lines());
        expect([key, level, text.includes(SECRET)]).toEqual([key, level, false]);
        expect(text).toContain('[redacted]');
      }
    },
  );

  it('redacts personal data at every depth below DEBUG, and shows it at DEBUG', () => {
    const info = capture('INFO');
    info.logger.info({ job: { request: { identifiers: { email: 'peter@initech.com' } } }, err: { response: { body: 'ssn 123' } } }, 'x');
    expect(JSON.stringify(info.lines())).not.toMatch(/peter@initech\.com|ssn 123/);
    const debug = capture('DEBUG');
    debug.logger.debug({ job: { request: { identifiers: { email: 'peter@initech.com' } } } }, 'x');
    expect(JSON.stringify(debug.lines())).toContain('peter@initech.com');
  });
});
