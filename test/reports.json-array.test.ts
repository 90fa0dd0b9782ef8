import { describe, it, expect } from '@jest/globals';
import { Readable } from 'node:stream';
import { splitJsonArray, type SplitOptions } from '../src/reports/json-array.js';
import { AgentError } from '../src/errors.js';

async function* chunksOf(...parts: Array<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? Buffer.from(p) : p;
}

async function collect(body: AsyncIterable<Uint8Array>, options?: SplitOptions): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const o of splitJsonArray(body, options)) out.push(o);
  return out;
}

async function failure(body: AsyncIterable<Uint8Array>, options?: SplitOptions): Promise<AgentError> {
  try {
    await collect(body, options);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('expected splitJsonArray to throw');
}

/** Split `bytes` into pieces at the given cut positions. */
function cut(bytes: Buffer, ...at: number[]): Buffer[] {
  const edges = [0, ...at, bytes.length];
  return edges.slice(1).map((end, i) => bytes.subarray(edges[i], end));
}

const longText = 'x'.repeat(70);
// Strings holding ] } \" \\ escapes, unicode escapes, multi-byte characters, nested arrays, and
// strings past 64 bytes (the indexOf path) with backslash runs before their quotes.
const TRICKY = String.raw`  [ {"a]}": "x}]\"y{[", "b\\": "\\", "c": "\u00e9\ud83d\ude00\"", "d": "ü東京😀", "e": [[1, [2, {"f": "]"}]], []],
  "g": {"h": {}}, "i": "\\\"", "j": null, "k": -1.5e3, "l": true, "m": [],
  "long": "${longText}\\\\\"${longText}\\", "long2": "${longText}\"\\\\\\\"\\" },
  {"n": "\\"} ,{"":""}, {"o":{"p":[{"q":"]]]}}}"}]}} ]  `;
const TRICKY_BYTES = Buffer.from(TRICKY);
const TRICKY_VALUE = JSON.parse(TRICKY) as unknown[];

describe('splitJsonArray', () => {
  it('yields each element of an array, parsed', async () => {
    expect(await collect(chunksOf('[{"a":1},{"b":{"c":[1,2]}}]'))).toEqual([{ a: 1 }, { b: { c: [1, 2] } }]);
  });

  it('splits the tricky input like JSON.parse in one chunk, and in one-byte chunks', async () => {
    expect(TRICKY_VALUE).toHaveLength(4);
    expect(await collect(chunksOf(TRICKY_BYTES))).toEqual(TRICKY_VALUE);
    const bytes = Array.from({ length: TRICKY_BYTES.length }, (_, i) => TRICKY_BYTES.subarray(i, i + 1));
    expect(await collect(chunksOf(...bytes))).toEqual(TRICKY_VALUE);
  });

  it('splits the tricky input correctly with a chunk boundary at every byte position', async () => {
    for (let at = 1; at < TRICKY_BYTES.length; at++) {
      const got = await collect(chunksOf(...cut(TRICKY_BYTES, at)));
      if (JSON.stringify(got) !== JSON.stringify(TRICKY_VALUE)) throw new Error(`wrong split with a boundary at byte ${at}`);
    }
  });

  it('keeps multi-byte characters split across chunks, with two boundaries inside one character', async () => {
    const body = Buffer.from('[{"e":"😀"}]');
    const emoji = body.indexOf(Buffer.from('😀'));
    expect(await collect(chunksOf(...cut(body, emoji + 1, emoji + 3)))).toEqual([{ e: '😀' }]);
  });

  it('matches JSON.parse on random documents cut at random places', async () => {
    let seed = 42;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const alphabet = ['a', '"', '\\', ']', '}', '[', '{', ',', ':', 'ü', '😀', '\n', ' ', '\u0001'];
    const str = (): string => {
      const len = rand(4) === 0 ? 60 + rand(80) : rand(8);
      return Array.from({ length: len }, () => (rand(5) === 0 ? '\\'.repeat(1 + rand(4)) : alphabet[rand(alphabet.length)]!)).join('');
    };
    const value = (depth: number): unknown => {
      const k = rand(depth > 3 ? 4 : 6);
      if (k === 0) return str();
      if (k === 1) return rand(1000) - 500;
      if (k === 2) return rand(2) === 0 ? null : true;
      if (k === 3) return str() + str();
      if (k === 4) return Array.from({ length: rand(4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: rand(4) }, () => [str(), value(depth + 1)]));
    };
    for (let round = 0; round < 200; round++) {
      const elements = Array.from({ length: 1 + rand(5) }, () => Object.fromEntries([[str(), value(0)], [str(), value(0)]]));
      const body = Buffer.from(JSON.stringify(elements, null, rand(2) === 0 ? 0 : 1));
      const cuts = Array.from({ length: rand(6) }, () => rand(body.length)).sort((a, b) => a - b);
      expect(await collect(chunksOf(...cut(body, ...cuts)))).toEqual(elements);
    }
  });

  it('accepts an empty array, surrounding whitespace and a UTF-8 BOM (even split across chunks)', async () => {
    expect(await collect(chunksOf('[]'))).toEqual([]);
    expect(await collect(chunksOf(' \n\t[ \r\n ]\n '))).toEqual([]);
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    expect(await collect(chunksOf(Buffer.concat([bom, Buffer.from('\n[{"a":1}]')])))).toEqual([{ a: 1 }]);
    expect(await collect(chunksOf(bom.subarray(0, 1), bom.subarray(1), '[{"a":1}]'))).toEqual([{ a: 1 }]);
  });

  it('accepts plain Uint8Array chunks and a Node Readable', async () => {
    const u8 = new Uint8Array(Buffer.from('[{"a":"ü"}]'));
    expect(await collect(chunksOf(u8.subarray(0, 8), u8.subarray(8)))).toEqual([{ a: 'ü' }]);
    expect(await collect(Readable.from([Buffer.from('[{"a":'), Buffer.from('1}]')]))).toEqual([{ a: 1 }]);
  });

  it('yields any JSON value when objectsOnly is false', async () => {
    const body = '[1, "s]\\"", null, true, [1,[2]], {"a":1}, -2.5e3,false]';
    expect(await collect(chunksOf(body), { objectsOnly: false })).toEqual(JSON.parse(body));
    expect(await collect(chunksOf(...cut(Buffer.from(body), 2, 9, 17)), { objectsOnly: false })).toEqual(JSON.parse(body));
  });
});

describe('splitJsonArray errors', () => {
  it.each([
    ['{"first_name":"Peter"}', 'got an object'],
    ['"Peter"', 'got a string'],
    ['42', 'got a number'],
    ['true', 'got a boolean'],
    ['null', 'got null'],
    ['<html>Peter</html>', 'got invalid JSON'],
    ['', 'got an empty body'],
    ['  \n', 'got an empty body'],
  ])('rejects a body that is not an array (%j) with RESPONSE_MALFORMED', async (body, got) => {
    const err = await failure(chunksOf(body));
    expect(err.code).toBe('RESPONSE_MALFORMED');
    expect(err.message).toContain(`access response must be a JSON array of objects; ${got}`);
    expect(err.message).toContain('LOGLEVEL=DEBUG');
    expect(err.message).not.toContain('Peter');
  });

  it('attaches the first 2 KiB of the body as a non-enumerable bodyPreview', async () => {
    const body = '{"name":"Peter Gibbons","pad":"' + 'ü'.repeat(3000) + '"}';
    const err = await failure(chunksOf(body.slice(0, 100), body.slice(100)));
    const preview = (err as AgentError & { bodyPreview: string }).bodyPreview;
    expect(Buffer.from(preview).length).toBeLessThanOrEqual(2048 + 2);
    expect(preview.startsWith('{"name":"Peter Gibbons","pad":"üü')).toBe(true);
    expect(Object.keys(err)).not.toContain('bodyPreview');
    expect(JSON.stringify(err)).not.toContain('Peter');
    expect(JSON.stringify({ ...err })).not.toContain('Peter');
  });

  it.each([
    ['[1, 2]', 'element 1 is a number'],
    ['[{}, [{"a":1}]]', 'element 2 is an array'],
    ['[{}, {}, null]', 'element 3 is null'],
    ['[{}, "Peter"]', 'element 2 is a string'],
    ['[{}, false]', 'element 2 is a boolean'],
  ])('rejects a non-object element in %j, naming its index and type', async (body, what) => {
    const err = await failure(chunksOf(body));
    expect(err.code).toBe('RESPONSE_MALFORMED');
    expect(err.message).toContain(`access response must be a JSON array of objects; ${what}`);
    expect(err.message).not.toContain('Peter');
  });

  it.each([
    ['a truncated body', '[{"a": 1}, {"b": ', 'the body ended at byte 17, before the array was closed'],
    ['a body ending inside a string', '[{"a": "Pet', 'the body ended at byte 11'],
    ['a body ending after an element', '[{"a": 1}', 'the body ended at byte 9'],
    ['a body of just "["', '[', 'the body ended at byte 1'],
    ['a bad value inside an element', '[{"a": 1}, {"ü": 1 2}]', `element 2 does not parse: Expected ',' or '}' after property value at byte 20`],
    ['a bad token inside an element', '[{"a": Peter}]', 'element 1 (starting at byte 1) does not parse'],
    ['a trailing comma', '[{},]', 'a value is missing at byte 4'],
    ['a leading comma', '[,{}]', 'a value is missing at byte 1'],
    ['a missing comma', '[{} {}]', '"," or "]" expected after element 1, at byte 4'],
    ['data after the array', '[{}] Peter', 'unexpected data after the end of the array, at byte 5'],
    ['a second array', '[{}][{}]', 'unexpected data after the end of the array, at byte 4'],
    ['an incomplete BOM', '\xef\xbb[]', 'incomplete byte order mark'],
    ['a bare word element', '[Peter]', 'element 1 is not a JSON value (byte 1)'],
  ])('rejects %s with RESPONSE_MALFORMED and a byte offset', async (_what, body, message) => {
    const bytes = Buffer.from(body, body.startsWith('\xef') ? 'latin1' : 'utf8');
    const err = await failure(chunksOf(bytes));
    expect(err.code).toBe('RESPONSE_MALFORMED');
    expect(err.message).toContain(`access response is not valid JSON: ${message}`);
    expect(err.message).not.toContain('Peter');
    expect((err as AgentError & { bodyPreview: string }).bodyPreview).toBe(bytes.toString('utf8'));
  });

  it('names the body in messages after options.label', async () => {
    const err = await failure(chunksOf('{}'), { label: 'identifiers response' });
    expect(err.message).toContain('identifiers response must be a JSON array of objects; got an object');
  });

  it('accepts an element of exactly maxObjectBytes and rejects one byte more, naming index and cap', async () => {
    const exact = JSON.stringify({ v: 'x'.repeat(92) }); // 100 bytes
    expect(Buffer.byteLength(exact)).toBe(100);
    expect(await collect(chunksOf(`[{}, ${exact}]`), { maxObjectBytes: 100 })).toHaveLength(2);
    const err = await failure(chunksOf(`[{}, ${exact.replace('"x', '"xx')}]`), { maxObjectBytes: 100 });
    expect(err.code).toBe('RESPONSE_OBJECT_TOO_LARGE');
    expect(err.message).toBe(
      'access response element 2 is larger than the 0.00 MiB (100 bytes) cap on one object; set agent.max_object_bytes higher to accept it',
    );
    const mib = await failure(chunksOf(`[{"a":"${'x'.repeat(1024 * 1024)}"}]`), { maxObjectBytes: 1024 * 1024 });
    expect(mib.message).toContain('element 1 is larger than the 1 MiB cap');
  });

  it('stops reading a too-large element as soon as the cap is passed', async () => {
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('[{"a":1},{"big":"');
      const chunk = Buffer.alloc(64 * 1024, 'x');
      for (;;) {
        pulled++;
        yield chunk;
      }
    }
    const err = await failure(endless(), { maxObjectBytes: 1024 * 1024 });
    expect(err.code).toBe('RESPONSE_OBJECT_TOO_LARGE');
    expect(pulled).toBe(16); // the element's 8 bytes in the head + 16 × 64 KiB pass 1 MiB
  });
});

