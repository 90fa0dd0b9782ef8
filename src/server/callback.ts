/**
 * The result callback: POST a final job view to config.callback_url, authenticated with the token stored
 * at datagrail_credentials_location, retried with jittered backoff for a bounded time. A callback that
 * cannot be delivered is logged and dropped; the result stays readable through GET /api/v1/jobs/:id.
 * The queue drives it (see JobNotifier): a callback is journaled as pending with the job's final
 * state and resumed after a restart, so delivery is at least once.
 */
import pRetry, { AbortError } from 'p-retry';
import { request, type Dispatcher } from 'undici';
import type { SecretsSource } from '../credentials/source.js';
import { isAgentError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { JobView } from '../queue/types.js';

/** Options of {@link makeCallbackSender}. */
export interface CallbackSenderOptions {
  /** config.callback_url. */
  url: string;
  secrets: SecretsSource;
  /** config.datagrail_credentials_location: the secret {"token": "..."} sent as a bearer token. Without it no Authorization header is sent. */
  location?: string;
  logger: Logger;
  /** How long one callback is retried, in ms. Default 600000 (10 min). */
  retryWindowMs?: number;
  /** First retry delay in ms (doubling, jittered). Default 1000. */
  minDelayMs?: number;
  /** Cap on one retry delay in ms. Default 60000. */
  maxDelayMs?: number;
  /** Timeout of one attempt in ms. Default 30000. */
  attemptTimeoutMs?: number;
  /** HTTP dispatcher. Default undici's global one. */
  dispatcher?: Dispatcher;
}

/** How a callback ended: accepted (2xx), given up (not retried again), or stopped by shutdown (resumed later). */
export type CallbackOutcome = 'delivered' | 'failed' | 'abandoned';

/** Sends final job views to the callback URL. */
export interface CallbackSender {
  /** Deliver `job`; `signal` (or close()) abandons it. Never rejects. */
  send(job: JobView, signal?: AbortSignal): Promise<CallbackOutcome>;
  /** Abandon pending retries (shutdown); their jobs stay readable through the API. */
  close(): void;
}

/** Statuses worth another attempt: the receiver is overloaded or briefly down. */
function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/** A callback failure whose message is safe to log (no body, no token). */
class CallbackError extends Error {
  override name = 'CallbackError';
}

class HttpStatusError extends CallbackError {
  constructor(readonly status: number) {
    super(`HTTP ${status}`);
  }
}

/** Make the callback sender. Retries network errors, 5xx, 408 and 429; other 4xx give up at once (after one secret refresh on 401/403). */
export function makeCallbackSender(opts: CallbackSenderOptions): CallbackSender {
  const log = opts.logger.child({ component: 'callback' });
  const origin = new URL(opts.url).origin; // the path or query may carry a key: log the origin only
  const retryWindowMs = opts.retryWindowMs ?? 10 * 60 * 1000; // 10 min
  const minDelayMs = opts.minDelayMs ?? 1000; // 1 s
  const maxDelayMs = opts.maxDelayMs ?? 60 * 1000; // 60 s
  const attemptTimeoutMs = opts.attemptTimeoutMs ?? 30 * 1000; // 30 s
  const closing = new AbortController();
  if (!opts.location) log.warn({ origin }, 'callback_url is set without datagrail_credentials_location: callbacks are sent without an Authorization header');

  async function authorization(): Promise<string | undefined> {
    if (!opts.location) return undefined;
    const secret = await opts.secrets.get(opts.location);
    if (typeof secret.token !== 'string' || secret.token === '') {
      throw new AbortError(new CallbackError('the secret at datagrail_credentials_location has no "token"; store {"token": "..."} there'));
    }
    return `Bearer ${secret.token}`;
  }

  async function attempt(body: string, refreshed: { done: boolean }, stop: AbortSignal): Promise<void> {
    const auth = await authorization();
    let res: Dispatcher.ResponseData;
    try {
      res = await request(opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body,
        signal: AbortSignal.any([stop, AbortSignal.timeout(attemptTimeoutMs)]),
        ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
      });
      await res.body.dump();
    } catch (err) {
      if (stop.aborted) throw new AbortError(new CallbackError('abandoned at shutdown'));
      // A network error (refused, reset, DNS, timeout): its code is safe to log, its message may not be.
      const e = err as { code?: unknown; name?: unknown };
      throw new CallbackError(typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : 'network error');
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return;
    const err = new HttpStatusError(res.statusCode);
    if (isRetryableStatus(res.statusCode)) throw err;
    const invalidate = (opts.secrets as { invalidate?: (l: string) => void }).invalidate;
    if ((res.statusCode === 401 || res.statusCode === 403) && opts.location && invalidate && !refreshed.done) {
      // The token may have been rotated: fetch it again and try once more.
      refreshed.done = true;
      invalidate.call(opts.secrets, opts.location);
      throw err;
    }
    throw new AbortError(err);
  }

  return {
    async send(job, signal) {
      const body = JSON.stringify(job);
      const jlog = log.child({ jobId: job.id, status: job.status });
      const refreshed = { done: false };
      const started = Date.now();
      const stop = signal ? AbortSignal.any([closing.signal, signal]) : closing.signal;
      try {
        await pRetry(() => attempt(body, refreshed, stop), {
          retries: Infinity, // bounded by maxRetryTime instead
          factor: 2,
          minTimeout: minDelayMs,
          maxTimeout: maxDelayMs,
          randomize: true,
          maxRetryTime: retryWindowMs,
          signal: stop,
          unref: true,
          onFailedAttempt: ({ error, attemptNumber, retryDelay }) => {
            jlog.warn({ origin, attempt: attemptNumber, reason: describe(error), delayMs: Math.round(retryDelay) }, 'callback attempt failed');
          },
        });
        jlog.info({ origin, ms: Date.now() - started }, 'callback delivered');
        return 'delivered';
      } catch (err) {
        if (stop.aborted) {
          jlog.info({ origin }, 'callback abandoned at shutdown; it is resumed after a restart');
          return 'abandoned';
        }
        jlog.error(
          { origin, reason: describe(err), ms: Date.now() - started },
          'callback not delivered; the result stays readable through GET /api/v1/jobs/:id',
        );
        return 'failed';
      }
    },
    close() {
      closing.abort();
    },
  };
}

/** A log-safe reason: an HTTP status, an agent error code, or a network error code. Never a body or a token. */
function describe(err: unknown): string {
  if (err instanceof CallbackError) return err.message;
  if (isAgentError(err)) return err.code;
  const e = err as { code?: string; name?: string } | undefined;
  return e?.code ?? e?.name ?? 'unknown error';
}
