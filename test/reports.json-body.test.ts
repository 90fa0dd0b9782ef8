import { describe, it, expect } from '@jest/globals';
import { Readable } from 'node:stream';
import { readJsonBody, type JsonBodyResult, type ReadJsonBodyOptions } from '../src/reports/json-body.js';
import { splitJsonArray } from '../src/reports/json-array.js';
import { ABSENT, parsePointer, valueAt } from '../src/json-pointer.js';
import { AgentError } from '../src/errors.js';

type Options = Omit<Partial<ReadJsonBodyOptions>, 'records' | 'capture'> & { records?: readonly string[] | string; capture?: ReadonlyArray<readonly string[] | string> };

async function* chunksOf(...parts: Array<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? Buffer.from(p) : p;
}

/** Split `bytes` into pieces at the given cut positions. */
function cut(bytes: Buffer, ...at: number[]): Buffer[] {
  const edges = [0, ...at, bytes.length];
  return edges.slice(1).map((end, i) => bytes.subarray(edges[i], end));
}

const bytesOf = (bytes: Buffer): Buffer[] => Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));

/** Pointers may be given as text ("/meta/total"); they are parsed like the config does. */
function options(o: Options): ReadJsonBodyOptions {
  const ptr = (p: readonly string[] | string) => (typeof p === 'string' ? parsePointer(p) : p);
  return {
    maxObjectBytes: 1024 * 1024,
    label: 'access response',
    ...o,
    records: o.records === undefined ? undefined : ptr(o.records),
    recordsText: o.recordsText ?? (typeof o.records === 'string' ? o.records : undefined),
    capture: o.capture?.map(ptr),
  };
}

async function read(body: AsyncIterable<Uint8Array>, o: Options = {}): Promise<{ records: unknown[] } & JsonBodyResult> {
  const records: unknown[] = [];
  const result = await readJsonBody(body, options(o), (r) => {
    records.push(r);
  });
  return { ...result, records };
}

