/**
 * One HTTP exchange through undici's `dispatch()` with the engine's own handler, instead of
 * `request()`. `request()` wraps every response in a RequestHandler (an AsyncResource), a Readable
 * body with its stream state and nextTick-driven events, and a promise: for the small bodies most
 * targets answer with, that layer cost about a quarter of undici's CPU per request and more than the
 * rest of the agent's request path. Here the handler queues the body's chunks for a pull reader
 * (`read()` / `wait()`), pausing the connection while the reader is behind (backpressure), and the
 * run's signal aborts the exchange through one listener per run.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { errors, type Dispatcher } from 'undici';
import type { HttpRequest } from './render.js';

/** A response whose status was received; its body is read (or dumped, or destroyed) by the caller. */
export interface HttpResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: ResponseBody;
}

/** Chunks queued beyond this pause the connection until the reader catches up (undici's body default). */
const HIGH_WATER_MARK = 64 * 1024;
/** A body dumped past this many bytes closes the connection instead (undici's `dump()` default). */
const DUMP_LIMIT = 128 * 1024;
const ENDED: Promise<boolean> = Promise.resolve(false);

/** A response body: chunks in order, with backpressure; the exchange's error, or its abort reason. */
export class ResponseBody implements AsyncIterable<Buffer> {
  private readonly queue: Buffer[] = [];
  private head = 0;
  private queued = 0;
  private received = 0;
  private ended = false;
  private failed = false;
  private error: unknown;
  private resolve: ((more: boolean) => void) | undefined;
  private reject: ((err: unknown) => void) | undefined;

  constructor(
    private readonly controller: Dispatcher.DispatchController,
    private readonly contentLength: number,
  ) {}

  /** The next chunk, or null when none is queued now (then {@link wait}). */
  read(): Buffer | null {
    if (this.head === this.queue.length) return null;
    const chunk = this.queue[this.head]!;
    this.queue[this.head++] = undefined as unknown as Buffer;
    if (this.head === this.queue.length) this.queue.length = this.head = 0;
    this.queued -= chunk.length;
    if (this.controller.paused && this.queued < HIGH_WATER_MARK && !this.ended && !this.failed) this.controller.resume();
    return chunk;
  }

  /** Resolves true when {@link read} may have a chunk, false once the body ended; rejects with its error. */
  wait(): Promise<boolean> {
    if (this.head < this.queue.length) return Promise.resolve(true);
    if (this.failed) return Promise.reject(this.error);
    if (this.ended) return ENDED;
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        const chunk = this.read();
        if (chunk !== null) yield chunk;
        else if (!(await this.wait())) return;
      }
    } finally {
      this.destroy();
    }
  }

  /** Stop reading: the exchange is aborted unless the body had ended (undici's RequestAbortedError by default). */
  destroy(reason?: Error): void {
    if (this.ended || this.failed) return;
    const err = reason ?? new errors.RequestAbortedError();
    this.fail(err);
    this.controller.abort(err);
  }

  /** Read and discard the body; past 128 KiB the connection is closed instead. Never rejects. */
  async dump(): Promise<void> {
    if (this.contentLength > DUMP_LIMIT) return this.destroy();
    for (;;) {
      while (this.read() !== null);
      if (this.received > DUMP_LIMIT) return this.destroy();
      try {
        if (!(await this.wait())) return;
      } catch {
        return;
      }
    }
  }

  /** Handler side: a chunk arrived; false when the connection should pause. */
  push(chunk: Buffer): boolean {
    this.queue.push(chunk);
    this.queued += chunk.length;
    this.received += chunk.length;
    this.settle();
    return this.queued < HIGH_WATER_MARK;
  }

  /** Handler side: the body is complete. */
  end(): void {
    this.ended = true;
    this.settle();
  }

  /** Handler side: the exchange failed (network error, abort); what was queued is dropped, as a destroyed stream drops its buffer. */
  fail(err: unknown): void {
    if (this.ended || this.failed) return;
    this.failed = true;
    this.error = err;
    this.queue.length = this.head = this.queued = 0;
    this.settle();
  }

  private settle(): void {
    const resolve = this.resolve;
    const reject = this.reject;
    if (resolve === undefined || reject === undefined) return;
    this.resolve = this.reject = undefined;
    if (this.head < this.queue.length) resolve(true);
    else if (this.failed) reject(this.error);
    else resolve(false);
  }
}

/** The exchanges in flight on one run signal, aborted together by the signal's one listener. */
const inFlight = new WeakMap<AbortSignal, Set<Exchange>>();

function inFlightOn(signal: AbortSignal): Set<Exchange> {
  let set = inFlight.get(signal);
  if (set === undefined) {
    const exchanges = new Set<Exchange>();
    signal.addEventListener('abort', () => {
      for (const ex of exchanges) ex.abort(signal.reason);
    }, { once: true });
    inFlight.set(signal, (set = exchanges));
  }
  return set;
}

/** The handler of one exchange: settles the response promise at the status, then feeds the body. */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private body: ResponseBody | undefined;
  /** Set once the run's signal aborted: what the exchange is aborted with when it starts or answers. */
  private aborted: Error | undefined;
  private settled = false;

  constructor(
    private readonly flights: Set<Exchange>,
    private readonly resolve: (res: HttpResponse) => void,
    private readonly reject: (err: unknown) => void,
  ) {}

  /** The run's signal aborted: the response promise rejects, or the body fails, with `reason` at once. */
  abort(reason: unknown): void {
    const err = reason instanceof Error ? reason : new errors.RequestAbortedError();
    this.aborted = err;
    if (this.body) this.body.fail(reason);
    else if (!this.settled) {
      this.settled = true;
      this.reject(reason);
    }
    this.controller?.abort(err);
    this.done();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // Aborted while it waited for a connection: it ends as soon as it starts.
    if (this.aborted) return controller.abort(this.aborted);
    this.controller = controller;
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: the final status follows
    // Aborted as the status arrived: nobody will read this body (the promise has rejected).
    if (this.aborted) return controller.abort(this.aborted);
    const length = Number(headers['content-length']);
    this.body = new ResponseBody(controller, Number.isFinite(length) ? length : -1);
    this.settled = true;
    this.resolve({ statusCode, headers, body: this.body });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.body && !this.body.push(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.body?.end();
    this.done();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (this.body) this.body.fail(err);
    else if (!this.settled) {
      this.settled = true;
      this.reject(err);
    }
    this.done();
  }

  private done(): void {
    this.flights.delete(this);
  }
}

/**
 * Send `req` once through `dispatcher`. Resolves at the response's status and headers; the caller
 * owns the body. Rejects with undici's error (network, invalid request), or with `signal`'s reason
 * when it aborts first. The caller checks the signal before calling.
 */
export function exchange(req: HttpRequest, dispatcher: Dispatcher, signal: AbortSignal): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) throw signal.reason;
    // What undici's request() does with a URL string.
    const url = new URL(req.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new errors.InvalidArgumentError('Invalid URL protocol: the URL must start with `http:` or `https:`.');
    }
    const flights = inFlightOn(signal);
    const handler = new Exchange(flights, resolve, reject);
    flights.add(handler);
    try {
      dispatcher.dispatch(
        {
          origin: url.origin,
          path: url.search ? `${url.pathname}${url.search}` : url.pathname,
          method: req.method as Dispatcher.HttpMethod,
          headers: req.headers,
          body: req.body,
        },
        handler,
      );
    } catch (err) {
      // undici's dispatchers report a request they refuse to onResponseError; another may throw.
      handler.onResponseError(null, err as Error);
    }
  });
}
