/**
 * Streaming read of a JSON response body: the records at an RFC 6901 pointer inside an envelope
 * (`{"status":"success","response":[…],"meta":{…}}`) and a few small values at other pointers, in
 * one pass. Memory is bounded by the largest record or captured value: members on no requested
 * path are validated byte by byte and dropped, and the records array is split by ArrayScanner.
 */
import { AgentError, ErrorCodes } from '../errors.js';
import { ABSENT, formatPointer, isWithin, valueAt } from '../json-pointer.js';
import { ArrayScanner, describeCap, describeStart } from './array-scanner.js';

/** Options of {@link readJsonBody}. */
export interface ReadJsonBodyOptions {
  /** Parsed pointer tokens of the records; undefined: no records are read (only captures). [] = the whole body. */
  readonly records?: readonly string[];
  /** The records pointer as written in the config, for messages (e.g. "/response"). */
  readonly recordsText?: string;
  /** Parsed pointers whose values are captured. The caller guarantees none is inside `records`. */
  readonly capture?: ReadonlyArray<readonly string[]>;
  /** Largest single record or captured value, in bytes. */
  readonly maxObjectBytes: number;
  /** What the body is, for messages: "access response", "identifiers response", "response". */
  readonly label: string;
}

/** What {@link readJsonBody} found. */
export interface JsonBodyResult {
  /** What stood at the records pointer: 'array' | 'object' | 'null'; undefined when records was not asked for. */
  readonly recordsKind?: 'array' | 'object' | 'null';
  /** Records delivered to onRecord. */
  readonly count: number;
  /** One entry per `capture` pointer, same order: the parsed JSON value, or ABSENT when the body has nothing there. */
  readonly values: unknown[];
}

// Tokenizer states.
const START = 0;
const VALUE = 1;
const KEY = 2;
const COLON = 3;
const AFTER = 4;
const STRING = 5;
const NUMBER = 6;
const LITERAL = 7;
const DONE = 8;
// Number grammar: NUMBER_NEXT[state][byte class], -1 ending the number. States: 0 after "-", 1 a
// leading "0", 2 integer digits, 3 ".", 4 fraction digits, 5 "e", 6 exponent sign, 7 exponent
// digits. Byte classes: "0", "1"-"9", ".", "e"/"E", "+", "-".
const NUMBER_NEXT = [
  [1, 2, -1, -1, -1, -1],
  [-1, -1, 3, 5, -1, -1],
  [2, 2, 3, 5, -1, -1],
  [4, 4, -1, -1, -1, -1],
  [4, 4, -1, 5, -1, -1],
  [7, 7, -1, -1, 6, 6],
  [7, 7, -1, -1, -1, -1],
  [7, 7, -1, -1, -1, -1],
];
const NUMBER_COMPLETE = [false, true, true, false, true, false, false, true];
const numberClass = (c: number): number =>
  c === 0x30 ? 0 : c > 0x30 && c <= 0x39 ? 1 : c === 0x2e ? 2 : (c | 0x20) === 0x65 ? 3 : c === 0x2b ? 4 : c === 0x2d ? 5 : -1;
/** Nesting cap of the envelope and skipped values; records and captures are parsed by JSON.parse. */
const MAX_DEPTH = 100_000;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const LBRACKET = 0x5b;
const BOM = [0xef, 0xbb, 0xbf];
const LITERALS: Record<number, Buffer> = { 0x74: Buffer.from('true'), 0x66: Buffer.from('false'), 0x6e: Buffer.from('null') };
const ESCAPES = new Set([...'"\\/bfnrt'].map((ch) => ch.charCodeAt(0)));
const EMPTY = Buffer.alloc(0);

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);

/** A tracked container: one on the path to some requested pointer. */
interface Frame {
  /** Indexes into `ptrs` of the pointers that run through this container. */
  readonly live: number[];
  /** Arrays: the next element's index. */
  index: number;
  /** Objects: the pointers through the member whose name was just read. */
  next: number[];
}

/** The bytes of one key or value as they arrive: slices of the body's chunks, not copies. */
class Slices {
  private parts: Buffer[] = [];
  private size = 0;
  /** Where the bytes start in the current chunk; -1 when not collecting. */
  start = -1;

