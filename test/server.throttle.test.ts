/** The token endpoint slows password guessing down, and never a client that knows its secret. */
import { describe, it, expect, afterEach } from '@jest/globals';
import { startTestServer, CLIENT, basic, type TestServer } from './helpers/server.js';
import { connection, query } from './helpers/agent.js';
import { makeThrottle } from '../src/server/throttle.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});
const conn = () => connection({ access: [query('http://127.0.0.1:9/users?email={email}')] });
const tokenRequest = (url: string, secret: string, clientId: string = CLIENT.id) =>
  fetch(`${url}/api/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
    body: 'grant_type=client_credentials',
  });

describe('token endpoint throttling (issue 10)', () => {
  it('after the free failures, answers 429 with Retry-After before comparing anything — the right secret too — until the lock ends', async () => {
    server = await startTestServer([conn()], { process: false, throttle: { freeFailuresPerIp: 3, baseLockMs: 400 } });
    for (let i = 0; i < 4; i++) expect((await tokenRequest(server.url, `wrong-${i}`)).status).toBe(401);
    const locked = await tokenRequest(server.url, CLIENT.secret);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await locked.json()).toMatchObject({ error: 'slow_down' });
    // Wait for the lock (deadline loop, no thin margin), then the right secret works and clears the count.
    const deadline = Date.now() + 10_000;
    let res = locked;
    while (res.status === 429 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      res = await tokenRequest(server.url, CLIENT.secret);
    }
    expect(res.status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await tokenRequest(server.url, `wrong-again-${i}`)).status).toBe(401);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/dsr_token_failures_total\{reason="throttled"\} [1-9]/);
  });

  it('never slows a burst of correct requests', async () => {
    server = await startTestServer([conn()], { process: false, throttle: { freeFailuresPerIp: 1, baseLockMs: 60_000 } });
    const statuses = await Promise.all(Array.from({ length: 50 }, () => tokenRequest(server!.url, CLIENT.secret).then((r) => r.status)));
    expect(statuses.every((s) => s === 200)).toBe(true);
  });
});

describe('makeThrottle', () => {
  it('doubles the lock per failure past the free ones, caps it, counts IPs and client ids apart, and forgets the oldest keys', () => {
    let now = 0;
    const t = makeThrottle({ freeFailuresPerIp: 2, freeFailuresPerClient: 4, baseLockMs: 1000, maxLockMs: 8000, maxKeys: 4 }, () => now);
    t.failed('1.1.1.1', 'c');
    t.failed('1.1.1.1', 'c');
    expect(t.retryAfterMs('1.1.1.1', 'c')).toBe(0);
    const locks = [];
    for (let i = 0; i < 6; i++) {
      t.failed('1.1.1.1', 'c');
      locks.push(t.retryAfterMs('1.1.1.1', undefined));
    }
    expect(locks).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    // The client id locks too (from any address), with its own, higher threshold and a quarter of the cap.
    expect(t.retryAfterMs('2.2.2.2', 'c')).toBe(2000);
    expect(t.retryAfterMs('2.2.2.2', 'other')).toBe(0);
    t.succeeded('1.1.1.1', 'c');
    expect(t.retryAfterMs('1.1.1.1', 'c')).toBe(0);
    for (const ip of ['a', 'b', 'c', 'd', 'e']) for (let i = 0; i < 3; i++) t.failed(ip, undefined);
    expect(t.retryAfterMs('a', undefined)).toBe(0); // evicted: the map stays bounded
    expect(t.retryAfterMs('e', undefined)).toBe(1000);
  });
});
