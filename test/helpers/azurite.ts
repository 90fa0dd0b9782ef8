/**
 * A real Azurite Blob service for tests: node_modules/.bin/azurite-blob in a child process, in memory, on
 * 127.0.0.1 with a port the OS picks, working in a temp folder, API-version check skipped, loose mode, no telemetry.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The account Azurite serves, and its well-known key (public, documented by Microsoft). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const AZURITE_BLOB = fileURLToPath(new URL('../../node_modules/.bin/azurite-blob', import.meta.url));
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

/** A running Azurite Blob service. */
export interface TestAzurite {
  /** The account's Blob endpoint, e.g. http://127.0.0.1:40123/devstoreaccount1 */
  readonly blobEndpoint: string;
  /** A connection string with the well-known key. */
  readonly connectionString: string;
  /** A connection string for this endpoint with another account key (auth failures). */
  connectionStringWithKey(key: string): string;
  /** A connection string carrying a SAS token instead of a key (no AccountName in it). */
  connectionStringWithSas(sas: string): string;
  /** Stop Azurite (SIGTERM, then SIGKILL after 5 s) and remove its folder. */
  close(): Promise<void>;
}

/** Start Azurite's Blob service; resolves once it listens. */
export async function startAzurite(): Promise<TestAzurite> {
  const location = await mkdtemp(join(tmpdir(), 'azurite-'));
  const child = spawn(
    process.execPath,
    [
      AZURITE_BLOB,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      '0',
      '--inMemoryPersistence', // Azurite refuses --location with it; its working folder is `location` (cwd)
      '--silent',
      '--loose',
      '--skipApiVersionCheck',
      '--disableTelemetry',
    ],
    { cwd: location, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`Azurite did not start within ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const m = /successfully listens on https?:\/\/[^\s:]+:(\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    function fail(err: Error) {
      clearTimeout(timer);
      reject(err);
    }
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`Azurite exited (${signal ?? code}) before listening:\n${output}`)));
  }).catch(async (err: unknown) => {
    child.kill('SIGKILL');
    await exited;
    await rm(location, { recursive: true, force: true });
    throw err;
  });

  const blobEndpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const withKey = (key: string) =>
    `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${key};BlobEndpoint=${blobEndpoint};`;
  let closed: Promise<void> | undefined;
  return {
    blobEndpoint,
    connectionString: withKey(AZURITE_KEY),
    connectionStringWithKey: withKey,
    connectionStringWithSas: (sas) => `BlobEndpoint=${blobEndpoint};SharedAccessSignature=${sas}`,
    close() {
      closed ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
          await exited;
          clearTimeout(timer);
        }
        child.stdout.destroy();
        child.stderr.destroy();
        await rm(location, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}
