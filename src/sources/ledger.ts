/**
 * The durable half of "exactly once per request": which platform requests have had their outcome
 * written back, and a short claim so that one replica at a time writes one request back. Which
 * requests became jobs needs no record of its own: a request's job ids are derived from it
 * ({@link sourceJobId}), and the queue accepts an id once.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { RequestType } from '../config/types.js';

/** Written-back markers and write-back claims. */
export interface SourceLedger {
  /** True once the request's outcome (or its "needs attention" note) was accepted by the platform. */
  isDone(source: string, requestId: string): Promise<boolean>;
  /** Record, durably, that the platform accepted the request's outcome. */
  markDone(source: string, requestId: string): Promise<void>;
  /** Take the write-back of a request for `leaseMs`; false when another poller holds it. */
  claim(source: string, requestId: string, leaseMs: number): Promise<boolean>;
  /** Give a claim back early (the write-back failed and will be retried). */
  release(source: string, requestId: string): Promise<void>;
}

const SAFE = /^[A-Za-z0-9_-]+$/;
const digest = (...parts: string[]): string => createHash('sha256').update(parts.join('\u0000')).digest('hex');

/**
 * The job id of one job of a platform request: readable (`<source>.<request id>.<type>`) when the
 * parts are plain words and it fits the queue's 128-character rule, else `src.<sha-256>`. The same
 * request and type always give the same id, so the queue runs it at most once.
 */
export function sourceJobId(source: string, requestId: string, type: RequestType): string {
  const readable = `${source}.${requestId}.${type}`;
  if (SAFE.test(source) && SAFE.test(requestId) && readable.length <= 128) return readable;
  return `src.${digest(source, requestId, type).slice(0, 48)}`;
}

/** The embedded ledger: one marker file per written-back request under `<dataDir>/sources/`; claims in memory (one process). */
export function makeFileLedger(dataDir: string): SourceLedger {
  const dir = join(dataDir, 'sources');
  const fileOf = (source: string, requestId: string) => join(dir, `${digest(source, requestId)}.done`);
  const claims = new Map<string, number>();
  const key = (source: string, requestId: string) => `${source}\u0000${requestId}`;
  return {
    async isDone(source, requestId) {
      return stat(fileOf(source, requestId)).then(() => true, () => false);
    },
    async markDone(source, requestId) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const file = fileOf(source, requestId);
      const temp = `${file}.${process.pid}.tmp`;
      const handle = await open(temp, 'w', 0o600);
      try {
        await handle.writeFile(JSON.stringify({ source, done_at: new Date().toISOString() }));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
      const folder = await open(dir, 'r');
      try {
        await folder.sync();
      } finally {
        await folder.close();
      }
    },
    async claim(source, requestId, leaseMs) {
      const k = key(source, requestId);
      const until = claims.get(k);
      if (until !== undefined && until > Date.now()) return false;
      claims.set(k, Date.now() + leaseMs);
      return true;
    },
    async release(source, requestId) {
      claims.delete(key(source, requestId));
    },
  };
}

/** The Redis ledger, shared by every replica: `<prefix>:done:<digest>` markers, `<prefix>:claim:<digest>` claims (SET NX PX). */
export function makeRedisLedger(redis: Redis, prefix: string): SourceLedger {
  const done = (source: string, requestId: string) => `${prefix}:done:${digest(source, requestId)}`;
  const claimKey = (source: string, requestId: string) => `${prefix}:claim:${digest(source, requestId)}`;
  return {
    isDone: async (source, requestId) => (await redis.exists(done(source, requestId))) === 1,
    markDone: async (source, requestId) => {
      await redis.set(done(source, requestId), new Date().toISOString());
    },
    claim: async (source, requestId, leaseMs) => (await redis.set(claimKey(source, requestId), String(process.pid), 'PX', leaseMs, 'NX')) === 'OK',
    release: async (source, requestId) => {
      await redis.del(claimKey(source, requestId));
    },
  };
}

/**
 * The ledger a config uses, with its close: in Redis (shared by every replica) when the config has a
 * `redis_url`, else marker files in the data directory. ioredis is loaded only for the former.
 */
export async function openLedger(config: { readonly redis_url?: string; readonly agent: { readonly queue_name: string } }, dataDir: string): Promise<{ ledger: SourceLedger; close(): void }> {
  if (!config.redis_url) return { ledger: makeFileLedger(dataDir), close: () => undefined };
  const { Redis: RedisClient } = await import('ioredis');
  const redis = new RedisClient(config.redis_url, { maxRetriesPerRequest: 2 });
  return { ledger: makeRedisLedger(redis, `${config.agent.queue_name}:sources`), close: () => redis.disconnect() };
}
