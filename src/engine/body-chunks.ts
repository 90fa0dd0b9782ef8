/**
 * Pulling a response body's chunks without Readable's async iterator. `for await` over a body
 * builds an async generator, an end-of-stream watcher (eos: a closure and a listener per stream
 * event) and a promise per chunk; on the small bodies most targets answer with, that was a large
 * share of the engine's allocations per request. This reader keeps four listeners and allocates a
 * promise only when it must wait for data. Semantics are the iterator's: chunks in order with
 * backpressure (nothing is read while the caller works on a chunk), the stream's error, or
 * ERR_STREAM_PREMATURE_CLOSE when it closed before its end.
 */
import type { Readable } from 'node:stream';

const ENDED: Promise<boolean> = Promise.resolve(false);

/** The error a stream that closed before its end reads as (the code Node's iterator uses). */
function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/** A body's chunks: `read()` what is buffered, `wait()` when nothing is. */
export class BodyChunks {
  private ended = false;
  private failed = false;
  private error: unknown;
  private resolve: ((more: boolean) => void) | undefined;
  private reject: ((err: unknown) => void) | undefined;

  constructor(private readonly body: Readable) {
    // The 'error' listener stays after the read: a body destroyed later (the caller stopped early)
    // emits an error nobody else listens for.
    body.on('readable', () => this.settle());
    body.on('end', () => {
      this.ended = true;
      this.settle();
    });
    body.on('error', (err: unknown) => this.fail(err));
    body.on('close', () => {
      if (!this.ended) this.fail(body.errored ?? prematureClose());
    });
  }

  /** The next buffered chunk, or null when none is buffered now (then {@link wait}). */
  read(): Buffer | null {
    return this.body.destroyed ? null : (this.body.read() as Buffer | null);
  }

  /** Resolves true when {@link read} may have a chunk, false once the body ended; rejects with its error. */
  wait(): Promise<boolean> {
    if (this.failed) return Promise.reject(this.error);
    if (this.ended) return ENDED;
    const b = this.body;
    // Events that fired before this reader was made are read from the stream's state.
    if (b.errored) return Promise.reject(b.errored);
    if (b.readableEnded) return ENDED;
    if (b.closed) return Promise.reject(prematureClose());
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  private fail(err: unknown): void {
    if (!this.failed) {
      this.failed = true;
      this.error = err;
    }
    this.settle();
  }

  private settle(): void {
    const resolve = this.resolve;
    const reject = this.reject;
    if (resolve === undefined || reject === undefined) return;
    this.resolve = this.reject = undefined;
    if (this.failed) reject(this.error);
    else resolve(!this.ended);
  }
}
