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
