import { request, type Dispatcher } from 'undici';
import pRetry, { AbortError } from 'p-retry';
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentError, ErrorCodes, errorCodeOf, isAgentError } from '../errors.js';
import type { HttpRequest } from './render.js';
import { exchange, type HttpResponse } from './exchange.js';

/** Retry policy for one query. Delays are exponential with full jitter (×1–2), capped. */
export interface RetryPolicy {
  /** Retries after the first attempt. Default 3. */
  readonly retries: number;
  /** First backoff delay. Default 1000 ms (1 s). */
  readonly minDelayMs: number;
  /** Cap on one backoff delay (a Retry-After is honoured beyond it, within the job deadline). Default 30 000 ms (30 s). */
  readonly maxDelayMs: number;
}

/** Defaults for {@link RetryPolicy}. */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ retries: 3, minDelayMs: 1000, maxDelayMs: 30 * 1000 });

/** The retry policy the config's `agent` options set (defaults where a field is absent). */
export function retryPolicyOf(agent: { readonly retries?: number; readonly retry_min_delay_ms?: number; readonly retry_max_delay_ms?: number } | undefined): RetryPolicy {
  return {
    retries: agent?.retries ?? DEFAULT_RETRY.retries,
    minDelayMs: agent?.retry_min_delay_ms ?? DEFAULT_RETRY.minDelayMs,
    maxDelayMs: agent?.retry_max_delay_ms ?? DEFAULT_RETRY.maxDelayMs,
  };
}

/**
 * p-retry's options for a policy: exponential backoff (factor 2) with full jitter (×1–2), capped,
 * stopped by `signal`. Every retry loop of the agent (HTTP, database and SSH connects) uses these.
 */
export function backoffOptions(policy: RetryPolicy, signal?: AbortSignal) {
  return { retries: policy.retries, factor: 2, minTimeout: policy.minDelayMs, maxTimeout: policy.maxDelayMs, randomize: true, signal } as const;
}

/** What the caller learns about each failed attempt (for logs and metrics; no personal data). */
export interface AttemptFailure {
  readonly attempt: number;
  readonly reason: string;
  readonly status?: number;
  readonly delayMs: number;
}

/** Options for {@link sendWithRetry}. */
export interface SendOptions {
  readonly dispatcher: Dispatcher;
  readonly valid: ReadonlySet<number>;
  readonly retryOn: ReadonlySet<number>;
  readonly policy: RetryPolicy;
  /** Aborts the in-flight request and any wait (the cumulative job timeout, shutdown). */
  readonly signal: AbortSignal;
  readonly onRetry?: (f: AttemptFailure) => void;
}

/** A retryable status; carries Retry-After when the target sent one. */
class RetryableStatus extends Error {
  constructor(readonly status: number, readonly retryAfterMs: number | undefined) {
    super(`status ${status}`);
  }
}

/** TLS verification failures are configuration problems: retrying cannot fix them. */
const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_NOT_YET_VALID',
]);

/** Parse Retry-After (seconds or an HTTP date) into milliseconds from now. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}


/**
 * One EventEmitter per run signal that emits 'abort' (with the signal's `reason`) when the signal
 * aborts; undici takes it as a request's `signal` (its documented `AbortSignal | EventEmitter`).
 *
 * Why not the signal itself: undici adds an abort listener to the signal for every request and
 * removes it when the body closes, often after the run's next request added its own. Node keeps an
 * EventTarget's listeners in a linked list whose removed nodes keep their `next` pointer, so a
 * removed listener that reached the old generation keeps the next request's listener (and through
 * its closure that request's handler and response) reachable in every young-generation GC. An
 * EventEmitter keeps its listeners in a plain slot, and adding and removing one costs less. The
 * relay only passes on aborts that happen while a request is in flight: every attempt checks the
 * signal just before it starts.
 */
const relays = new WeakMap<AbortSignal, EventEmitter & { reason?: unknown }>();

function abortRelayOf(signal: AbortSignal): EventEmitter {
  let relay = relays.get(signal);
  if (relay === undefined) {
    const r: EventEmitter & { reason?: unknown } = new EventEmitter();
    r.setMaxListeners(0); // one listener per request in flight on the run
    signal.addEventListener('abort', () => {
      r.reason = signal.reason;
      r.emit('abort');
    }, { once: true });
    relays.set(signal, (relay = r));
  }
  return relay;
}

/** What an attempt's response must offer the retry logic. */
interface Answer {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: { dump(): Promise<unknown> };
}

/** One attempt's transport: resolves at the response's status, rejects with the transport's error. */
type Attempt<R extends Answer> = (req: HttpRequest, opts: SendOptions) => Promise<R>;

const viaRequest: Attempt<Dispatcher.ResponseData> = (req, opts) => request(req.url, requestOptions(req, opts));
const viaExchange: Attempt<HttpResponse> = (req, opts) => exchange(req, opts.dispatcher, opts.signal);

/**
 * Send one request; retry statuses in `retryOn` and network errors with exponential backoff and
 * jitter, honouring Retry-After (capped at maxDelayMs). Resolves with the response once its status
 * is valid; the caller owns (and must consume) the body, a Readable (undici's `request()`). Throws
 * AgentError HTTP_STATUS or HTTP_NETWORK, or the signal's reason when aborted.
 */
export function sendWithRetry(req: HttpRequest, opts: SendOptions): Promise<Dispatcher.ResponseData> {
  return sendWith(viaRequest, req, opts);
}