  open(at: number): void {
    this.parts = [];
    this.size = 0;
    this.start = at;
  }

  /** The chunk ran out: keep its tail. Past `limit` bytes only the size is counted; returns it. */
  keep(buf: Buffer, limit: number): number {
    this.size += buf.length - this.start;
    if (this.size <= limit) this.parts.push(this.start === 0 ? buf : buf.subarray(this.start));
    else this.parts = [];
    this.start = 0;
    return this.size;
  }

  /** The bytes up to `end` as text, or undefined past `limit` bytes; stops collecting. */
  close(buf: Buffer, end: number, limit: number): string | undefined {
    const size = this.size + end - this.start;
    const piece = buf.subarray(this.start, end);
    const parts = this.parts;
    this.parts = [];
    this.start = -1;
    if (size > limit) return undefined;
    return (parts.length === 0 ? piece : Buffer.concat([...parts, piece], size)).toString('utf8');
  }
}

/**
 * Read a JSON body once: deliver the records at `opts.records` to `onRecord` (awaited, one at a
 * time, so a slow sink slows reading) and return the values at `opts.capture`. At the records
 * pointer an array gives one record per element (each must be an object), an object one record,
 * `null` none. A UTF-8 BOM and surrounding whitespace are accepted.
 *
 * Errors (AgentError): RESPONSE_MALFORMED for invalid, truncated or empty JSON, nothing or a
 * scalar at the records pointer, a non-object element, or a duplicate key on the records path
 * (records already delivered cannot be taken back); these carry the non-enumerable `bodyPreview`
 * and never quote the body. RESPONSE_OBJECT_TOO_LARGE when a record or captured value passes
 * `maxObjectBytes`. TypeError when a capture pointer overlaps the records pointer.
 */
export async function readJsonBody(
  body: AsyncIterable<Uint8Array>,
  opts: ReadJsonBodyOptions,
  onRecord: (record: Record<string, unknown>) => void | Promise<void>,
): Promise<JsonBodyResult> {
  const reader = new BodyReader(opts);
  const scanner = reader.scanner;
  let total = 0;
  for await (const chunk of body) {
    if (chunk.length === 0) continue;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    scanner.record(buf);
    scanner.base = reader.base = total;
    total += buf.length;
    let pos = 0;
    while (pos < buf.length) {
      let record: Record<string, unknown> | undefined;
      if (!reader.inRecords) {
        pos = reader.run(buf, pos);
        record = reader.record;
        reader.record = undefined;
      } else {
        const end = scanner.scan(buf, pos);
        if (end >= 0) {
          record = scanner.take(buf, end) as Record<string, unknown>;
          pos = end;
        } else if (scanner.closedAt >= 0) {
          pos = reader.closeRecords(buf);
        } else {
          break;
        }
      }
      if (record !== undefined) {
        reader.count++;
        const pending = onRecord(record);
        if (pending !== undefined) await pending;
      }
    }
    reader.flush(buf);
  }
  return reader.end(total);
}

/** The envelope tokenizer: a validating JSON state machine that follows only the requested paths. */
class BodyReader {
  readonly scanner: ArrayScanner;
  base = 0;
  count = 0;
  inRecords = false;
  /** A record object that completed; the caller delivers it. */
  record: Record<string, unknown> | undefined;
  private readonly label: string;
  private readonly max: number;
  /** Capture pointers, then the records pointer (at index `rec`, -1 when none). */
  private readonly ptrs: ReadonlyArray<readonly string[]>;
  private readonly all: number[];
  private readonly rec: number;
  private readonly recText: string;
  private readonly keyLimit: number;
  private readonly values: unknown[];
  private recordsKind: 'array' | 'object' | 'null' | undefined;
  private state = START;
  private allowClose = false;
  private bomSeen = 0;
  private readonly stack: number[] = [];
  private readonly frames: Frame[] = [];
  private num = 0;
  private lit: Buffer = EMPTY;
  private litPos = 0;
  /** 0: plain; 1: after a backslash; 5..2: \u hex digits to come. */
  private esc = 0;
  private isKey = false;
  /** A member name of a tracked object, kept to be compared with the pointers. */
  private readonly key = new Slices();
  private readonly capture = new Slices();
  /** Path length of the value being captured (a capture or a record object), or -1. */
  private capDepth = -1;
  /** The pointers the captured value serves: captures at or inside it, or just the records. */
  private capLive: number[] = [];

