/**
 * One owner per data directory: `serve` takes `<data dir>/.lock` before it resumes any job, so a
 * second instance on the same directory (another port, or the same port by mistake) cannot run the
 * journal's jobs a second time. A lock whose holder is gone (killed, even with -9) is taken over —
 * also when the holder had this very pid on this host: in a container, `node` is pid 1 in every life,
 * so each lock carries a random nonce and only the locks this process took are its own. A holder on
 * another host (a volume moved to a new node, a pod with a new name) cannot be asked whether it runs:
 * the holder renews the lock's mtime every {@link LOCK_RENEW_MS}, and a lock from another host not
 * renewed for {@link LOCK_STALE_MS} is taken over.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { AgentError, ErrorCodes } from '../errors.js';

interface Holder {
  pid: number;
  host: string;
  started_at: string;
  /** Random per lock taken: tells this process's lock from one a previous life with the same pid left. */
  nonce?: string;
}

/** How often a holder renews its lock's mtime. */
export const LOCK_RENEW_MS = 10 * 1000; // 10 s
/** A lock from another host not renewed for this long is stale. */
export const LOCK_STALE_MS = 3 * LOCK_RENEW_MS; // 30 s

/** Nonces of the locks this process holds. */
const held = new Set<string>();

/** True when the lock's holder may still run: another live pid here, our own lock, or another host that renewed it lately. */
function inUse(holder: Holder, host: string, renewedAgoMs: number): boolean {
  if (holder.host !== host) return renewedAgoMs < LOCK_STALE_MS;
  if (holder.pid === process.pid) return holder.nonce !== undefined && held.has(holder.nonce);
  return alive(holder.pid);
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
};

/** Take the data directory's lock; returns its release. Throws DATA_DIR_LOCKED naming the holder. */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, '.lock');
  const me: Holder = { pid: process.pid, host: hostname(), started_at: new Date().toISOString(), nonce: randomUUID() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeFileSync(fd, JSON.stringify(me));
      closeSync(fd);
      held.add(me.nonce!);
      const renew = setInterval(() => {
        try {
          const now = new Date();
          utimesSync(file, now, now);
        } catch {
          // the directory went away: the next start sees no lock
        }
      }, LOCK_RENEW_MS);
      renew.unref();
      return () => {
        clearInterval(renew);
        held.delete(me.nonce!);
        try {
          const holder = JSON.parse(readFileSync(file, 'utf8')) as Holder;
          if (holder.nonce === me.nonce) rmSync(file, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: Holder | undefined;
    let renewedAgoMs = 0;
    try {
      renewedAgoMs = Date.now() - statSync(file).mtimeMs;
      holder = JSON.parse(readFileSync(file, 'utf8')) as Holder;
    } catch {
      holder = undefined; // half-written by a holder that died at once, or just released: stale
    }
    if (holder && inUse(holder, me.host, renewedAgoMs)) {
      const remote = holder.host !== me.host ? `; a lock from another host is taken over once it is not renewed for ${LOCK_STALE_MS / 1000} s (renewed ${Math.round(renewedAgoMs / 1000)} s ago)` : '';
      throw new AgentError(
        ErrorCodes.DATA_DIR_LOCKED,
        `the data directory ${dataDir} is in use by dsr-agent pid ${holder.pid} on ${holder.host} (since ${holder.started_at})${remote}: ` +
          'stop that instance, or give this one its own DSR_AGENT_DATA_DIR (with redis_url, replicas share the queue, not the directory)',
      );
    }
    // Stale: its holder is gone. Replace it atomically, then try again to take it.
    const stale = `${file}.stale-${process.pid}`;
    try {
      renameSync(file, stale);
      rmSync(stale, { force: true });
    } catch {
      // another instance took it over first: the next attempt sees its lock
    }
  }
  throw new AgentError(ErrorCodes.DATA_DIR_LOCKED, `could not take the lock of the data directory ${dataDir}; another instance is starting on it`);
}
