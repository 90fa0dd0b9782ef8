/** A request source built from its config, as serve builds it: headers from the secret, the adapter's options. */
import { describe, it, expect, afterEach } from '@jest/globals';
import { adapterOf } from '../src/sources/index.js';
import type { RequestSourceConfig } from '../src/config/types.js';
import { makeLogger } from '../src/logger.js';
import { startTarget, json, type Target } from './helpers/target.js';

let target: Target | undefined;
afterEach(async () => {
  await target?.close();
  target = undefined;
});
const deps = (secret: Record<string, string>) => ({ secret, retry: { retries: 0, minDelayMs: 1, maxDelayMs: 1 }, logger: makeLogger({ level: 'ERROR', destination: { write: () => undefined } }) });

describe('request sources from config', () => {
  it("an HTTP source sends the source's headers, filled from its secret, with its list and finish queries", async () => {
    target = await startTarget((req, res) => json(res, 200, req.method === 'GET' ? { items: [{ id: 'r1', kind: 'erase', who: 'peter@initech.example' }] } : {}));
    const cfg: RequestSourceConfig = {
      name: 'portal',
      type: 'HTTP',
      credentials_location: 'portal',
      headers: { Authorization: 'Bearer {api_key}', 'X-Tenant': 'acme' },
      options: {
        list: { url: `${target.url}/requests`, verb: 'GET', verify_ssl: 'true', records: '/items', headers: { 'X-Tenant': 'initech' } },
        fields: { id: '/id', type: { pointer: '/kind', values: { erase: 'delete' } }, identifiers: { email: '/who' } },
        finish: { url: `${target.url}/requests/{request_id}/done`, verb: 'POST', verify_ssl: 'true', headers: { 'Content-Type': 'application/json' }, body: '{{"status": "{job_status}"}}' },
      },
    };
    const source = adapterOf('HTTP')!.make(cfg, deps({ api_key: 'k-123' }));
    const listed = [];
    for await (const r of source.list(AbortSignal.timeout(10_000))) listed.push(r);
    expect(listed).toEqual([{ id: 'r1', jobs: [{ type: 'delete', identifiers: { email: 'peter@initech.example' } }] }]);
    await source.writeBack('r1', { jobs: [{ jobId: 'portal.r1.delete', type: 'delete', status: 'succeeded', connections: [], storage: 'local' }] }, AbortSignal.timeout(10_000));
    expect(target.received.map((r) => [r.method, r.url, r.headers.authorization, r.headers['x-tenant']])).toEqual([
      ['GET', '/requests', 'Bearer k-123', 'initech'],
      ['POST', '/requests/r1/done', 'Bearer k-123', 'acme'],
    ]);
    expect(JSON.parse(target.received[1]!.body)).toEqual({ status: 'succeeded' });
  });
});
