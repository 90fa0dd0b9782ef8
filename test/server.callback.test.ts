import { describe, it, expect, afterEach } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeSecretsSource, makeSecretsCache } from '../src/credentials/index.js';
import { makeCallbackSender } from '../src/server/callback.js';
import type { JobView } from '../src/queue/types.js';
import { captureLogs } from './helpers/agent.js';

const JOB: JobView = {
  id: 'job-1',
  type: 'access',
  status: 'succeeded',
  created_at: '2026-11-25T10:00:00.000Z',
  started_at: '2026-11-25T10:00:01.000Z',
  finished_at: '2026-11-25T10:00:02.000Z',
  connections: [{ uuid: '44d9e703-b8cf-40a8-a138-3cc110319b0d', name: 'User Service', status: 'succeeded', reports: ['/data/reports/job-1/44d9e703-b8cf-40a8-a138-3cc110319b0d/report_1.csv'], duration_ms: 12 }],
};
const TOKEN = 'dg-callback-token-123';

interface Receiver {
  url: string;
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}

/** A real receiver answering the n-th request with statuses[n-1] (the last one repeats). */
async function startReceiver(statuses: number[]): Promise<Receiver> {
  const requests: Receiver['requests'] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      res.writeHead(statuses[Math.min(requests.length, statuses.length) - 1]!, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/dsr/callback?key=abc`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

let receiver: Receiver | undefined;
let dir: string | undefined;
afterEach(async () => {
  await receiver?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  receiver = dir = undefined;
});

function secretsWith(entries: Record<string, Record<string, string>>) {
  dir = mkdtempSync(join(tmpdir(), 'dsr-callback-'));
  writeFileSync(join(dir, 'secrets.json'), JSON.stringify(entries));
  return makeSecretsCache(makeSecretsSource({ provider: 'JSONFile', options: { filename: 'secrets.json' } }, dir), { ttlMs: 60_000 });
}

describe('makeCallbackSender', () => {
  it('retries 503s with backoff, then delivers the job view with the bearer token from datagrail_credentials_location', async () => {
    receiver = await startReceiver([503, 503, 200]);
    const logs = captureLogs();
    const sender = makeCallbackSender({ url: receiver.url, secrets: secretsWith({ 'dg-callback': { token: TOKEN } }), location: 'dg-callback', logger: logs.logger, minDelayMs: 20, maxDelayMs: 100 });
    const started = Date.now();
    expect(await sender.send(JOB)).toBe('delivered');
    expect(Date.now() - started).toBeGreaterThanOrEqual(20); // it waited between attempts
    expect(receiver.requests).toHaveLength(3);
    for (const r of receiver.requests) {
      expect(r.method).toBe('POST');
      expect(r.url).toBe('/dsr/callback?key=abc');
      expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(r.headers['content-type']).toBe('application/json');
      expect(JSON.parse(r.body)).toEqual(JOB);
    }
    const text = logs.lines().join('\n');
    expect(text).toContain('callback attempt failed');
    expect(text).toContain('HTTP 503');
    expect(text).toContain('callback delivered');
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain('key=abc'); // only the origin is logged
  });

  it("resolves 'abandoned' (not 'failed') when its signal aborts mid-retry, so the queue keeps the callback pending", async () => {
    receiver = await startReceiver([503]);
    const logs = captureLogs();
    const sender = makeCallbackSender({ url: receiver.url, secrets: secretsWith({ 'dg-callback': { token: TOKEN } }), location: 'dg-callback', logger: logs.logger, minDelayMs: 10, maxDelayMs: 20 });
    const stop = new AbortController();
    const outcome = sender.send(JOB, stop.signal);
    const deadline = Date.now() + 10_000;
    while (receiver.requests.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    stop.abort();
    expect(await outcome).toBe('abandoned');
    expect(logs.lines().join('\n')).not.toContain('callback not delivered');
  });

  it('gives up at once on a 400 and resolves \'failed\' (the result stays readable through the API)', async () => {
    receiver = await startReceiver([400]);
    const logs = captureLogs();
    const sender = makeCallbackSender({ url: receiver.url, secrets: secretsWith({ 'dg-callback': { token: TOKEN } }), location: 'dg-callback', logger: logs.logger, minDelayMs: 10 });
    expect(await sender.send(JOB)).toBe('failed');
    expect(receiver.requests).toHaveLength(1);
    expect(logs.lines().join('\n')).toMatch(/callback not delivered.*HTTP 400|HTTP 400.*callback not delivered/);
  });

  it('refetches the token once after a 401 (a rotated token), then succeeds', async () => {
    receiver = await startReceiver([401, 200]);
    const secrets = secretsWith({ 'dg-callback': { token: 'old-token' } });
    const sender = makeCallbackSender({ url: receiver.url, secrets, location: 'dg-callback', logger: captureLogs().logger, minDelayMs: 10 });
    await secrets.get('dg-callback'); // cached: the old token
    writeFileSync(join(dir!, 'secrets.json'), JSON.stringify({ 'dg-callback': { token: 'new-token' } }));
    expect(await sender.send(JOB)).toBe('delivered');
    expect(receiver.requests.map((r) => r.headers.authorization)).toEqual(['Bearer old-token', 'Bearer new-token']);
  });

  it('stops within the retry window when the receiver never recovers', async () => {
    receiver = await startReceiver([503]);
    const sender = makeCallbackSender({ url: receiver.url, secrets: secretsWith({ 'dg-callback': { token: TOKEN } }), location: 'dg-callback', logger: captureLogs().logger, minDelayMs: 20, maxDelayMs: 50, retryWindowMs: 400 });
    expect(await sender.send(JOB)).toBe('failed');
    // The window bounds the attempts whatever the load: at most one per 20 ms delay within 400 ms, plus the first.
    expect(receiver.requests.length).toBeGreaterThanOrEqual(3);
    expect(receiver.requests.length).toBeLessThanOrEqual(400 / 20 + 1);
  });

  it('retries a refused connection and resolves false without throwing', async () => {
    const logs = captureLogs();
    const sender = makeCallbackSender({ url: 'http://127.0.0.1:9/cb', secrets: secretsWith({ 'dg-callback': { token: TOKEN } }), location: 'dg-callback', logger: logs.logger, minDelayMs: 10, maxDelayMs: 20, retryWindowMs: 200 });
    expect(await sender.send(JOB)).toBe('failed');
    expect(logs.lines().filter((l) => l.includes('callback attempt failed')).length).toBeGreaterThanOrEqual(2);
    expect(logs.lines().join('\n')).toContain('ECONNREFUSED');
  });

  it('gives up without sending when the secret has no token', async () => {
    receiver = await startReceiver([200]);
    const logs = captureLogs();
    const sender = makeCallbackSender({ url: receiver.url, secrets: secretsWith({ 'dg-callback': { other: 'x' } }), location: 'dg-callback', logger: logs.logger, minDelayMs: 10 });
    expect(await sender.send(JOB)).toBe('failed');
    expect(receiver.requests).toHaveLength(0);
    expect(logs.lines().join('\n')).toContain('has no \\"token\\"');
  });
});