async function failure(body: AsyncIterable<Uint8Array>, o: Options = {}): Promise<AgentError & { bodyPreview?: string }> {
  try {
    await read(body, o);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('expected readJsonBody to throw');
}

const ENVELOPE = '{"code":200,"status":"success","response":[{"a":1},{"b":{"c":[1,2]}}],"meta":{"total":5,"next":"c2"}}';

describe('readJsonBody records', () => {
  it('reads the records at a pointer and captures values before and after them', async () => {
    const got = await read(chunksOf(ENVELOPE), { records: '/response', capture: ['/status', '/meta/total', '/meta/next', '/code', '/missing'] });
    expect(got).toEqual({ recordsKind: 'array', count: 2, records: [{ a: 1 }, { b: { c: [1, 2] } }], values: ['success', 5, 'c2', 200, ABSENT] });
  });

  it('reads a bare array with records "" exactly like splitJsonArray', async () => {
    const body = ' \n[ {"a]}": "x}]\\"y{[", "b": [[1, [2, {"f": "]"}]], []]}, {"c": "ü東京😀"} , {} ]\n ';
    const expected: unknown[] = [];
    for await (const o of splitJsonArray(chunksOf(body))) expected.push(o);
    expect(await read(chunksOf(body), { records: '' })).toEqual({ recordsKind: 'array', count: 3, records: expected, values: [] });
    const err = await failure(chunksOf('[{}, "Peter"]'), { records: '' });
    expect(err.message).toContain('access response must be a JSON array of objects; element 2 is a string');
  });

  it('takes an object at the records pointer as one record, and null as none', async () => {
    expect(await read(chunksOf('{"response":{"id":1,"tags":["]"]}}'), { records: '/response' })).toMatchObject({
      recordsKind: 'object', count: 1, records: [{ id: 1, tags: [']'] }],
    });
    expect(await read(chunksOf('{"response":{}}'), { records: '/response' })).toMatchObject({ recordsKind: 'object', records: [{}] });
    expect(await read(chunksOf(' {"id":1} '), { records: '' })).toMatchObject({ recordsKind: 'object', records: [{ id: 1 }] });
    expect(await read(chunksOf('{"response":null,"status":"ok"}'), { records: '/response', capture: ['/status'] })).toEqual({
      recordsKind: 'null', count: 0, records: [], values: ['ok'],
    });
    expect(await read(chunksOf('null'), { records: '' })).toMatchObject({ recordsKind: 'null', count: 0 });
    expect(await read(chunksOf('{"response":[]}'), { records: '/response' })).toMatchObject({ recordsKind: 'array', count: 0 });
  });

  it('follows nested pointers, array indexes and ~0 ~1 escapes', async () => {
    const body = '{"data":[{"items":[{"x":0}]},{"items":[{"x":1},{"x":2}]}],"a/b":{"c~d":[{"y":1}]},"pages":{"0":{"n":7}}}';
    expect((await read(chunksOf(body), { records: '/data/1/items' })).records).toEqual([{ x: 1 }, { x: 2 }]);
    expect((await read(chunksOf(body), { records: '/data/0/items' })).records).toEqual([{ x: 0 }]);
    expect((await read(chunksOf(body), { records: '/a~1b/c~0d' })).records).toEqual([{ y: 1 }]);
    expect((await read(chunksOf(body), { records: '/data/1' })).records).toEqual([{ items: [{ x: 1 }, { x: 2 }] }]);
    const got = await read(chunksOf(body), { records: '/a~1b/c~0d', capture: ['/pages/0/n', '/data/1/items/1/x', '/data/01', '/data/2', '/data/0/items/0'] });
    expect(got.values).toEqual([7, 2, ABSENT, ABSENT, { x: 0 }]);
  });

  it('compares member names after decoding their escapes', async () => {
    const body = String.raw`{"st\u0061tus":"a","resp\u006fnse":[{"k":1}],"\u00e9t\u00c9":1,"😀\ud83d\ude00":2,"a\/b\"c\\":3,"\u0072esponse2":{"x":4}}`;
    const got = await read(chunksOf(body), { records: '/response', capture: ['/status', '/étÉ', '/😀😀', '/a~1b"c\\', '/response2/x'] });
    expect(got).toEqual({ recordsKind: 'array', count: 1, records: [{ k: 1 }], values: ['a', 1, 2, 3, 4] });
  });

  it('captures containers whole, overlapping pointers, every scalar type, and the whole body', async () => {
    const body = '{"meta":{"total":5,"pages":[1,{"n":2}]},"s":"x","n":-1.5e3,"t":true,"f":false,"z":null,"e":{},"a":[]}';
    const got = await read(chunksOf(body), { capture: ['/meta', '/meta/pages/1/n', '/s', '/n', '/t', '/f', '/z', '/e', '/a', '/meta'] });
    expect(got.values).toEqual([{ total: 5, pages: [1, { n: 2 }] }, 2, 'x', -1500, true, false, null, {}, [], { total: 5, pages: [1, { n: 2 }] }]);
    expect(got.recordsKind).toBeUndefined();
    expect((await read(chunksOf(body), { capture: [''] })).values).toEqual([JSON.parse(body)]);
    expect((await read(chunksOf(' 42 '), { capture: ['', '/x'] })).values).toEqual([42, ABSENT]);
    expect((await read(chunksOf('"s"'), { capture: [''] })).values).toEqual(['s']);
  });

  it('lets the last of duplicate keys win for captures, like JSON.parse', async () => {
    const body = '{"status":"a","meta":{"total":5,"next":"n"},"status":"b","meta":{"total":6},"x":{"y":1},"x":3}';
    const got = await read(chunksOf(body), { capture: ['/status', '/meta/total', '/meta/next', '/x/y', '/meta'] });
    expect(got.values).toEqual(['b', 6, ABSENT, ABSENT, { total: 6 }]);
  });

  it('reads only captures when records is not asked for, checking the whole body', async () => {
    expect(await read(chunksOf('{"status":"success","response":true}'), { capture: ['/status', '/response'] })).toEqual({
      recordsKind: undefined, count: 0, records: [], values: ['success', true],
    });
    expect(await read(chunksOf('[1,2,3]'), {})).toEqual({ recordsKind: undefined, count: 0, records: [], values: [] });
    const err = await failure(chunksOf('{"status":"success"} Peter'), { capture: ['/status'] });
    expect(err.message).toContain('access response is not valid JSON: unexpected data after the end of the JSON value, at byte 21');
  });

  it('skips members on no requested path, however tricky, before and after the records', async () => {
    const tricky = String.raw`{"a]}": "x}]\"y{[", "b\\": "\\", "c": "\u00e9\ud83d\ude00\"", "e": [[1, [2, {"f": "]"}]], []], "l": "${'x'.repeat(70)}\\\"\\"}`;
    const body = `{"skip":${tricky},"list":[${tricky},1,"]",null],"response":[{"i":1}],"after":${tricky},"meta":{"total":1}}`;
    const got = await read(chunksOf(body), { records: '/response', capture: ['/meta/total'] });
    expect(got).toEqual({ recordsKind: 'array', count: 1, records: [{ i: 1 }], values: [1] });
  });

  it('gives the same result with a chunk boundary at every byte position, and in one-byte chunks', async () => {
    const body = Buffer.from(
      '\ufeff {"code":200,"st\\u0061tus":"s\\"ü😀","skip":[{"]":"}"},-0.5e+2,true,null],"response":[{"a":"ü😀\\\\"},{"b":[{"c":"]"}]}] ,' +
        '"meta":{"total":12,"next":null,"list":[1,{"x":"y"}]}}\n',
    );
    const o: Options = { records: '/response', capture: ['/status', '/meta/total', '/meta/next', '/meta/list/1', '/skip/1'] };
    const expected = await read(chunksOf(body), o);
    expect(expected).toEqual({
      recordsKind: 'array', count: 2, records: [{ a: 'ü😀\\' }, { b: [{ c: ']' }] }], values: ['s"ü😀', 12, null, { x: 'y' }, -50],
    });
    for (let at = 1; at < body.length; at++) {
      const got = await read(chunksOf(...cut(body, at)), o);
      if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`wrong result with a boundary at byte ${at}`);
    }
    expect(await read(chunksOf(...bytesOf(body)), o)).toEqual(expected);
    const whole = Buffer.from(' {"k":"ü😀","n":[1.5,{"x":"}"}]} ');
    expect((await read(chunksOf(...bytesOf(whole)), { records: '' })).records).toEqual([JSON.parse(whole.toString())]);
    expect((await read(chunksOf(...bytesOf(Buffer.from(' -12.5e-3 '))), { capture: [''] })).values).toEqual([-12.5e-3]);
  });

  it('matches JSON.parse and valueAt on random envelopes cut at random places', async () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const alphabet = ['a', '"', '\\', ']', '}', '[', '{', ',', ':', 'ü', '😀', '\n', 'r'];
    const str = () => Array.from({ length: rand(3) === 0 ? 70 : rand(5) }, () => alphabet[rand(alphabet.length)]!).join('');
    const value = (depth: number): unknown => {
      const k = rand(depth > 2 ? 4 : 6);
      if (k === 0) return str();
      if (k === 1) return (rand(2000) - 1000) / 8;
      if (k === 2) return [null, true, false][rand(3)];
      if (k === 3) return str();
      if (k === 4) return Array.from({ length: rand(4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: rand(4) }, () => [['r', 'm', str()][rand(3)]!, value(depth + 1)]));
    };
    const capture = ['/m', '/m/r', '/m/m', '/r/0', '/x/m/r', '/x/0/m'];
    for (let round = 0; round < 300; round++) {
      const records = Array.from({ length: rand(4) }, () => ({ [str()]: value(1) }));
      const envelope: Record<string, unknown> = {};
      for (const key of ['x', 'm', 'response', 'r', str()].sort(() => rand(3) - 1)) envelope[key] = key === 'response' ? records : value(0);
      const body = Buffer.from(JSON.stringify(envelope, null, rand(2)));
      const cuts = Array.from({ length: rand(6) }, () => rand(body.length)).sort((a, b) => a - b);
      const got = await read(chunksOf(...cut(body, ...cuts)), { records: '/response', capture });
      expect(got.records).toEqual(records);
      expect(got.values).toEqual(capture.map((p) => valueAt(envelope, parsePointer(p))));
    }
  });

  it('accepts a UTF-8 BOM split across chunks, whitespace, plain Uint8Array chunks and a Readable', async () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const got = await read(chunksOf(bom.subarray(0, 1), bom.subarray(1), '\r\n\t {"response" : [ {"a":1} ] } \n'), { records: '/response' });
    expect(got.records).toEqual([{ a: 1 }]);
    const u8 = new Uint8Array(Buffer.from('{"response":[{"a":"ü"}]}'));
    expect((await read(chunksOf(u8.subarray(0, 20), u8.subarray(20)), { records: '/response' })).records).toEqual([{ a: 'ü' }]);
    expect((await read(Readable.from([Buffer.from('{"r":[{"a":'), Buffer.from('1}]}')]), { records: '/r' })).records).toEqual([{ a: 1 }]);
  });

  it('awaits onRecord before reading on (a slow sink slows reading)', async () => {
    let pulled = 0;
    async function* body(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('{"skip":[1,2],"response":[');
      for (let i = 0; i < 20; i++) {
        pulled++;
        yield Buffer.from(`{"i":${i}}${i < 19 ? ',' : ''}`);
      }
      yield Buffer.from('],"meta":{"total":20}}');
    }
    let busy = false;
    const seen: number[] = [];
    const result = await readJsonBody(body(), options({ records: '/response', capture: ['/meta/total'] }), async (r) => {
      expect(busy).toBe(false);
      busy = true;
      seen.push(pulled);
      await new Promise((resolve) => setTimeout(resolve, 2));
      busy = false;
    });
    // Record i ends in chunk i + 1 of the array (its ',' or the final ']' follows).
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(result).toEqual({ recordsKind: 'array', count: 20, values: [20] });
  });

  it('stops reading and returns the body iterator when onRecord throws', async () => {
    let finished = false;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        yield Buffer.from('{"response":[');
        for (let i = 0; ; i++) yield Buffer.from(`{"i":${i}},`);
      } finally {
        finished = true;
      }
    }
    let n = 0;
    const sink = () => {
      if (++n === 3) throw new Error('sink full');
    };
    await expect(readJsonBody(endless(), options({ records: '/response' }), sink)).rejects.toThrow('sink full');
    expect(finished).toBe(true);
  });
});

