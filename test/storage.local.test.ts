import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAgentError } from '../src/errors.js';
import { makeLocalSink, makeLocalStorage } from '../src/storage/local.js';

const UUID = '44d9e703-b8cf-40a8-a138-3cc110319b0d';
const CSV = 'first_name,Zoë\r\ncity,"Zürich, CH"\r\nnote,日本語 ✓ 🎉\r\n';

let root: string;
const readOnly: string[] = [];
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'storage-local-'));
});
afterAll(async () => {
  for (const dir of readOnly) await chmod(dir, 0o700);
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
const fresh = () => join(root, `case-${++counter}`);
const mode = async (path: string) => (await stat(path)).mode & 0o777;

/** Every file under dir, relative, sorted. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

async function expectStorageError(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isAgentError(err, 'STORAGE_ERROR')).toBe(true);
  return err as Error;
}

describe('makeLocalSink', () => {
  it('writes dir/<connection uuid>/report_<n>.csv and resolves to its absolute path', async () => {
    const dir = fresh();
    const sink = makeLocalSink(dir);
    expect(await sink.put(UUID, 1, CSV)).toBe(join(dir, UUID, 'report_1.csv'));
    expect(await sink.put(UUID, 2, 'a,b\r\n')).toBe(join(dir, UUID, 'report_2.csv'));
    expect(await readFile(join(dir, UUID, 'report_1.csv'), 'utf8')).toBe(CSV);
    expect(await readFile(join(dir, UUID, 'report_2.csv'), 'utf8')).toBe('a,b\r\n');
    expect(await listFiles(dir)).toEqual([`${UUID}/report_1.csv`, `${UUID}/report_2.csv`]);
  });

  it('creates files 0600 and the folders it makes 0700', async () => {
    const dir = join(fresh(), 'out');
    const file = await makeLocalSink(dir).put(UUID, 1, CSV);
    expect(await mode(file)).toBe(0o600);
    expect(await mode(join(dir, UUID))).toBe(0o700);
    expect(await mode(dir)).toBe(0o700);
  });

  it('replaces a report by rename: a reader of the old file still sees it whole, and no temp file remains', async () => {
    const dir = fresh();
    const sink = makeLocalSink(dir);
    const file = await sink.put(UUID, 1, 'old,report\r\n'.repeat(1000));
    const reader = await open(file, 'r');
    try {
      await sink.put(UUID, 1, CSV);
      // An in-place rewrite would truncate the file the reader has open.
      expect(await reader.readFile('utf8')).toBe('old,report\r\n'.repeat(1000));
    } finally {
      await reader.close();
    }
    expect(await readFile(file, 'utf8')).toBe(CSV);
    expect(await listFiles(dir)).toEqual([`${UUID}/report_1.csv`]);
  });

  it('keeps one whole version when the same report is written concurrently', async () => {
    const dir = fresh();
    const sink = makeLocalSink(dir);
    const versions = ['a', 'b', 'c', 'd'].map((c) => `${c},${c.repeat(200_000)}\r\n`);
    await Promise.all(versions.map((v) => sink.put(UUID, 1, v)));
    expect(versions).toContain(await readFile(join(dir, UUID, 'report_1.csv'), 'utf8'));
    expect(await listFiles(dir)).toEqual([`${UUID}/report_1.csv`]);
  });

  it('fails with STORAGE_ERROR, without the content, and leaves no temp file when the write fails', async () => {
    const dir = fresh();
    // A folder where the report should go makes the final rename fail.
    await mkdir(join(dir, UUID, 'report_1.csv'), { recursive: true });
    const err = await expectStorageError(makeLocalSink(dir).put(UUID, 1, 'secret-subject@example.com'));
    expect(err.message).toContain(join(dir, UUID, 'report_1.csv'));
    expect(err.message).not.toContain('secret-subject');
    expect(err.cause).toBeDefined();
    expect(await listFiles(dir)).toEqual([]);
  });

  it.each([['..'], ['../escape'], ['a/b'], ['.'], [''], ['a\\b'], ['a..b'], ['x'.repeat(129)], ['nul\0byte'], ['é']])(
    'rejects the connection uuid %j and writes nothing',
    async (bad) => {
      const outer = fresh();
      await mkdir(outer);
      await expectStorageError(makeLocalSink(join(outer, 'inner')).put(bad, 1, CSV));
      // Nothing created, neither in the sink's folder nor next to it.
      expect(await readdir(outer)).toEqual([]);
    },
  );

  it.each([[0], [-1], [1.5], [Number.NaN]])('rejects the report number %p', async (n) => {
    await expectStorageError(makeLocalSink(fresh()).put(UUID, n, CSV));
  });
});

describe('makeLocalStorage', () => {
  it('lays reports out as <directory>/<prefix>/<job id>/<connection uuid>/report_<n>.csv', async () => {
    const dir = fresh();
    const storage = makeLocalStorage({ directory: dir, prefix: '/reports/eu/' });
    expect(storage.description).toBe(join(dir, 'reports', 'eu'));
    const where = await storage.forJob('job_42.a-b').put(UUID, 3, CSV);
    expect(where).toBe(join(dir, 'reports', 'eu', 'job_42.a-b', UUID, 'report_3.csv'));
    expect(await readFile(where, 'utf8')).toBe(CSV);
    expect(await mode(join(dir, 'reports', 'eu', 'job_42.a-b'))).toBe(0o700);
  });

  it('without a prefix puts job folders directly in the directory', async () => {
    const dir = fresh();
    const storage = makeLocalStorage({ directory: dir });
    expect(storage.description).toBe(dir);
    expect(await storage.forJob('j1').put(UUID, 1, CSV)).toBe(join(dir, 'j1', UUID, 'report_1.csv'));
  });

  it.each([['..'], ['../../etc'], ['a/b'], ['.'], [''], ['x'.repeat(129)]])('rejects the job id %j', (bad) => {
    const storage = makeLocalStorage({ directory: fresh() });
    let caught: unknown;
    try {
      storage.forJob(bad);
    } catch (err) {
      caught = err;
    }
    expect(isAgentError(caught, 'STORAGE_ERROR')).toBe(true);
  });

  it.each([['../up'], ['a/../b'], ['a//b']])('rejects the prefix %j with CONFIG_INVALID', (prefix) => {
    expect(() => makeLocalStorage({ directory: fresh(), prefix })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });

  it('check() creates a missing directory (0700) and leaves no probe behind', async () => {
    const dir = join(fresh(), 'new', 'reports');
    await makeLocalStorage({ directory: dir }).check();
    expect(await mode(dir)).toBe(0o700);
    expect(await readdir(dir)).toEqual([]);
  });

  it('check() and put() fail with STORAGE_ERROR when the directory is read-only', async () => {
    let dir = fresh();
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o500);
    readOnly.push(dir);
    const writable = await writeFile(join(dir, 'x'), 'x').then(
      () => true,
      () => false,
    );
    if (writable) {
      // Running as root ignores the mode: use a path under a regular file, where mkdir must fail.
      const file = join(fresh() + '.file');
      await writeFile(file, 'not a folder');
      dir = join(file, 'reports');
    }
    const storage = makeLocalStorage({ directory: dir });
    const err = await expectStorageError(storage.check());
    expect(err.message).toContain(dir);
    expect(err.message).toMatch(/E(ACCES|NOTDIR|PERM)/);
    await expectStorageError(storage.forJob('j1').put(UUID, 1, CSV));
  });

  it('check() fails with STORAGE_ERROR when the directory is a regular file', async () => {
    const file = fresh();
    await writeFile(file, 'not a folder');
    await expectStorageError(makeLocalStorage({ directory: file }).check());
  });
});
