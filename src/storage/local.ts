/** Reports on the local file system. */
import { makeOptionChecker, type StorageProvider } from './provider.js';
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AgentError, ErrorCodes } from '../errors.js';
import { assertPrefix, assertSafeSegment, checkPrefix, reportFileName } from './paths.js';
import type { ReportSink, ReportStorage } from './sink.js';

// Reports hold personal data: readable by the agent's user only.
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

/** The error code of a file-system error (EACCES, ENOTDIR, ...), or its name. */
function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code ?? (err instanceof Error ? err.name : 'unknown error');
}

/**
 * Write `content` to `file` atomically: a temp file in the same folder (mode 0o600, flushed to disk),
 * then a rename over the target. Readers see the old file or the new one, never a partial one.
 */
async function writeFileAtomic(file: string, content: string): Promise<void> {
  const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  let written = false;
  try {
    // One call opens, writes, fsyncs (flush) and closes: a report costs fewer round trips to the thread pool.
    await writeFile(temp, content, { encoding: 'utf8', flag: 'wx', mode: FILE_MODE, flush: true });
    await rename(temp, file);
    written = true;
  } finally {
    if (!written) await unlink(temp).catch(() => undefined);
  }
}

/**
 * Reports under dir/<connection uuid>/report_<n>.csv (the CLI uses this directly with its --out dir).
 * Writes atomically (temp file + rename), creating folders as needed, files mode 0o600, folders 0o700
 * (reports hold personal data). Resolves to the report's absolute path. A connection uuid that is not
 * a safe path segment is rejected with AgentError(STORAGE_ERROR), as is any failed write.
 */
export function makeLocalSink(dir: string): ReportSink {
  const root = resolve(dir);
  // Folders this sink has made: a connection's folder is made once, not once per report.
  const made = new Set<string>();
  return {
    async put(connectionUuid, n, csv) {
      assertSafeSegment(connectionUuid, 'connection uuid');
      const folder = join(root, connectionUuid);
      const file = join(folder, reportFileName(n));
      try {
        if (!made.has(folder)) {
          await mkdir(folder, { recursive: true, mode: DIR_MODE });
          made.add(folder);
        }
        await writeFileAtomic(file, csv);
      } catch (err) {
        throw new AgentError(
          ErrorCodes.STORAGE_ERROR,
          `Could not write the report ${file} (${fsReason(err)}). ` +
            'Check that the folder exists or can be created and is writable by the agent, and that the disk is not full.',
          { cause: err },
        );
      }
      return file;
    },
  };
}

/**
 * Local storage: <directory>/<prefix?>/<job id>/<connection uuid>/report_<n>.csv.
 * `directory` is resolved against the working directory when relative (makeReportStorage resolves it
 * against the config's folder first). `prefix` (default none) is one or more "/"-separated safe segments;
 * an invalid one throws AgentError(CONFIG_INVALID). forJob() throws AgentError(STORAGE_ERROR) for a job id
 * that is not a safe path segment.
 */
export function makeLocalStorage(options: { directory: string; prefix?: string }): ReportStorage {
  const prefix = assertPrefix(options.prefix);
  const base = prefix === '' ? resolve(options.directory) : resolve(options.directory, ...prefix.split('/'));
  return {
    description: base,
    forJob(jobId) {
      assertSafeSegment(jobId, 'job id');
      return makeLocalSink(join(base, jobId));
    },
    async check() {
      const probe = join(base, `.dsr-agent-probe-${randomUUID()}`);
      try {
        await mkdir(base, { recursive: true, mode: DIR_MODE });
        const handle = await open(probe, 'wx', FILE_MODE);
        try {
          await handle.writeFile('probe', 'utf8');
        } finally {
          await handle.close();
        }
        await unlink(probe);
      } catch (err) {
        await unlink(probe).catch(() => undefined);
        throw new AgentError(
          ErrorCodes.STORAGE_ERROR,
          `Report storage ${base} is not writable (${fsReason(err)}). ` +
            'Make the folder writable by the agent, or set platform.storage_manager.options.directory to a writable folder.',
          { cause: err },
        );
      }
    },
    async purge(cutoffMs) {
      let purged = 0;
      let entries;
      try {
        entries = await readdir(base, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        throw new AgentError(ErrorCodes.STORAGE_ERROR, `Could not list ${base} to purge old reports (${fsReason(err)})`, { cause: err });
      }
      for (const entry of entries) {
        if (!entry.isDirectory()) continue; // job folders only
        const folder = join(base, entry.name);
        try {
          if ((await stat(folder)).mtimeMs >= cutoffMs) continue;
          await rm(folder, { recursive: true, force: true });
          purged += 1;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
            throw new AgentError(ErrorCodes.STORAGE_ERROR, `Could not purge the reports in ${folder} (${fsReason(err)})`, { cause: err });
          }
        }
      }
      return purged;
    },
  };
}

/** Local: options `directory` (required; relative to the config file's folder) and `prefix`. */
export const localProvider: StorageProvider = {
  name: 'Local',
  check(options) {
    const c = makeOptionChecker(options, ['directory', 'prefix'], 'Local');
    const directory = options.directory;
    if (directory === undefined || directory === '') {
      c.add('directory', 'is required for Local: set it to the folder that receives reports (relative paths resolve against the config folder)');
    } else if (typeof directory !== 'string') {
      c.add('directory', 'must be a string: a folder path');
    }
    checkPrefix(options.prefix, c.add);
    return c.problems;
  },
  make(options, ctx) {
    return makeLocalStorage({
      directory: resolve(ctx.baseDir, options.directory as string),
      ...(options.prefix !== undefined ? { prefix: options.prefix as string } : {}),
    });
  },
};
