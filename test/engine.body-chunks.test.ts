/** BodyChunks: an undici body's chunks pulled without Readable's async iterator, with its semantics. */
import { describe, it, expect, afterEach, afterAll } from '@jest/globals';
import { Agent, request } from 'undici';
import { startTarget, type Target } from './helpers/target.js';
import { BodyChunks } from '../src/engine/body-chunks.js';

let target: Target | undefined;
const dispatcher = new Agent();
afterEach(async () => {
  await target?.close();
  target = undefined;
});
afterAll(() => dispatcher.close());

/** Every chunk of `chunks` as text, waiting whenever nothing is buffered; `onChunk` runs after each. */
async function readAll(chunks: BodyChunks, onChunk?: () => void | Promise<void>): Promise<string> {
  let text = '';
  for (;;) {
    const buf = chunks.read();
    if (buf === null) {
      if (await chunks.wait()) continue;
      return text;
    }
    text += buf.toString('utf8');
    await onChunk?.();
  }
}

describe('BodyChunks', () => {
  it('reads a body written in pieces, in order, to its end', async () => {
    const pieces = ['[{"a":1}', ',{"b":2}', ',{"c":3}]'];
    target = await startTarget(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (const p of pieces) {
        res.write(p);
        await new Promise((r) => setImmediate(r));
      }
      res.end();
    });
    const { body } = await request(`${target.url}/a`, { dispatcher });
    expect(await readAll(new BodyChunks(body))).toBe(pieces.join(''));
  });

  it('reads a body of many chunks whole, the caller awaiting work between chunks', async () => {
    const total = 4 * 1024 * 1024;
    target = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const piece = Buffer.alloc(64 * 1024, 0x61 + ((sent / 65536) % 26));
          sent += piece.length;
          if (!res.write(piece)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const { body } = await request(`${target.url}/big`, { dispatcher });
    let calls = 0;
    const text = await readAll(new BodyChunks(body), () => {
      calls++;
      return new Promise((r) => setImmediate(r));
    });
    expect(calls).toBeGreaterThan(1);
    expect(text.length).toBe(total);
    for (let k = 0; k < total / 65536; k++) expect(text.charCodeAt(k * 65536)).toBe(0x61 + (k % 26));
  });

  it("rejects with the body's error when the connection breaks mid-body", async () => {
    target = await startTarget((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[{"a":1},');
      setImmediate(() => req.socket.destroy());
    });
    const { body } = await request(`${target.url}/a`, { dispatcher });
    const err = await readAll(new BodyChunks(body)).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('UND_ERR_SOCKET');
  });

  it('rejects when the body had failed before the reader was made', async () => {
    target = await startTarget((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[');
      setImmediate(() => req.socket.destroy());
    });
    const { body } = await request(`${target.url}/a`, { dispatcher });
    const failed = new Promise((resolve) => body.once('error', resolve));
    body.resume();
    await failed;
    const err = await readAll(new BodyChunks(body)).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('UND_ERR_SOCKET');
  });

  it('a body the caller destroys part-way raises no unhandled error', async () => {
    target = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[{"a":1},');
    });
    const { body } = await request(`${target.url}/a`, { dispatcher });
    const chunks = new BodyChunks(body);
    expect(chunks.read() ?? (await chunks.wait(), chunks.read())).not.toBeNull();
    const closed = new Promise((resolve) => body.once('close', resolve));
    body.destroy();
    await closed;
    const err = await chunks.wait().catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('UND_ERR_ABORTED');
  });
});
