/**
 * A minimal in-memory JobQueue for the HTTP layer's tests: no journal, no crash recovery, but the same
 * contract as src/queue/types.ts (idempotent ids, waitFor, bounded concurrency, hand-back on close).
 */
import { randomUUID } from 'node:crypto';
import type { JobProcessor, JobQueue, JobSubmission, JobView, QueuedJob } from '../../src/queue/types.js';

interface Entry {
  view: JobView;
  submission: JobSubmission;
  attempt: number;
  waiters: Array<(v: JobView) => void>;
}

const FINAL = new Set(['succeeded', 'partial', 'failed']);

/** Make an in-memory queue. `submitted` counts accepted submissions (not repeats). */
export function makeMemoryQueue(): JobQueue & { submitted: () => number } {
  const jobs = new Map<string, Entry>();
  const pending: string[] = [];
  let processor: JobProcessor | undefined;
  let concurrency = 1;
  let active = 0;
  let closed = false;
  const controller = new AbortController();
  const running = new Set<Promise<void>>();
  const copy = (v: JobView): JobView => structuredClone(v);

  function finish(e: Entry): void {
    for (const w of e.waiters.splice(0)) w(copy(e.view));
  }

  function pump(): void {
    while (processor && !closed && active < concurrency && pending.length) {
      const id = pending.shift()!;
      const e = jobs.get(id)!;
      active++;
      e.attempt++;
      e.view.status = 'running';
      e.view.started_at = new Date().toISOString();
      const job: QueuedJob = { id, submission: e.submission, attempt: e.attempt };
      const p = processor(job, controller.signal).then(
        (result) => {
          e.view.status = result.status;
          e.view.connections = result.connections;
          e.view.finished_at = new Date().toISOString();
          finish(e);
        },
        (err: unknown) => {
          if (controller.signal.aborted) {
            e.view.status = 'queued'; // handed back
            return;
          }
          e.view.status = 'failed';
          e.view.error = { code: (err as { code?: string }).code ?? 'INTERNAL', message: 'the job could not run' };
          e.view.finished_at = new Date().toISOString();
          finish(e);
        },
      ).finally(() => {
        active--;
        running.delete(p);
        pump();
      });
      running.add(p);
    }
  }

  return {
    submitted: () => jobs.size,
    async submit(sub) {
      const existing = sub.id !== undefined ? jobs.get(sub.id) : undefined;
      if (existing) return { job: copy(existing.view), created: false };
      const id = sub.id ?? randomUUID();
      const view: JobView = { id, type: sub.type, status: 'queued', created_at: new Date().toISOString(), connections: [] };
      jobs.set(id, { view, submission: structuredClone(sub), attempt: 0, waiters: [] });
      pending.push(id);
      queueMicrotask(pump);
      return { job: copy(view), created: true };
    },
    async get(id) {
      const e = jobs.get(id);
      return e && copy(e.view);
    },
    async waitFor(id, timeoutMs) {
      const e = jobs.get(id);
      if (!e) return undefined;
      if (FINAL.has(e.view.status)) return copy(e.view);
      return new Promise<JobView>((resolve) => {
        const timer = setTimeout(() => {
          e.waiters.splice(e.waiters.indexOf(done), 1);
          resolve(copy(e.view));
        }, timeoutMs);
        const done = (v: JobView) => {
          clearTimeout(timer);
          resolve(v);
        };
        e.waiters.push(done);
      });
    },
    async start(p, n) {
      processor = p;
      concurrency = n;
      pump();
    },
    async depth() {
      return pending.length;
    },
    async close(graceMs) {
      closed = true;
      const all = Promise.all(running);
      const timer = setTimeout(() => controller.abort(), graceMs);
      await all;
      clearTimeout(timer);
    },
  };
}
