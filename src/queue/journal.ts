/**
 * The embedded queue's journal: one JSON file per job, `<dir>/<id>.json`, replaced atomically
 * (temp file in the same folder, fsync, rename, fsync the folder), so after a crash every file is
 * either the old or the new record. Files are 0600 and the folder 0700: a record holds the data
 * subject's identifiers until the job is final.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError, ErrorCodes } from '../errors.js';
import type { Logger } from '../logger.js';
import type { JobSubmission, JobView } from './types.js';

/** One job as journaled: its API view plus what the queue needs to run it again. */
export interface JobRecord extends JobView {
  /** How many times the job has been started. */
  attempt: number;
  /** The request, with identifiers; present only while the job is not final. */
  submission?: JobSubmission;
}

/** Reads and writes job records in one folder. */
export interface Journal {
  /** The folder (created 0700 by {@link Journal.load}). */
  readonly dir: string;
  /** Create the folder, remove temp files a crash left, and read every record. */
  load(): Promise<JobRecord[]>;
  /** Replace the job's record atomically and durably. Throws INTERNAL when the disk refuses. */
  write(record: JobRecord): Promise<void>;
  /** The record's file path. */
  pathOf(id: string): string;
}

const STATES: ReadonlySet<string> = new Set(['queued', 'running', 'succeeded', 'partial', 'failed']);

function journalError(dir: string, action: string, cause: unknown): AgentError {
  const reason = (cause as NodeJS.ErrnoException)?.code ?? (cause as Error)?.message ?? 'unknown error';
  return new AgentError(
    ErrorCodes.INTERNAL,
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
  const pathOf = (id: string) => join(dir, `${id}.json`);
  return {
    dir,
    pathOf,
    async load() {
      let names: string[];
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await chmod(dir, 0o700);
        names = await readdir(dir);
      } catch (err) {
        throw journalError(dir, 'open', err);
      }
      const records: JobRecord[] = [];
      for (const name of names) {
        const path = join(dir, name);
        if (name.endsWith('.tmp')) {
          await rm(path, { force: true }); // a write interrupted before its rename
          continue;
        }
        if (!name.endsWith('.json')) continue;
        const id = name.slice(0, -'.json'.length);
        try {
          const value: unknown = JSON.parse(await readFile(path, 'utf8'));
          if (isRecord(value, id)) records.push(value);
          else logger.error({ file: path }, 'job journal record has an unexpected shape; ignoring it (move it away or fix it)');
        } catch (err) {
          logger.error({ file: path, err: { message: (err as Error).message } }, 'job journal record is unreadable; ignoring it');
        }
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
  };
}
