/** The storage interfaces the engine and the service write reports through. */

/** Where one job's reports go. The engine calls put() once per access object, in order, as soon as the object's CSV is ready. */
export interface ReportSink {
  /**
   * Store report_<n>.csv of a connection; resolves to its location, `<folder>/report_<n>.csv` with one
   * folder per connection (an absolute file path, or s3://bucket/key): a job result names reports past
   * its first 1000 by that folder and their count.
   */
  put(connectionUuid: string, n: number, csv: string): Promise<string>;
}

/** Result storage for the service: one sink per job, plus a writability probe for /readyz. */
export interface ReportStorage {
  /** Human description for logs and /readyz, no secrets (e.g. "s3://bucket/prefix" or "/data/reports"). */
  readonly description: string;
  forJob(jobId: string): ReportSink;
  /** Throws AgentError(STORAGE_ERROR) when storage is not writable (write + delete a small probe object). */
  check(): Promise<void>;
  /**
   * Delete the reports of jobs last written before `cutoffMs` (epoch ms); resolves with how many jobs.
   * Local storage only: object stores keep reports by their own lifecycle rules.
   */
  purge?(cutoffMs: number): Promise<number>;
}
