/** Helpers for the queue tests: job results, and child processes that talk in stdout lines. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobResult } from '../../src/engine/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository root (dist/ lives there). */
export const ROOT = join(HERE, '..', '..');

/** Fail early with a clear message when dist/ is missing (the test command builds it). */
export function assertBuilt(): void {
  if (!existsSync(join(ROOT, 'dist', 'queue', 'index.js'))) {
    throw new Error('dist/queue/index.js is missing: run `npx tsc -p tsconfig.build.json` (npm test does) before this test');
  }
}

/** A JobResult with one connection named `name`. */
export function result(name = 'svc', status: 'succeeded' | 'failed' = 'succeeded'): JobResult {
  return {
    type: 'access',
    status,
    connections: [{ uuid: '00000000-0000-4000-8000-000000000001', name, status, ...(status === 'failed' ? { error: { code: 'CANCELLED', message: 'cancelled' } } : {}) }],
  };
}

/** A promise with its resolve function. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A child process running a helper script, with its stdout split into lines. */
export interface LineChild {
  readonly child: ChildProcess;
  readonly lines: string[];
  /** Resolve with the first line (seen or future) matching `re`; reject after `ms`. */
  waitForLine(re: RegExp, ms?: number): Promise<string>;
  /** Resolve when the process has exited. */
  exited: Promise<void>;
  /** SIGKILL it (if still running) and wait for the exit. */
  kill(): Promise<void>;
}

/** Run `test/helpers/<script>` on this Node with `env` added. */
export function spawnLineChild(script: string, env: Record<string, string>): LineChild {
  const child = spawn(process.execPath, [join(HERE, script)], {
    cwd: ROOT,
    env: { ...process.env, ...env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const listeners = new Set<() => void>();
  let buffer = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts.filter(Boolean));
    for (const l of listeners) l();
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const waitForLine = (re: RegExp, ms = 10_000) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const found = lines.find((l) => re.test(l));
        if (found === undefined) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve(found);
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`no line matching ${re} within ${ms} ms; stdout: ${lines.join(' | ')}; stderr: ${stderr.slice(-2000)}`));
      }, ms);
      listeners.add(check);
      check();
    });
  return {
    child,
    lines,
    waitForLine,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
