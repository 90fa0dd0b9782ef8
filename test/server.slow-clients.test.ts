/** Slow and numerous clients: a request must arrive in time, and open sockets are capped. */
import { describe, it, expect, afterEach } from '@jest/globals';
import net from 'node:net';
import { startTestServer, type TestServer } from './helpers/server.js';
import { connection, query } from './helpers/agent.js';

let server: TestServer | undefined;
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.close();
  server = undefined;
});
const conn = () => connection({ access: [query('http://127.0.0.1:9/users?email={email}')] });

/** `p`, or a failure after `ms`; the timer never outlives the test. */
async function within<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function open(url: string): Promise<{ socket: net.Socket; data: () => string; closed: Promise<void> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => resolve({ socket, data: () => received, closed }));
    sockets.push(socket);
    let received = '';
    socket.setEncoding('utf8').on('data', (d: string) => (received += d));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('error', reject);
  });
}

describe('slow clients (issue 10)', () => {
  it('a body dripped slower than http_request_timeout_seconds is answered 408 and the socket closed', async () => {
    server = await startTestServer([conn()], { process: false, top: { agent: { http_request_timeout_seconds: 1 } } });
    const c = await open(server.url);
    c.socket.write('POST /api/v1/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n');
    const drip = setInterval(() => c.socket.writable && c.socket.write('a'), 200);
    try {
      // Without the timeout the socket would stay open as long as we drip (minutes); wait for the close with a deadline.
      await within(c.closed, 15_000, 'the dripping client was never cut off');
    } finally {
      clearInterval(drip);
    }
    expect(c.data()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('refuses connections beyond http_max_connections', async () => {
    server = await startTestServer([conn()], { process: false, top: { agent: { http_max_connections: 2 } } });
    const a = await open(server.url);
    const b = await open(server.url);
    const c = await open(server.url);
    await within(c.closed, 10_000, 'the third connection was kept');
    // The first two still serve.
    a.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((resolve) => a.socket.once('data', () => resolve()));
    expect(a.data()).toMatch(/^HTTP\/1\.1 200/);
    expect(b.socket.destroyed).toBe(false);
  });
});