describe('readJsonBody records pointer errors', () => {
  it.each([
    ['a misspelt member', '{"response":[{"name":"Peter"}]}', '/respnse'],
    ['a member of a string', '{"data":"Peter"}', '/data/items'],
    ['a member of null', '{"data":null}', '/data/items'],
    ['a member of an array', '{"data":[{"items":[]}]}', '/data/items'],
    ['an index past the end', '{"data":[{"items":[]}]}', '/data/1/items'],
    ['an index with a leading zero', '{"data":[{"items":[]}]}', '/data/00/items'],
    ['a member of a number', '{"data":5}', '/data/items'],
  ])('rejects nothing at the pointer (%s), naming the pointer', async (_what, body, pointer) => {
    const err = await failure(chunksOf(body), { records: pointer });
    expect(err.code).toBe('RESPONSE_MALFORMED');
    expect(err.message).toContain(
      `access response has nothing at records pointer "${pointer}"; check the pointer (records) against the response`,
    );
    expect(err.message).not.toContain('Peter');
    expect(err.bodyPreview).toBe(body);
  });

  it.each([
    ['"Peter"', 'a string'],
    ['42', 'a number'],
    ['-1', 'a number'],
    ['true', 'a boolean'],
    ['false', 'a boolean'],
  ])('rejects %s at the records pointer, naming the pointer and the type only', async (value, type) => {
    const err = await failure(chunksOf(`{"status":"ok","response":${value}}`), { records: '/response', label: 'identifiers response' });
    expect(err.code).toBe('RESPONSE_MALFORMED');
    expect(err.message).toContain(`identifiers response has ${type} at records pointer "/response", where an array of objects, an object or null was expected`);
    expect(err.message).not.toContain(value);
    const root = await failure(chunksOf(value), { records: '' });
    expect(root.message).toContain(`has ${type} at records pointer ""`);
  });

  it('uses recordsText as written in the config', async () => {
    const err = await failure(chunksOf('{}'), { records: ['a/b'], recordsText: '/a~1b' });
    expect(err.message).toContain('nothing at records pointer "/a~1b"');
  });

  it.each([
    ['[1, 2]', 'element 1 is a number'],
    ['[{}, [{"a":1}]]', 'element 2 is an array'],
    ['[{}, {}, "Peter"]', 'element 3 is a string'],
    ['[{}, {}, null]', 'element 3 is null'],
  ])('rejects a non-object element in %j, naming the pointer, index and type', async (records, what) => {
    const err = await failure(chunksOf(`{"response":${records}}`), { records: '/response' });
    expect(err.code).toBe('RESPONSE_MALFORMED');
    expect(err.message).toContain(`access response at records pointer "/response" must be a JSON array of objects; ${what}`);
    expect(err.message).not.toContain('Peter');
  });

  it.each([
    ['the same member twice', '{"response":[{"a":1}],"response":[{"b":2}]}', '/response', 1],
    ['null then an array', '{"response":null,"response":[{"b":2}]}', '/response', 0],
    ['an object then an array', '{"response":{"a":1},"response":[]}', '/response', 1],
    ['a duplicate ancestor', '{"data":{"items":[{"a":1}]},"data":{}}', '/data/items', 1],
  ])('rejects %s at the records path, after delivering the first', async (_what, body, pointer, delivered) => {
    const records: unknown[] = [];
    const err = await readJsonBody(chunksOf(body), options({ records: pointer }), (r) => {
      records.push(r);
    }).catch((e: unknown) => e as AgentError);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('RESPONSE_MALFORMED');
    expect((err as AgentError).message).toContain(
      `access response has a duplicate key on the path to records pointer "${pointer}"; records already delivered cannot be taken back`,
    );
    expect(records).toHaveLength(delivered);
  });

  it('accepts a duplicate ancestor before the records are reached (the last wins)', async () => {
    const got = await read(chunksOf('{"data":{"other":1},"data":"x","data":{"items":[{"a":1}]}}'), { records: '/data/items' });
    expect(got.records).toEqual([{ a: 1 }]);
  });

  it('refuses capture pointers overlapping the records pointer', async () => {
    await expect(read(chunksOf('{}'), { records: '/response', capture: ['/response/0'] })).rejects.toThrow(TypeError);
    await expect(read(chunksOf('{}'), { records: '/response', capture: [''] })).rejects.toThrow(TypeError);
  });
});