  constructor(opts: ReadJsonBodyOptions) {
    const capture = opts.capture ?? [];
    for (const c of capture) {
      if (opts.records && (isWithin(c, opts.records) || isWithin(opts.records, c))) {
        throw new TypeError(`capture pointer "${formatPointer(c)}" overlaps the records pointer`);
      }
    }
    this.ptrs = opts.records ? [...capture, opts.records] : capture;
    this.rec = opts.records ? capture.length : -1;
    this.all = this.ptrs.map((_, i) => i);
    this.recText = opts.recordsText ?? formatPointer(opts.records ?? []);
    this.label = opts.label;
    this.max = opts.maxObjectBytes;
    this.values = capture.map(() => ABSENT);
    // A raw key takes at most 6 bytes (\u0041) per byte of its decoded UTF-8 name.
    this.keyLimit = 6 * Math.max(0, ...this.ptrs.flat().map((t) => Buffer.byteLength(t))) + 6;
    this.scanner = new ArrayScanner(this.max, true, this.label);
  }

  private bad(what: string, i: number): AgentError {
    return this.scanner.invalid(`${what} at byte ${this.base + i}`);
  }

  /** Tokenize `buf` from `from`; returns early when the records array opens or a record object completes. */
  run(buf: Buffer, from: number): number {
    const n = buf.length;
    let i = from;
    while (i < n) {
      const state = this.state;
      if (state === STRING) {
        i = this.string(buf, i);
        continue;
      }
      const c = buf[i]!;
      if (state === NUMBER) {
        if (this.number(c, i)) i++;
        else this.valueEnd(buf, i);
        continue;
      }
      if (state === LITERAL) {
        if (c !== this.lit[this.litPos]) throw this.bad('an invalid literal', i);
        if (++this.litPos === this.lit.length) this.valueEnd(buf, i + 1);
        i++;
        continue;
      }
      if (isSpace(c)) {
        i++;
        continue;
      }
      // The stack holds each container's opening byte; its closing byte is 2 more.
      const top = this.stack[this.stack.length - 1]!;
      switch (state) {
        case VALUE:
          i = c === 0x5d && this.allowClose ? this.close(buf, i) : this.value(buf, i, c);
          break;
        case AFTER:
          if (c === 0x2c) {
            this.state = top === LBRACE ? KEY : VALUE;
            this.allowClose = false;
            i++;
          } else if (c === top + 2) {
            i = this.close(buf, i);
          } else {
            throw this.bad(`"," or "${String.fromCharCode(top + 2)}" expected`, i);
          }
          break;
        case KEY:
          if (c === QUOTE) {
            this.state = STRING;
            this.isKey = true;
            if (this.stack.length === this.frames.length) this.key.open(i + 1);
            i++;
          } else if (c === 0x7d && this.allowClose) {
            i = this.close(buf, i);
          } else {
            throw this.bad('a member name (a string) expected', i);
          }
          break;
        case COLON:
          if (c !== 0x3a) throw this.bad('":" expected', i);
          this.state = VALUE;
          this.allowClose = false;
          i++;
          break;
        case START:
          if (this.base + i === this.bomSeen && this.bomSeen < 3 && c === BOM[this.bomSeen]) {
            this.bomSeen++;
            i++;
          } else if (this.bomSeen === 1 || this.bomSeen === 2) {
            throw this.bad('incomplete byte order mark', i);
          } else {
            this.state = VALUE;
          }
          break;
        default:
          throw this.bad('unexpected data after the end of the JSON value,', i);
      }
      if (this.inRecords || this.record !== undefined) return i;
    }
    return n;
  }

