import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfigText } from '../src/config/load.js';
import { AgentError } from '../src/errors.js';

const fixtures = new URL('./fixtures/config/', import.meta.url);

/** A valid config whose only connection is named `name`, so each test can tell sources apart. */
async function configNamed(name: string): Promise<string> {
  const c = JSON.parse(await readFile(new URL('realistic.json', fixtures), 'utf8'));
  c.connections[0].name = name;
  return JSON.stringify(c, null, 2);
}

async function rejection(p: Promise<unknown>): Promise<AgentError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('expected a rejection');
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dsr-config-'));
  await mkdir(join(dir, 'sub', 'deeper'), { recursive: true });
  await writeFile(join(dir, 'cli.json'), await configNamed('from-cli'));
  await writeFile(join(dir, 'sub', 'deeper', 'env.json'), await configNamed('from-env-file'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadConfig sources', () => {
  it('prefers the explicit path over both env vars', async () => {
    const loaded = await loadConfig({
      path: join(dir, 'cli.json'),
      env: { DATAGRAIL_AGENT_CONFIG_FILE: join(dir, 'sub', 'deeper', 'env.json'), DATAGRAIL_AGENT_CONFIG: await configNamed('from-env-json') },
      cwd: '/',
    });
    expect(loaded.config.connections[0].name).toBe('from-cli');
    expect(loaded.source).toBe(join(dir, 'cli.json'));
    expect(loaded.baseDir).toBe(dir);
  });

  it('uses DATAGRAIL_AGENT_CONFIG_FILE before DATAGRAIL_AGENT_CONFIG', async () => {
    const loaded = await loadConfig({
      env: { DATAGRAIL_AGENT_CONFIG_FILE: join(dir, 'sub', 'deeper', 'env.json'), DATAGRAIL_AGENT_CONFIG: await configNamed('from-env-json') },
      cwd: '/',
    });
    expect(loaded.config.connections[0].name).toBe('from-env-file');
    expect(loaded.baseDir).toBe(join(dir, 'sub', 'deeper'));
  });

  it('uses DATAGRAIL_AGENT_CONFIG (the JSON itself) last, with cwd as baseDir', async () => {
    const loaded = await loadConfig({ env: { DATAGRAIL_AGENT_CONFIG: await configNamed('from-env-json') }, cwd: dir });
    expect(loaded.config.connections[0].name).toBe('from-env-json');
    expect(loaded.baseDir).toBe(dir);
    expect(loaded.source).toBe('DATAGRAIL_AGENT_CONFIG');
  });

  it('treats empty strings as not given', async () => {
    const loaded = await loadConfig({
      path: '',
      env: { DATAGRAIL_AGENT_CONFIG_FILE: '', DATAGRAIL_AGENT_CONFIG: await configNamed('from-env-json') },
      cwd: dir,
    });
    expect(loaded.config.connections[0].name).toBe('from-env-json');
  });

  it('resolves relative paths against cwd; baseDir is the file folder', async () => {
    const viaPath = await loadConfig({ path: 'deeper/env.json', env: {}, cwd: join(dir, 'sub') });
    expect(viaPath.baseDir).toBe(join(dir, 'sub', 'deeper'));
    expect(viaPath.source).toBe(join(dir, 'sub', 'deeper', 'env.json'));
    const viaEnv = await loadConfig({ env: { DATAGRAIL_AGENT_CONFIG_FILE: './sub/../cli.json' }, cwd: dir });
    expect(viaEnv.baseDir).toBe(dir);
    expect(viaEnv.config.connections[0].name).toBe('from-cli');
  });

  it('without any source: CONFIG_NOT_FOUND naming the three ways', async () => {
    const err = await rejection(loadConfig({ env: {}, cwd: dir }));
    expect(err.code).toBe('CONFIG_NOT_FOUND');
    expect(err.message).toContain('--config PATH');
    expect(err.message).toContain('DATAGRAIL_AGENT_CONFIG_FILE');
    expect(err.message).toContain('DATAGRAIL_AGENT_CONFIG ');
  });

  it('a missing file or a folder: CONFIG_NOT_FOUND naming the path and its origin', async () => {
    const missing = await rejection(loadConfig({ env: { DATAGRAIL_AGENT_CONFIG_FILE: 'nope.json' }, cwd: dir }));
    expect(missing.code).toBe('CONFIG_NOT_FOUND');
    expect(missing.message).toContain(join(dir, 'nope.json'));
    expect(missing.message).toContain('from DATAGRAIL_AGENT_CONFIG_FILE');
    expect(missing.message).toContain('does not exist');
    const folder = await rejection(loadConfig({ path: 'sub', env: {}, cwd: dir }));
    expect(folder.code).toBe('CONFIG_NOT_FOUND');
    expect(folder.message).toContain('is a folder');
  });

  it('a path that cannot be read for another reason: CONFIG_NOT_FOUND with the reason code', async () => {
    const err = await rejection(loadConfig({ path: 'cli.json/inner.json', env: {}, cwd: dir }));
    expect(err.code).toBe('CONFIG_NOT_FOUND');
    expect(err.message).toContain('cannot be read (ENOTDIR)');
  });

  it('an invalid config from a file: CONFIG_INVALID naming the file', async () => {
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ connections: [] }));
    const err = await rejection(loadConfig({ path: 'bad.json', env: {}, cwd: dir }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(join(dir, 'bad.json'));
    expect(err.problems?.map((p) => p.path)).toEqual(['/platform']);
  });

  it('accepts a UTF-8 byte order mark', async () => {
    await writeFile(join(dir, 'bom.json'), `\uFEFF${await configNamed('bom')}`);
    const loaded = await loadConfig({ path: 'bom.json', env: {}, cwd: dir });
    expect(loaded.config.connections[0].name).toBe('bom');
  });

  it('returns a frozen LoadedConfig', async () => {
    const loaded = await loadConfig({ path: 'cli.json', env: {}, cwd: dir });
    expect(Object.isFrozen(loaded)).toBe(true);
    expect(Object.isFrozen(loaded.config)).toBe(true);
  });
});