describe('readJsonBody invalid JSON', () => {
  it.each([
    ['an empty body', '', 'access response is empty; a JSON value was expected'],
    ['a whitespace body', ' \n ', 'access response is empty'],
    ['an HTML page', '<html>Peter</html>', 'a value expected at byte 0'],
    ['a truncated envelope after the records', '{"response":[{"a":1}],"meta":{"total":', 'the body ended at byte 38, before the JSON value was complete (truncated response?)'],
    ['a truncated records array', '{"response":[{"a":1},{"b":"Pet', 'the body ended at byte 30, before the array was closed (truncated response?)'],
    ['a body truncated before the records', '{"skip":"Peter', 'the body ended at byte 14, before the JSON value was complete'],
    ['a body truncated in a number', '{"skip":-', 'an invalid number at byte 9'],
    ['trailing garbage', '{"response":[]} Peter', 'unexpected data after the end of the JSON value, at byte 16'],
    ['a second value', '{"response":[]}{}', 'unexpected data after the end of the JSON value, at byte 15'],
    ['a bad skipped array', '{"x":[1,,2],"response":[]}', 'a value expected at byte 8'],
    ['a trailing comma in an object', '{"response":[],}', 'a member name (a string) expected at byte 15'],
    ['a trailing comma in an array', '{"x":[1,],"response":[]}', 'a value expected at byte 8'],
    ['a missing colon', '{"response" []}', '":" expected at byte 12'],
    ['a missing comma', '{"a":1 "response":[]}', '"," or "}" expected at byte 7'],
    ['a mismatched bracket', '{"x":[1},"response":[]}', '"," or "]" expected at byte 7'],
    ['a number key', '{1:2}', 'a member name (a string) expected at byte 1'],
    ['a bad escape', '{"x":"Pe\\qter","response":[]}', 'an invalid escape in a string at byte 9'],
    ['a bad unicode escape', '{"x":"\\u12G4","response":[]}', 'an invalid \\u escape in a string at byte 10'],
    ['a raw control character', '{"x":"Pe\u0001ter","response":[]}', 'an unescaped control character in a string at byte 8'],
    ['a leading zero', '{"x":01,"response":[]}', '"," or "}" expected at byte 6'],
    ['a bare dot', '{"x":1.,"response":[]}', 'an invalid number at byte 7'],
    ['an empty exponent', '{"x":1e,"response":[]}', 'an invalid number at byte 7'],
    ['a bad literal', '{"x":tru,"response":[]}', 'an invalid literal at byte 8'],
    ['a bare word', '{"x":Peter,"response":[]}', 'a value expected at byte 5'],
    ['an incomplete BOM', '\xef\xbb{"response":[]}', 'incomplete byte order mark at byte 2'],
    ['a bad element', '{"response":[{"a": Peter}]}', 'element 1 at records pointer "/response" (starting at byte 13) does not parse'],
    ['a bad captured value', '{"meta":{"total":Peter},"response":[]}', 'a value expected at byte 17'],
    ['a bad record object', '{"response":{"a":1 "b":2}}', '"," or "}" expected at byte 19'],
  ])('rejects %s with RESPONSE_MALFORMED, a byte offset and the body preview', async (_what, body, message) => {
    const bytes = Buffer.from(body, body.startsWith('\xef') ? 'latin1' : 'utf8');
    const err = await failure(chunksOf(bytes), { records: '/response', capture: ['/meta/total'] });
    expect(err.code).toBe('RESPONSE_MALFORMED');
    expect(err.message).toContain(message.startsWith('access') ? message : `access response is not valid JSON: ${message}`);
    expect(err.message).toContain('LOGLEVEL=DEBUG');
    expect(err.message).not.toContain('Peter');
    expect(err.bodyPreview).toBe(bytes.toString('utf8'));
    // One-byte chunks find the same problem at the same byte.
    expect((await failure(chunksOf(...bytesOf(bytes)), { records: '/response', capture: ['/meta/total'] })).message).toBe(err.message);
  });

  it('attaches the first 2 KiB of the body as a non-enumerable bodyPreview', async () => {
    const body = '{"name":"Peter Gibbons","pad":"' + 'ü'.repeat(3000) + '"}';
    const err = await failure(chunksOf(body.slice(0, 100), body.slice(100)), { records: '/response' });
    expect(Buffer.from(err.bodyPreview!).length).toBeLessThanOrEqual(2048 + 2);
    expect(err.bodyPreview!.startsWith('{"name":"Peter Gibbons","pad":"üü')).toBe(true);
    expect(Object.keys(err)).not.toContain('bodyPreview');
    expect(JSON.stringify(err)).not.toContain('Peter');
  });
});