describe('splitJsonArray early exit', () => {
  it('returns the body iterator when the consumer breaks, even on a body that never ends', async () => {
    let finished = false;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        yield Buffer.from('[');
        for (let i = 0; ; i++) yield Buffer.from(`{"i":${i}},`);
      } finally {
        finished = true;
      }
    }
    const seen: unknown[] = [];
    for await (const o of splitJsonArray(endless())) {
      seen.push(o);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    expect(finished).toBe(true);
  });

  it('destroys a Readable body when the consumer breaks', async () => {
    const body = Readable.from((function* () {
      yield Buffer.from('[{"a":1},{"a":2}');
      for (;;) yield Buffer.from(',{"a":3}');
    })());
    for await (const o of splitJsonArray(body)) {
      expect(o).toEqual({ a: 1 });
      break;
    }
    expect(body.destroyed).toBe(true);
  });

  it('returns the body iterator when an element is malformed mid-stream', async () => {
    let finished = false;
    async function* body(): AsyncGenerator<Uint8Array> {
      try {
        yield Buffer.from('[{"a":1},');
        yield Buffer.from('7,');
        yield Buffer.from('{"a":2}]');
      } finally {
        finished = true;
      }
    }
    const seen: unknown[] = [];
    await expect(
      (async () => {
        for await (const o of splitJsonArray(body())) seen.push(o);
      })(),
    ).rejects.toMatchObject({ code: 'RESPONSE_MALFORMED' });
    expect(seen).toEqual([{ a: 1 }]);
    expect(finished).toBe(true);
  });
});
