/** How the Redis queue stores a job in BullMQ, and how a stored job reads as a JobView. */
import type { Job } from 'bullmq';
import type { RequestType } from '../config/types.js';
import { ErrorCodes } from '../errors.js';
import type { JobOutcome } from './common.js';
import type { JobState, JobView } from './types.js';

/** What BullMQ stores as job data; the identifiers are removed once the job is final. */
export interface StoredData {
  type: RequestType;
  identifiers?: Record<string, string>;
  connections?: string[];
  /** Random per submit: tells the submit that created the job from one that was deduplicated. */
  nonce: string;
}

/** A BullMQ job of the Redis queue; its return value is the outcome. */
export type StoredJob = Job<StoredData, JobOutcome>;

/** How many times a job may be taken over from a replica that died (or lost its lock) mid-job. */
export const MAX_STALLED_COUNT = 2;

// BullMQ refuses integer-looking custom ids; a fixed prefix keeps every client id valid and distinct.
/** The BullMQ job id of a client job id. */
export const toBullId = (id: string): string => `job-${id}`;
/** The client job id of a BullMQ job id. */
export const fromBullId = (bullId: string): string => bullId.slice('job-'.length);

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);

/**
 * The API view of a stored job in a BullMQ state: waiting/delayed/prioritized → queued,
 * active → running, completed → the outcome's status, failed (stalled too often) → failed.
 */
export function toJobView(job: StoredJob, state: string): JobView {
  let status: JobState = 'queued';
  const view: JobView = { id: fromBullId(job.id as string), type: job.data.type, status, created_at: iso(job.timestamp) as string, connections: [] };
  if (state === 'completed') {
    const outcome = job.returnvalue as JobOutcome | null;
    status = outcome?.status ?? 'failed';
    view.connections = outcome?.connections ?? [];
    const error = outcome ? outcome.error : { code: ErrorCodes.INTERNAL, message: 'the job finished without a result; submit it again with a new id' };
    if (error) view.error = error;
  } else if (state === 'failed') {
    status = 'failed';
    view.error = {
      code: ErrorCodes.INTERNAL,
      message: `the job was interrupted more than ${MAX_STALLED_COUNT} times (replicas crashed or lost their Redis lock while running it); submit it again with a new id`,
    };
  } else if (state === 'active') {
    status = 'running';
  }
  view.status = status;
  if (status !== 'queued' && job.processedOn) view.started_at = iso(job.processedOn);
  if (status !== 'queued' && status !== 'running' && job.finishedOn) view.finished_at = iso(job.finishedOn);
  return view;
}