describe('readJsonBody size caps', () => {
  const exact = JSON.stringify({ v: 'x'.repeat(92) }); // 100 bytes
  const over = exact.replace('"x', '"xx');

  it('accepts a record object or captured value of exactly maxObjectBytes and rejects one byte more', async () => {
    expect(Buffer.byteLength(exact)).toBe(100);
    expect((await read(chunksOf(`{"response":${exact}}`), { records: '/response', maxObjectBytes: 100 })).count).toBe(1);
    expect((await read(chunksOf(`{"m":${exact}}`), { capture: ['/m'], maxObjectBytes: 100 })).values).toEqual([JSON.parse(exact)]);
    const record = await failure(chunksOf(`{"response":${over}}`), { records: '/response', maxObjectBytes: 100 });
    expect(record.code).toBe('RESPONSE_OBJECT_TOO_LARGE');
    expect(record.message).toBe(
      'access response: the record at records pointer "/response" is larger than the 0.00 MiB (100 bytes) cap on one object; set agent.max_object_bytes higher to accept it',
    );
    const captured = await failure(chunksOf(`{"m":{"n":${over}}}`), { capture: ['/m/n'], maxObjectBytes: 100 });
    expect(captured.code).toBe('RESPONSE_OBJECT_TOO_LARGE');
    expect(captured.message).toContain('access response: the value at "/m/n" is larger than the 0.00 MiB (100 bytes) cap');
    const element = await failure(chunksOf(`{"response":[{}, ${over}]}`), { records: '/response', maxObjectBytes: 100 });
    expect(element.message).toContain('access response element 2 at records pointer "/response" is larger than the 0.00 MiB (100 bytes) cap');
  });

  it('does not count skipped members against the cap, and stops reading a too-large capture at the cap', async () => {
    const big = `[${Array.from({ length: 2000 }, () => exact).join(',')}]`;
    expect((await read(chunksOf(`{"skip":${big},"response":[${exact}]}`), { records: '/response', maxObjectBytes: 100 })).count).toBe(1);
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('{"response":[],"meta":{"big":"');
      const chunk = Buffer.alloc(64 * 1024, 'x');
      for (;;) {
        pulled++;
        yield chunk;
      }
    }
    const err = await failure(endless(), { records: '/response', capture: ['/meta'], maxObjectBytes: 1024 * 1024 });
    expect(err.code).toBe('RESPONSE_OBJECT_TOO_LARGE');
    expect(pulled).toBe(16);
  });
});

