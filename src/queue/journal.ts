/**
 * The embedded queue's journal: one JSON file per job, `<dir>/<id>.json`, replaced atomically
 * (temp file in the same folder, fsync, rename, fsync the folder), so after a crash every file is
 * either the old or the new record. Files are 0600 and the folder 0700: a record holds the data
 * subject's identifiers until the job is final.
 *
 * Finished jobs move (one rename) to `<dir>/finished/`, which is read on demand and never at start:
 * a restart reads only the jobs still in flight, however many finished jobs are kept. A record is
 * written final in place first, then moved, so a crash between the two leaves a final record in
 * `<dir>` that the next load moves on.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError, ErrorCodes } from '../errors.js';
import type { Logger } from '../logger.js';
import { isFinal } from './common.js';
import type { JobSubmission, JobView } from './types.js';

/** One job as journaled: its API view plus what the queue needs to run it again. */
export interface JobRecord extends JobView {
  /** How many times the job has been started. */
  attempt: number;
  /** The request, with identifiers; present only while the job is not final. */
  submission?: JobSubmission;
  /** Set while the result callback of a final job is still to be delivered (resumed after a restart). */
  callback?: 'pending';
}

/** Reads and writes job records in one folder. */
export interface Journal {
  /** The folder (created 0700 by {@link Journal.load}). */
  readonly dir: string;
  /**
   * Create the folders, remove temp files a crash left, and read the records of jobs in flight (not
   * final, or final with a pending callback). Final records found there are moved to `finished/`.
   */
  load(): Promise<JobRecord[]>;
  /** Replace the job's record atomically and durably. Throws QUEUE_UNAVAILABLE when the disk refuses. */
  write(record: JobRecord): Promise<void>;
  /** Move a final record to `finished/` (after {@link Journal.write} wrote it final). Throws QUEUE_UNAVAILABLE. */
  archive(id: string): Promise<void>;
  /** A finished job's record, or undefined when none is kept. */
  readFinished(id: string): Promise<JobRecord | undefined>;
  /** Delete finished records last written before `cutoffMs` (epoch ms); resolves with their ids. */
  purgeFinished(cutoffMs: number): Promise<string[]>;
  /** Write and remove a small probe file: resolves when the disk takes writes again. Throws QUEUE_UNAVAILABLE. */
  probe(): Promise<void>;
  /** The record's file path (of a job in flight). */
  pathOf(id: string): string;
}

/** The folder, inside the journal's, of finished jobs' records. */
export const FINISHED_DIR = 'finished';

const STATES: ReadonlySet<string> = new Set(['queued', 'running', 'succeeded', 'partial', 'failed']);

function journalError(dir: string, action: string, cause: unknown): AgentError {
  const reason = (cause as NodeJS.ErrnoException)?.code ?? (cause as Error)?.message ?? 'unknown error';
  return new AgentError(
    ErrorCodes.QUEUE_UNAVAILABLE,
    `could not ${action} the job journal in ${dir} (${reason}); check that the data directory (DSR_AGENT_DATA_DIR) is writable and not full`,
    { cause },
  );
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isRecord(value: unknown, id: string): value is JobRecord {
  const r = value as Partial<JobRecord> | null;
  return (
    typeof r === 'object' && r !== null && r.id === id && typeof r.type === 'string' &&
    typeof r.status === 'string' && STATES.has(r.status) && typeof r.created_at === 'string' &&
    typeof r.attempt === 'number' && Array.isArray(r.connections) &&
    (r.status === 'queued' || r.status === 'running' ? typeof r.submission === 'object' && r.submission !== null : true)
  );
}

/** Make the journal for `dir` (usually `<dataDir>/jobs`). */
export function makeJournal(dir: string, logger: Logger): Journal {
  const finishedDir = join(dir, FINISHED_DIR);
  const pathOf = (id: string) => join(dir, `${id}.json`);
  const finishedPathOf = (id: string) => join(finishedDir, `${id}.json`);

  async function readRecord(path: string, id: string): Promise<JobRecord | undefined> {
    try {
      const value: unknown = JSON.parse(await readFile(path, 'utf8'));
      if (isRecord(value, id)) return value;
      logger.error({ file: path }, 'job journal record has an unexpected shape; ignoring it (move it away or fix it)');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      logger.error({ file: path, err: { message: (err as Error).message } }, 'job journal record is unreadable; ignoring it');
    }
    return undefined;
  }

  async function archive(id: string): Promise<void> {
    try {
      await rename(pathOf(id), finishedPathOf(id));
      await fsyncPath(finishedDir);
      await fsyncPath(dir);
    } catch (err) {
      throw journalError(dir, 'archive a finished job in', err);
    }
  }

  return {
    dir,
    pathOf,
    archive,
    async load() {
      let names: string[];
      try {
        await mkdir(finishedDir, { recursive: true, mode: 0o700 });
        await chmod(dir, 0o700);
        await chmod(finishedDir, 0o700);
        names = await readdir(dir);
      } catch (err) {
        throw journalError(dir, 'open', err);
      }
      const records: JobRecord[] = [];
      let archived = 0;
      for (const name of names) {
        const path = join(dir, name);
        if (name.endsWith('.tmp')) {
          await rm(path, { force: true }); // a write interrupted before its rename
          continue;
        }
        if (!name.endsWith('.json')) continue;
        const id = name.slice(0, -'.json'.length);
        const record = await readRecord(path, id);
        if (!record) continue;
        if (isFinal(record.status) && record.callback !== 'pending') {
          // A crash between the final write and the move, or a journal from before finished/: one fsync at the end.
          try {
            await rename(path, finishedPathOf(id));
          } catch (err) {
            throw journalError(dir, 'archive a finished job in', err);
          }
          archived += 1;
        } else {
          records.push(record);
        }
      }
      if (archived) {
        try {
          await fsyncPath(finishedDir);
          await fsyncPath(dir);
        } catch (err) {
          throw journalError(dir, 'archive finished jobs in', err);
        }
        logger.info({ archived }, 'moved finished job records to the finished folder');
      }
      return records;
    },
    async write(record) {
      const text = JSON.stringify(record); // a snapshot: the caller may change the record while we write
      const tmp = join(dir, `.${record.id}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        const handle = await open(tmp, 'wx', 0o600);
        try {
          await handle.writeFile(text);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(tmp, pathOf(record.id));
        await fsyncPath(dir);
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        throw journalError(dir, 'write', err);
      }
    },
    readFinished: (id) => readRecord(finishedPathOf(id), id),
    async probe() {
      const tmp = join(dir, `.probe.${randomBytes(6).toString('hex')}.tmp`);
      try {
        const handle = await open(tmp, 'wx', 0o600);
        try {
          await handle.writeFile(randomBytes(512)); // about one small record
          await handle.sync();
        } finally {
          await handle.close();
        }
      } catch (err) {
        throw journalError(dir, 'write', err);
      } finally {
        await rm(tmp, { force: true }).catch(() => undefined);
      }
    },
    async purgeFinished(cutoffMs) {
      const purged: string[] = [];
      let names: string[];
      try {
        names = await readdir(finishedDir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return purged;
        throw journalError(finishedDir, 'list', err);
      }
      for (const name of names) {
        if (!name.endsWith('.json')) continue;
        const path = join(finishedDir, name);
        try {
          if ((await stat(path)).mtimeMs >= cutoffMs) continue;
          await rm(path, { force: true });
          purged.push(name.slice(0, -'.json'.length));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw journalError(finishedDir, 'purge', err);
        }
      }
      return purged;
    },
  };
}