  /** A value starts at `buf[i]`: follow it when it is on a requested path, else just validate it. */
  private value(buf: Buffer, i: number, c: number): number {
    const d = this.stack.length;
    if (d !== this.frames.length) return this.begin(i, c);
    let live = this.all;
    if (d > 0) {
      const f = this.frames[d - 1]!;
      if (this.stack[d - 1] === LBRACE) live = f.next;
      else {
        const t = String(f.index++);
        live = f.live.filter((p) => this.ptrs[p]![d - 1] === t);
      }
    }
    if (live.length === 0) return this.begin(i, c);
    for (const p of live) if (p !== this.rec) this.values[p] = ABSENT; // a later duplicate key wins
    if (this.rec >= 0 && live.includes(this.rec)) {
      if (this.recordsKind !== undefined) {
        throw this.scanner.malformed(
          `${this.label} has a duplicate key on the path to records pointer "${this.recText}"; records already delivered cannot be taken back`,
        );
      }
      if (this.ptrs[this.rec]!.length === d) return this.atRecords(buf, i, c, d);
    }
    if (live.some((p) => this.ptrs[p]!.length === d)) {
      this.startCapture(i, d, live);
    } else if (c === LBRACE || c === LBRACKET) {
      const next = this.begin(i, c);
      this.frames.push({ live, index: 0, next: [] });
      return next;
    }
    return this.begin(i, c);
  }

  private atRecords(buf: Buffer, i: number, c: number, d: number): number {
    if (c === LBRACKET) {
      this.recordsKind = 'array';
      this.inRecords = true;
      this.scanner.open(d === 0 ? '' : ` at records pointer "${this.recText}"`);
      return i + 1;
    }
    if (c === LBRACE) {
      this.recordsKind = 'object';
      this.startCapture(i, d, [this.rec]);
    } else if (c === 0x6e) {
      this.recordsKind = 'null';
    } else if (describeStart(c) !== 'invalid JSON') {
      throw this.scanner.malformed(
        `${this.label} has ${describeStart(c)} at records pointer "${this.recText}", where an array of objects, an object or null was expected; check the pointer (records) against the response`,
      );
    }
    return this.begin(i, c);
  }

  private startCapture(i: number, d: number, live: number[]): void {
    this.capDepth = d;
    this.capLive = live;
    this.capture.open(i);
  }

  /** Enter the value starting with `c`; returns the position after its first byte. */
  private begin(i: number, c: number): number {
    if (c === LBRACE || c === LBRACKET) {
      if (this.stack.length >= MAX_DEPTH) throw this.bad(`nesting deeper than ${MAX_DEPTH} levels`, i);
      this.stack.push(c);
      this.state = c === LBRACE ? KEY : VALUE;
      this.allowClose = true;
    } else if (c === QUOTE) {
      this.state = STRING;
      this.isKey = false;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      this.state = NUMBER;
      this.num = c === 0x2d ? 0 : c === 0x30 ? 1 : 2;
    } else if (LITERALS[c]) {
      this.state = LITERAL;
      this.lit = LITERALS[c];
      this.litPos = 1;
    } else {
      throw this.bad('a value expected', i);
    }
    return i + 1;
  }

  private close(buf: Buffer, i: number): number {
    this.stack.pop();
    if (this.frames.length > this.stack.length) this.frames.pop();
    this.valueEnd(buf, i + 1);
    return i + 1;
  }

  /** A value ended just before `end`. */
  private valueEnd(buf: Buffer, end: number): void {
    if (this.capDepth === this.stack.length) this.endCapture(buf, end);
    this.state = this.stack.length === 0 ? DONE : AFTER;
  }

  /** Continue a string at `from`; returns the position after its closing quote, or the chunk's end. */
  private string(buf: Buffer, from: number): number {
    const n = buf.length;
    let i = from;
    while (i < n) {
      const esc = this.esc;
      if (esc === 0) {
        let c = 0;
        while (i < n && (c = buf[i]!) !== QUOTE && c !== BACKSLASH && c >= 0x20) i++;
        if (i === n) return n;
        if (c === QUOTE) return this.stringEnd(buf, i);
        if (c !== BACKSLASH) throw this.bad('an unescaped control character in a string', i);
        this.esc = 1;
      } else if (esc === 1) {
        const c = buf[i]!;
        if (c === 0x75) this.esc = 5;
        else if (ESCAPES.has(c)) this.esc = 0;
        else throw this.bad('an invalid escape in a string', i);
      } else {
        if (!isHex(buf[i]!)) throw this.bad('an invalid \\u escape in a string', i);
        this.esc = esc === 2 ? 0 : esc - 1;
      }
      i++;
    }
    return n;
  }