/**
 * {@link sendWithRetry} for the engine's query path: the same retries and errors, through
 * undici's `dispatch()` with a pull body (see exchange.ts), which costs less per request.
 */
export function exchangeWithRetry(req: HttpRequest, opts: SendOptions): Promise<HttpResponse> {
  return sendWith(viaExchange, req, opts);
}

async function sendWith<R extends Answer>(attempt: Attempt<R>, req: HttpRequest, opts: SendOptions): Promise<R> {
  // The first attempt runs outside p-retry, in this one async frame: nearly every request succeeds
  // at once, and p-retry's per-call setup (copying and checking its options, more promise layers)
  // showed in the engine's profile. A failed first attempt is handed to p-retry as its attempt 1,
  // so the retries, their delays and the errors are p-retry's, exactly as when it ran every attempt.
  opts.signal.throwIfAborted();
  let res: R;
  try {
    res = await attempt(req, opts);
  } catch (err) {
    return retryAfter(opts.signal.aborted ? err : networkError(err), attempt, req, opts);
  }
  if (!opts.valid.has(res.statusCode)) return retryAfter(await statusFailure(res, opts), attempt, req, opts);
  // As p-retry does: an abort during the attempt wins over its result (the body is aborted with it).
  opts.signal.throwIfAborted();
  return res;
}

/** Attempts 2.. of {@link sendWith} through p-retry, which sees `first` as attempt 1's failure. */
async function retryAfter<R extends Answer>(first: unknown, attempt: Attempt<R>, req: HttpRequest, opts: SendOptions): Promise<R> {
  const { signal, policy } = opts;
  try {
    return await pRetry((n) => (n === 1 ? Promise.reject(first) : attemptOnce(attempt, req, opts)), {
      ...backoffOptions(policy, signal),
      onFailedAttempt: async ({ error, attemptNumber, retriesLeft, retryDelay }) => {
        const retryAfter = error instanceof RetryableStatus ? error.retryAfterMs : undefined;
        // Retry-After is honoured in full; only the cumulative job deadline bounds it.
        const extra = retryAfter === undefined ? 0 : Math.max(0, retryAfter - retryDelay);
        if (retriesLeft > 0) {
          opts.onRetry?.({
            attempt: attemptNumber,
            reason: error instanceof RetryableStatus ? `status ${error.status}` : error.message,
            status: error instanceof RetryableStatus ? error.status : undefined,
            delayMs: retryDelay + extra,
          });
          if (extra > 0) await sleep(extra, undefined, { signal });
        }
      },
    });
  } catch (err) {
    if (signal.aborted) throw signal.reason ?? err;
    if (err instanceof RetryableStatus) {
      throw new AgentError(
        ErrorCodes.HTTP_STATUS,
        `target answered ${err.status} after ${policy.retries + 1} attempts (${err.status} is in fail_retry_response_codes)`,
        { status: err.status },
      );
    }
    if (isAgentError(err) && err.code === ErrorCodes.HTTP_NETWORK && !/TLS/.test(err.message)) {
      throw new AgentError(ErrorCodes.HTTP_NETWORK, `${err.message} after ${policy.retries + 1} attempts`, { cause: err.cause });
    }
    throw err;
  }
}

/** One attempt after the first: the response when its status is valid, else the failure thrown. */
async function attemptOnce<R extends Answer>(attempt: Attempt<R>, req: HttpRequest, opts: SendOptions): Promise<R> {
  let res: R;
  try {
    res = await attempt(req, opts);
  } catch (err) {
    throw opts.signal.aborted ? err : networkError(err);
  }
  if (opts.valid.has(res.statusCode)) return res;
  throw await statusFailure(res, opts);
}

function requestOptions(req: HttpRequest, opts: SendOptions) {
  return {
    method: req.method as Dispatcher.HttpMethod,
    headers: req.headers,
    body: req.body,
    dispatcher: opts.dispatcher,
    signal: abortRelayOf(opts.signal),
  };
}

/** HTTP_NETWORK for a failed request; a TLS verification failure is not retried (p-retry's AbortError). */
function networkError(err: unknown): Error {
  const code = errorCodeOf(err, 'UND_ERR_SOCKET') ?? (err as { code?: string })?.code ?? 'UNKNOWN';
  if (TLS_CODES.has(code)) {
    return new AbortError(
      new AgentError(
        ErrorCodes.HTTP_NETWORK,
        `TLS certificate verification failed (${code}); install the target's CA or, for this query only, set verify_ssl to "false"`,
        { cause: err },
      ),
    );
  }
  return new AgentError(ErrorCodes.HTTP_NETWORK, `network error (${code})`, { cause: err });
}

/** The failure an invalid status is, after its body is dumped: retryable (in retryOn) or not (p-retry's AbortError). */
async function statusFailure(res: Answer, opts: SendOptions): Promise<Error> {
  await res.body.dump().catch(() => undefined);
  if (opts.retryOn.has(res.statusCode)) return new RetryableStatus(res.statusCode, parseRetryAfter(res.headers['retry-after']));
  return new AbortError(statusError(res.statusCode, opts.valid));
}

function statusError(status: number, valid: ReadonlySet<number>): AgentError {
  const hint =
    status === 404 && !valid.has(404)
      ? '; if 404 means "no such data subject", add 404 to valid_response_codes'
      : '';
  return new AgentError(
    ErrorCodes.HTTP_STATUS,
    `target answered ${status}, which is not in valid_response_codes [${[...valid].join(', ')}]${hint}`,
    { status },
  );
}
