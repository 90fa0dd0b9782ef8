/**
 * One owner per data directory: `serve` takes `<data dir>/.lock` before it resumes any job, so a
 * second instance on the same directory (another port, or the same port by mistake) cannot run the
 * journal's jobs a second time. A lock whose holder is gone (killed, even with -9) is taken over.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { AgentError, ErrorCodes } from '../errors.js';

interface Holder {
  pid: number;
  host: string;
  started_at: string;
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
  const me: Holder = { pid: process.pid, host: hostname(), started_at: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeFileSync(fd, JSON.stringify(me));
      closeSync(fd);
      return () => {
        try {
          const holder = JSON.parse(readFileSync(file, 'utf8')) as Holder;
          if (holder.pid === me.pid && holder.host === me.host) rmSync(file, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: Holder | undefined;
    try {
      holder = JSON.parse(readFileSync(file, 'utf8')) as Holder;
    } catch {
      holder = undefined; // half-written by a holder that died at once: stale
    }
    if (holder && (holder.host !== me.host || alive(holder.pid))) {
      throw new AgentError(
        ErrorCodes.DATA_DIR_LOCKED,
        `the data directory ${dataDir} is in use by dsr-agent pid ${holder.pid} on ${holder.host} (since ${holder.started_at}): ` +
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
