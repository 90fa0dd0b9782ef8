import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeSecretsSource } from '../src/credentials/index.js';
import { makeJsonFileSource } from '../src/credentials/json-file.js';
import { errorText, LEAK, rejection } from './helpers/credentials.js';

describe('JSONFile', () => {
  let dir: string;
  let file: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dsr-credentials-'));
    await mkdir(join(dir, 'conf'));
    file = join(dir, 'conf', 'secrets.json');
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const write = (content: unknown): Promise<void> =>
    writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));

  it('resolves a relative filename against baseDir and picks up edits on the next get', async () => {
    await write({ 'my-api': { credentials: 'first', port: 8080, tls: false } });
    const source = makeSecretsSource({ provider: 'JSONFile', options: { filename: 'conf/secrets.json' } }, dir);
    expect({ ...(await source.get('my-api')) }).toEqual({ credentials: 'first', port: '8080', tls: 'false' });
    await write({ 'my-api': { credentials: 'rotated' } });
    expect({ ...(await source.get('my-api')) }).toEqual({ credentials: 'rotated' });
  });

  it('accepts an absolute filename whatever baseDir is', async () => {
    await write({ abs: { credentials: 'x' } });
    const source = makeSecretsSource({ provider: 'JSONFile', options: { filename: file } }, '/somewhere/else');
    expect((await source.get('abs')).credentials).toBe('x');
  });

  it('maps an absent key (even one named like an Object method) to SECRET_NOT_FOUND naming the file', async () => {
    await write({ 'my-api': { credentials: LEAK } });
    const source = makeJsonFileSource({ path: file });
    for (const location of ['other-api', 'constructor', '__proto__']) {
      const err = await rejection(source.get(location));
      expect(err.code).toBe('SECRET_NOT_FOUND');
      expect(err.message).toContain(location);
      expect(err.message).toContain(file);
      expect(errorText(err)).not.toContain(LEAK);
    }
  });

  it.each([
    ['a string', JSON.stringify(LEAK), 'it is a string'],
    ['an array', [LEAK], 'it is an array'],
    ['a nested value', { credentials: { user: LEAK } }, 'the value of key "credentials" is an object'],
  ])('rejects an entry that is %s with SECRET_INVALID, without quoting it', async (_kind, entry, reason) => {
    await write(`{"bad": ${typeof entry === 'string' ? entry : JSON.stringify(entry)}}`);
    const err = await rejection(makeJsonFileSource({ path: file }).get('bad'));
    expect(err.code).toBe('SECRET_INVALID');
    expect(err.message).toContain('JSONFile: the secret at bad must be a JSON object of strings');
    expect(err.message).toContain(reason);
    expect(errorText(err)).not.toContain('Zq9');
  });

  it('maps a file that is not JSON to SECRET_PROVIDER_ERROR without quoting it', async () => {
    await write(`{"my-api": {"credentials": ${LEAK}}}`);
    const err = await rejection(makeJsonFileSource({ path: file }).get('my-api'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain('is not valid JSON');
    expect(errorText(err)).not.toContain('Zq9');
  });

  it('maps a file holding an array to SECRET_PROVIDER_ERROR', async () => {
    await write([{ credentials: LEAK }]);
    const err = await rejection(makeJsonFileSource({ path: file }).get('0'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain('holds an array');
    expect(errorText(err)).not.toContain(LEAK);
  });

  it('maps a missing file to SECRET_PROVIDER_ERROR telling which option to fix', async () => {
    const missing = join(dir, 'nope.json');
    const err = await rejection(makeJsonFileSource({ path: missing }).get('my-api'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain(missing);
    expect(err.message).toContain('options.filename');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('maps a permission error to SECRET_ACCESS_DENIED', async () => {
    // The tests may run as root, who reads any file: the permission error comes from the injected reader.
    const readFile = async (path: string): Promise<string> => {
      throw Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' });
    };
    const err = await rejection(makeJsonFileSource({ path: file, readFile }).get('my-api'));
    expect(err.code).toBe('SECRET_ACCESS_DENIED');
    expect(err.message).toContain(file);
    expect(err.message).toContain('readable');
  });

  it('requires options.filename', () => {
    expect(() => makeSecretsSource({ provider: 'JSONFile' }, dir)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('options.filename') }),
    );
    expect(() => makeSecretsSource({ provider: 'JSONFile', options: { filename: 42 } }, dir)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });
});

describe('makeSecretsSource', () => {
  it('rejects an unknown provider with CONFIG_INVALID listing the supported ones', () => {
    const cfg = { provider: 'HashiCorpVault' } as unknown as Parameters<typeof makeSecretsSource>[0];
    expect(() => makeSecretsSource(cfg, '/')).toThrow(
      expect.objectContaining({
        code: 'CONFIG_INVALID',
        message: expect.stringContaining('AWSSecretsManager, AWSSSMParameterStore, JSONFile'),
      }),
    );
  });

  it('rejects a region that is not a string', () => {
    expect(() => makeSecretsSource({ provider: 'AWSSecretsManager', options: { region: 1 } }, '/')).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('options.region') }),
    );
  });
});
