/** A ReportStorage whose implementation (and SDK) is imported on first use. */
import { assertSafeSegment } from './paths.js';
import type { ReportStorage } from './sink.js';

/**
 * Wrap a storage that is loaded on the first put or check: the cloud SDKs take time and memory to
 * load, which a user of another provider (or `validate`) should not pay. A failed load is retried.
 */
export function lazyStorage(description: string, load: () => Promise<ReportStorage>): ReportStorage {
  let loading: Promise<ReportStorage> | undefined;
  const get = () => {
    const p = (loading ??= load());
    p.catch(() => (loading = undefined));
    return p;
  };
  return {
    description,
    forJob(jobId) {
      assertSafeSegment(jobId, 'job id');
      return { put: async (uuid, n, csv) => (await get()).forJob(jobId).put(uuid, n, csv) };
    },
    check: async () => (await get()).check(),
  };
}
