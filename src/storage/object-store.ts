/**
 * What every object store (S3 and S3-compatible, Azure Blob, Cloud Storage) shares: the key layout
 * `<prefix>/<job id>/<connection uuid>/report_<n>.csv`, the checks on job ids and uuids, and the
 * readiness probe. A provider supplies only how to write and delete one object.
 */
import { randomUUID } from 'node:crypto';
import { assertSafeSegment, reportFileName } from './paths.js';
import type { ReportSink, ReportStorage } from './sink.js';

/** One object store, as a provider drives it. */
export interface ObjectStore {
  /** Where keys live, as locations show it: `s3://bucket`, `gs://bucket`, `azure://account/container`. */
  readonly base: string;
  /** The checked key prefix (assertPrefix), '' for none. */
  readonly prefix: string;
  /** Write one object; throws AgentError(STORAGE_ERROR) naming the key, never the content. */
  put(key: string, body: string): Promise<void>;
  /** Delete one object (the probe); throws AgentError(STORAGE_ERROR). */
  delete(key: string): Promise<void>;
}

/** A ReportStorage over an object store: `put` resolves to `<base>/<key>`; `check` writes and deletes a probe. */
export function makeObjectStorage(store: ObjectStore): ReportStorage {
  const keyOf = (...segments: string[]) => [...(store.prefix ? [store.prefix] : []), ...segments].join('/');
  return {
    description: store.prefix ? `${store.base}/${store.prefix}` : store.base,
    forJob(jobId) {
      assertSafeSegment(jobId, 'job id');
      return {
        async put(connectionUuid, n, csv) {
          assertSafeSegment(connectionUuid, 'connection uuid');
          const key = keyOf(jobId, connectionUuid, reportFileName(n));
          await store.put(key, csv);
          return `${store.base}/${key}`;
        },
      } satisfies ReportSink;
    },
    async check() {
      const key = keyOf(`.dsr-agent-probe-${randomUUID()}`);
      await store.put(key, 'probe');
      await store.delete(key);
    },
  };
}