describe('CONFIG_PARSE', () => {
  const parseError = (text: string, source = 'DATAGRAIL_AGENT_CONFIG'): AgentError => {
    try {
      parseConfigText(text, source);
    } catch (err) {
      return err as AgentError;
    }
    throw new Error('expected a parse error');
  };

  it('says the line and column of the error, from a file', async () => {
    await writeFile(join(dir, 'broken.json'), '{\n  "connections": [],\n  "platform": {\n    "credentials_manager": { "provider": "JSONFile", }\n  }\n}\n');
    const err = await rejection(loadConfig({ path: 'broken.json', env: {}, cwd: dir }));
    expect(err.code).toBe('CONFIG_PARSE');
    expect(err.message).toContain(join(dir, 'broken.json'));
    expect(err.message).toContain('line 4, column 54');
  });

  it.each([
    ['{"a": }', 1, 7],
    ['{\n  "a": tru\n}', 2, 8],
    ['{\r\n"a": 1,\r\n}', 3, 1],
    ['{"a":1', 1, 7],
    ['[1 2]', 1, 4],
    ['{"a" 1}', 1, 6],
    ['{"a":1}x', 1, 8],
    ['{"a": -}', 1, 8],
    ['{"a": 01}', 1, 8],
    ['{\'a\': 1}', 1, 2],
    ['{"a": "x\\q"}', 1, 9],
    ['\n\n  "abc', 3, 3],
    ['[1,]', 1, 4],
  ])('%j → line %i, column %i', (text, line, column) => {
    const err = parseError(text);
    expect(err.code).toBe('CONFIG_PARSE');
    expect(err.message).toContain(`line ${line}, column ${column}`);
  });

  it('agrees with V8 wherever V8 gives a position', () => {
    const samples = ['{"a":1,}', '{"a":1', '[1 2]', '{"a" 1}', '{"a":1}x', '{"a": -}', '"abc', '{"a":"x\n"}'];
    for (const text of samples) {
      let v8 = '';
      try {
        JSON.parse(text);
      } catch (e) {
        v8 = (e as Error).message;
      }
      const m = /\(line (\d+) column (\d+)\)/.exec(v8);
      expect(m).not.toBeNull();
      const ours = parseError(text).message;
      if (text === '"abc') continue; // we point at the opening quote, V8 at the end
      expect(ours).toContain(`line ${m![1]}, column ${m![2]}`);
    }
  });

  it('never quotes the config text', () => {
    const secret = 'sk_live_9f8e7d6c5b4a';
    for (const text of [
      `{"headers": {"Authorization": "Bearer ${secret}" }, ${secret}}`,
      `{"a": "${secret}\n"}`,
      `{"a": ${secret}}`,
      `{"a": "${secret}`,
      `["${secret}" "${secret}"]`,
    ]) {
      const err = parseError(text);
      expect(err.code).toBe('CONFIG_PARSE');
      expect(err.message).not.toContain('sk_live');
      expect(err.message).not.toContain('Bearer');
      expect(err.cause).toBeUndefined();
    }
  });

  it('an empty config says so', () => {
    expect(parseError('  \n').message).toContain('is empty');
  });
});
