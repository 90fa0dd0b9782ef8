/** An in-process S3 server (s3rver) for tests, on port 0 with a temp directory. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

/** s3rver checks request signatures against these fixed keys. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** A running s3rver. */
export interface TestS3 {
  /** e.g. http://127.0.0.1:40123 */
  readonly endpoint: string;
  /** A new S3Client for this server (us-east-1, s3rver's keys, path-style, checksums only when required); destroyed by close(). */
  client(): S3Client;
  /** Destroy the clients made by client(), stop the server, remove its directory. */
  close(): Promise<void>;
}

/** Start s3rver on 127.0.0.1, port 0, silent, with the given buckets (3–63 characters each). */
export async function startS3(buckets: readonly string[] = []): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), 's3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    vhostBuckets: false,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  let address;
  try {
    address = await server.run();
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${address.port}`;
  const clients: S3Client[] = [];
  return {
    endpoint,
    client() {
      const client = new S3Client({
        endpoint,
        region: 'us-east-1',
        credentials: S3RVER_CREDENTIALS,
        forcePathStyle: true,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients.splice(0)) client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
