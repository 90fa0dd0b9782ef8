/**
 * Streaming split of a JSON array body into its elements. Memory is bounded by the largest
 * single element, never by the whole body: the scanner tracks depth and string/escape state over
 * the raw bytes, keeps only the current element's chunk slices, and parses each element on its own.
 */
import { ArrayScanner } from './array-scanner.js';

/** Options of {@link splitJsonArray}. */
export interface SplitOptions {
  /** Largest single element in bytes; default 64 MiB (67108864). */
  maxObjectBytes?: number;
  /** Require each element to be a JSON object (not array/null/scalar); default true. */
  objectsOnly?: boolean;
  /** What the body is, for error messages; default "access response". */
  label?: string;
}

/** Default cap on one element: 64 MiB. */
export const DEFAULT_MAX_OBJECT_BYTES = 64 * 1024 * 1024;

/**
 * Split a JSON array body into its elements as they arrive. Memory stays bounded by the largest
 * element (plus one chunk), whatever the body's size. A UTF-8 BOM and surrounding whitespace are
 * accepted. Breaking out of a `for await` over the result stops reading and returns the body's
 * iterator.
 *
 * Errors (AgentError): RESPONSE_MALFORMED when the body is not a JSON array, an element is not an
 * object (when `objectsOnly`), or the JSON is invalid or truncated; such errors carry a
 * non-enumerable `bodyPreview` (the first 2 KiB of the body as text, for DEBUG logs only).
 * RESPONSE_OBJECT_TOO_LARGE when one element passes `maxObjectBytes`. Messages never quote the body.
 *
 * With `objectsOnly: false` elements may be any JSON value, despite the element type.
 */
export async function* splitJsonArray(
  body: AsyncIterable<Uint8Array>,
  options: SplitOptions = {},
): AsyncGenerator<Record<string, unknown>> {
  const scanner = new ArrayScanner(
    options.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES,
    options.objectsOnly ?? true,
    options.label ?? 'access response',
  );
  let total = 0;
  for await (const chunk of body) {
    if (chunk.length === 0) continue;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    scanner.record(buf);
    scanner.base = total;
    total += buf.length;
    let pos = 0;
    for (;;) {
      const end = scanner.scan(buf, pos);
      if (end < 0) break;
      yield scanner.take(buf, end) as Record<string, unknown>;
      pos = end;
    }
  }
  scanner.end(total);
}
