/** exchange(): one request through undici's dispatch() with a pull body, against real local servers. */
import { describe, it, expect, afterEach, afterAll } from '@jest/globals';
import { Agent } from 'undici';
import { startTarget, type Target } from './helpers/target.js';
import { exchange, type ResponseBody } from '../src/engine/exchange.js';
import { AgentError, ErrorCodes } from '../src/errors.js';

let target: Target | undefined;
const dispatcher = new Agent();
afterEach(async () => {
  await target?.close();
  target = undefined;
});
afterAll(() => dispatcher.close());

const get = (path: string, signal = new AbortController().signal) =>
  exchange({ method: 'GET', url: `${target!.url}${path}`, headers: { accept: 'application/json' } }, dispatcher, signal);

/** Every chunk as text, waiting whenever none is queued; `onChunk` runs (and is awaited) after each. */
async function readAll(body: ResponseBody, onChunk?: () => void | Promise<void>): Promise<string> {
  let text = '';
  for (;;) {
    const buf = body.read();
    if (buf === null) {
      if (await body.wait()) continue;
      return text;
    }
    text += buf.toString('utf8');
    await onChunk?.();
  }
}

const codeOf = (err: unknown) => (err as { code?: string }).code;

describe('exchange', () => {
  it('resolves at the status and headers, then reads a body written in pieces, in order, to its end', async () => {
    const pieces = ['[{"a":1}', ',{"b":2}', ',{"c":3}]'];
    target = await startTarget(async (_req, res) => {
      res.writeHead(201, { 'content-type': 'application/json', link: '</next>; rel="next"' });
      for (const p of pieces) {
        res.write(p);
        await new Promise((r) => setImmediate(r));
      }
      res.end();
    });
    const res = await get('/a?x=1');
    expect(res.statusCode).toBe(201);
    expect(res.headers.link).toBe('</next>; rel="next"');
    expect(await readAll(res.body)).toBe(pieces.join(''));
    expect(target.received[0]).toMatchObject({ method: 'GET', url: '/a?x=1', headers: { accept: 'application/json' } });
  });

  it('sends the method, headers and body of the request', async () => {
    target = await startTarget((_req, res) => {
      res.end('{}');
    });
    const res = await exchange({ method: 'POST', url: `${target.url}/login`, headers: { 'content-type': 'application/json' }, body: '{"k":"v"}' }, dispatcher, new AbortController().signal);
    await res.body.dump();
    expect(target.received[0]).toMatchObject({ method: 'POST', url: '/login', body: '{"k":"v"}', headers: { 'content-type': 'application/json' } });
  });

  it('a reader that holds a chunk holds the target back: the rest is sent only as it reads on', async () => {
    const total = 16 * 1024 * 1024;
    let finished = false;
    target = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const piece = Buffer.alloc(64 * 1024, 0x61 + ((sent / 65536) % 26));
          sent += piece.length;
          if (!res.write(piece)) return void res.once('drain', pump);
        }
        res.end(() => (finished = true));
      };
      pump();
    });
    const res = await get('/big');
    let first = true;
    const text = await readAll(res.body, async () => {
      if (!first) return;
      first = false;
      // Without backpressure the client would take all 16 MiB into memory and the target would
      // finish within this wait; with it, the target stays blocked until the reader moves on.
      const deadline = Date.now() + 1500;
      while (!finished && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(finished).toBe(false);
    });
    expect(text.length).toBe(total);
    for (let k = 0; k < total / 65536; k++) expect(text.charCodeAt(k * 65536)).toBe(0x61 + (k % 26));
  });

  it("rejects with undici's error when the connection breaks mid-body", async () => {
    target = await startTarget((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[{"a":1},');
      setImmediate(() => req.socket.destroy());
    });
    const res = await get('/a');
    expect(codeOf(await readAll(res.body).catch((e: unknown) => e))).toBe('UND_ERR_SOCKET');
  });

  it("rejects with the signal's reason, at once, when it aborts before the status arrives", async () => {
    target = await startTarget(() => undefined); // never answers
    const ac = new AbortController();
    const reason = new AgentError(ErrorCodes.JOB_TIMEOUT, 'deadline');
    const pending = get('/hang', ac.signal);
    while (target.received.length === 0) await new Promise((r) => setTimeout(r, 5));
    ac.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });

  it("fails the body with the signal's reason when it aborts mid-body", async () => {
    target = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[{"a":1},'); // and never more
    });
    const ac = new AbortController();
    const reason = new AgentError(ErrorCodes.CANCELLED, 'shutdown');
    const res = await get('/a', ac.signal);
    const reading = readAll(res.body);
    ac.abort(reason);
    await expect(reading).rejects.toBe(reason);
  });

  it('a body the caller destroys part-way raises no unhandled error, and reads as aborted', async () => {
    target = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[{"a":1},');
    });
    const res = await get('/a');
    res.body.destroy();
    expect(codeOf(await res.body.wait().catch((e: unknown) => e))).toBe('UND_ERR_ABORTED');
  });

  it('dump() reads a small body to its end and closes a large one instead; neither rejects', async () => {
    target = await startTarget((req, res) => {
      if (req.url === '/small') return void res.end('{"error":"nope"}');
      res.writeHead(200, { 'content-length': String(1024 * 1024) });
      res.write(Buffer.alloc(1024)); // the rest never comes
    });
    const small = await get('/small');
    await small.body.dump();
    expect(await small.body.wait()).toBe(false);
    const large = await get('/large');
    await large.body.dump();
    expect(codeOf(await large.body.wait().catch((e: unknown) => e))).toBe('UND_ERR_ABORTED');
  });

  it('refuses a URL that is not http or https, as undici does', async () => {
    await expect(exchange({ method: 'GET', url: 'ftp://127.0.0.1/x', headers: {} }, dispatcher, new AbortController().signal)).rejects.toMatchObject({ code: 'UND_ERR_INVALID_ARG' });
  });
});