  private stringEnd(buf: Buffer, q: number): number {
    if (!this.isKey) {
      this.valueEnd(buf, q + 1);
      return q + 1;
    }
    this.state = COLON;
    if (this.key.start >= 0) {
      const d = this.stack.length - 1;
      const f = this.frames[d]!;
      const raw = this.key.close(buf, q, this.keyLimit);
      const key = raw?.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
      f.next = key === undefined ? [] : f.live.filter((p) => this.ptrs[p]![d] === key);
    }
    return q + 1;
  }

  /** Consume `c` into the number, or return false when it ends the number (a complete one). */
  private number(c: number, i: number): boolean {
    const k = numberClass(c);
    const next = k < 0 ? -1 : NUMBER_NEXT[this.num]![k]!;
    if (next >= 0) this.num = next;
    else if (!NUMBER_COMPLETE[this.num]) throw this.bad('an invalid number', i);
    return next >= 0;
  }

  private tooLarge(): AgentError {
    const what = this.capLive[0] === this.rec
      ? `the record at records pointer "${this.recText}"`
      : `the value at "${formatPointer(this.ptrs[this.capLive[0]!]!.slice(0, this.capDepth))}"`;
    return new AgentError(
      ErrorCodes.RESPONSE_OBJECT_TOO_LARGE,
      `${this.label}: ${what} is larger than the ${describeCap(this.max)} cap on one object; set agent.max_object_bytes higher to accept it`,
    );
  }

  private endCapture(buf: Buffer, end: number): void {
    const text = this.capture.close(buf, end, this.max);
    if (text === undefined) throw this.tooLarge();
    const depth = this.capDepth;
    this.capDepth = -1;
    // The tokenizer has validated the bytes, so this parses.
    const value: unknown = JSON.parse(text);
    if (this.capLive[0] === this.rec) this.record = value as Record<string, unknown>;
    else for (const p of this.capLive) this.values[p] = valueAt(value, this.ptrs[p]!.slice(depth));
  }

  /** The records array closed (`scanner.closedAt`); resume the envelope there. */
  closeRecords(buf: Buffer): number {
    this.inRecords = false;
    const at = this.scanner.closedAt;
    this.valueEnd(buf, at);
    return at;
  }

  /** The chunk is used up: keep the slices of a value being captured and of a kept key. */
  flush(buf: Buffer): void {
    if (this.capture.start >= 0 && this.capture.keep(buf, this.max) > this.max) throw this.tooLarge();
    if (this.key.start >= 0) this.key.keep(buf, this.keyLimit);
  }

  /** The body ended after `total` bytes: check it was one complete JSON value. */
  end(total: number): JsonBodyResult {
    if (this.inRecords) this.scanner.end(total);
    if (this.state === NUMBER) {
      if (!NUMBER_COMPLETE[this.num]) throw this.bad('an invalid number', total - this.base);
      this.valueEnd(EMPTY, 0);
    }
    if (this.state === START) {
      if (this.bomSeen === 1 || this.bomSeen === 2) throw this.bad('incomplete byte order mark', total - this.base);
      throw this.scanner.malformed(`${this.label} is empty; a JSON value was expected`);
    }
    if (this.state !== DONE) {
      throw this.scanner.invalid(`the body ended at byte ${total}, before the JSON value was complete (truncated response?)`);
    }
    if (this.rec >= 0 && this.recordsKind === undefined) {
      const err = this.scanner.malformed(
        `${this.label} has nothing at records pointer "${this.recText}"; check the pointer (records) against the response`,
      );
      // The body was read whole: the caller may still want the captures (GraphQL's `errors` explain a missing `data`).
      Object.defineProperty(err, 'captured', { value: this.values, enumerable: false });
      throw err;
    }
    return { recordsKind: this.recordsKind, count: this.count, values: this.values };
  }
}