describe('readJsonBody memory', () => {
  it('streams a ~300 MB enveloped array after a ~100 MB unrelated member with RSS and heap growth under 150 MB', async () => {
    const MB = 1024 * 1024;
    const object = (i: number) =>
      JSON.stringify({ id: i, name: 'Peter Gibbons', notes: `${'ü'.repeat(1500)} "TPS" \\ ${i}`, friends: ['Samir', 'Michael'], address: { street: '191 N. Lamar' } });
    // One block of objects, yielded again and again in 64 KiB slices that cut objects (and ü) apart;
    // the body is never held as a whole.
    const perBlock = 256;
    const block = Buffer.from(Array.from({ length: perBlock }, (_, i) => object(i)).join(',') + ',');
    const repeats = Math.ceil((300 * MB) / block.length);
    const skipRepeats = Math.ceil((100 * MB) / block.length);
    let bodyBytes = 0;
    function* slices(): Generator<Buffer> {
      for (let o = 0; o < block.length; o += 65536) {
        const chunk = block.subarray(o, o + 65536);
        bodyBytes += chunk.length;
        yield chunk;
      }
    }
    async function* body(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('{"code":200,"unrelated":[');
      for (let r = 0; r < skipRepeats; r++) yield* slices();
      yield Buffer.from('{}],"status":"success","response":[');
      for (let r = 0; r < repeats; r++) yield* slices();
      yield Buffer.from('{"id":"last"}],"meta":{"total":5}}');
    }

    const baseline = process.memoryUsage();
    let peakRss = baseline.rss;
    let peakHeap = baseline.heapUsed;
    let last: Record<string, unknown> | undefined;
    const result = await readJsonBody(body(), options({ records: '/response', capture: ['/status', '/meta/total'], maxObjectBytes: 64 * MB }), (obj) => {
      last = obj;
      if (Number(obj.id) % 64 === 0) {
        const m = process.memoryUsage();
        peakRss = Math.max(peakRss, m.rss);
        peakHeap = Math.max(peakHeap, m.heapUsed);
      }
    });
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);

    expect(bodyBytes).toBeGreaterThan(400 * MB);
    expect(result).toEqual({ recordsKind: 'array', count: repeats * perBlock + 1, values: ['success', 5] });
    expect(last).toEqual({ id: 'last' });
    expect((peakRss - baseline.rss) / MB).toBeLessThan(150);
    expect((peakHeap - baseline.heapUsed) / MB).toBeLessThan(150);
  }, 120_000);
});
