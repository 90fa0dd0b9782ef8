import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { connection, query } from './helpers/agent.js';
import { startTestServer, getToken, type TestServer } from './helpers/server.js';

let s: TestServer;
let token: string;

beforeAll(async () => {
  // Port 9 (discard) never answers: nothing in this file may reach a target.
  s = await startTestServer([connection({ access: [query('http://127.0.0.1:9/a?email={email}')] }, { name: 'User Service' })], { process: false });
  token = await getToken(s.url);
});
afterAll(async () => {
  await s?.close();
});

const send = (body: string | Buffer | undefined, contentType: string | undefined = 'application/json', path = '/api/v1/jobs') =>
  fetch(`${s.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, ...(contentType ? { 'content-type': contentType } : {}) },
    body,
  });

describe('bad job requests get a 4xx saying what to fix', () => {
  it.each<[string, unknown, string]>([
    ['a misspelt type', { type: 'acces', identifiers: { email: 'a@b.c' } }, 'body/type must be one of access, delete, optout, identifiers'],
    ['no identifiers', { type: 'access' }, "body must have the property 'identifiers'"],
    ['empty identifiers', { type: 'access', identifiers: {} }, 'body/identifiers must have at least 1 property, e.g. {"email": "peter@initech.com"}'],
    ['a number as identifier value', { type: 'access', identifiers: { email: 42 } }, 'body/identifiers/email must be a string'],
    ['an empty identifier value', { type: 'access', identifiers: { email: '' } }, 'body/identifiers/email must not be empty'],
    ['a bad identifier name', { type: 'access', identifiers: { 'e-mail': 'a@b.c' } }, 'body/identifiers has an invalid property name: identifier names are snake_case (letters, digits, underscores), e.g. user_id'],
    ['a line break in an identifier value', { type: 'access', identifiers: { email: 'a@b.c\r\nX-Evil: 1' } }, 'body/identifiers/email must not contain control characters (CR, LF, NUL, ...)'],
    ['an unknown property', { type: 'access', identifiers: { email: 'a@b.c' }, connection: ['x'] }, "body has an unknown property 'connection'; remove it or check its spelling"],
    ['an empty connections list', { type: 'access', identifiers: { email: 'a@b.c' }, connections: [] }, 'body/connections must have at least 1 item; omit it to use every live connection'],
    ['a bad client id', { type: 'access', identifiers: { email: 'a@b.c' }, id: 'has space' }, 'body/id must be 1-128 characters of A-Z, a-z, 0-9, ".", "_" or "-", without ".." (it becomes a file name and a URL segment)'],
    ['a client id with ".."', { type: 'access', identifiers: { email: 'a@b.c' }, id: 'a..b' }, 'body/id must be 1-128 characters of A-Z, a-z, 0-9, ".", "_" or "-", without ".." (it becomes a file name and a URL segment)'],
  ])('%s', async (_what, body, message) => {
    const res = await send(JSON.stringify(body));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_request', message });
  });

  it('never echoes an identifier value in an error', async () => {
    const res = await send(JSON.stringify({ type: 'access', identifiers: { email: 'secret-person@initech.com', phone: 5551234 } }));
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text).not.toContain('secret-person');
    expect(text).not.toContain('5551234');
  });

  it('answers 413 for a body over 64 KiB, 415 for a non-JSON content type', async () => {
    const big = JSON.stringify({ type: 'access', identifiers: { email: 'a'.repeat(70 * 1024) } });
    const res = await send(big);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: 'payload_too_large', message: expect.stringMatching(/64 KiB/) });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x']) {
      const r = await send('type=access', type);
      expect([type, r.status]).toEqual([type, 415]);
      expect(await r.json()).toMatchObject({ error: 'unsupported_media_type', message: expect.stringMatching(/application\/json/) });
    }
  });

  it('answers 404 for an unknown route with a pointer to the docs (to an authenticated client: see server.exposure)', async () => {
    const res = await fetch(`${s.url}/api/v1/jobz`, { headers: { authorization: `Bearer ${await getToken(s.url)}` } });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'not_found', message: 'no route GET /api/v1/jobz; the API is described at /docs' });
  });
});

describe('fuzz-ish: malformed bodies never yield a 5xx', () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const cases: Array<[string, string | Buffer | undefined, string | undefined]> = [
    ['invalid JSON', '{"type": "access", ', 'application/json'],
    ['empty body with JSON type', '', 'application/json'],
    ['no body, no content type', undefined, undefined],
    ['null', 'null', 'application/json'],
    ['an array', '[]', 'application/json'],
    ['a string', '"access"', 'application/json'],
    ['a number', '123', 'application/json'],
    ['true', 'true', 'application/json'],
    ['an empty object', '{}', 'application/json'],
    ['type as an array', '{"type":["access"],"identifiers":{"email":"a"}}', 'application/json'],
    ['type null', '{"type":null,"identifiers":{"email":"a"}}', 'application/json'],
    ['identifiers as an array', '{"type":"access","identifiers":["a"]}', 'application/json'],
    ['identifiers as a string', '{"type":"access","identifiers":"a@b.c"}', 'application/json'],
    ['identifier value null', '{"type":"access","identifiers":{"email":null}}', 'application/json'],
    ['identifier value an object', '{"type":"access","identifiers":{"email":{"$ne":1}}}', 'application/json'],
    ['__proto__ key', '{"type":"access","identifiers":{"email":"a"},"__proto__":{"admin":true}}', 'application/json'],
    ['constructor.prototype key', '{"type":"access","identifiers":{"constructor":{"prototype":{"x":1}}}}', 'application/json'],
    ['connections a string', '{"type":"access","identifiers":{"email":"a"},"connections":"User Service"}', 'application/json'],
    ['connections with a number', '{"type":"access","identifiers":{"email":"a"},"connections":[1]}', 'application/json'],
    ['connections with an empty name', '{"type":"access","identifiers":{"email":"a"},"connections":[""]}', 'application/json'],
    ['an unknown connection', '{"type":"access","identifiers":{"email":"a"},"connections":["../../etc/passwd"]}', 'application/json'],
    ['a 200-character id', JSON.stringify({ type: 'access', identifiers: { email: 'a' }, id: 'x'.repeat(200) }), 'application/json'],
    ['an id with a slash', '{"type":"access","identifiers":{"email":"a"},"id":"../x"}', 'application/json'],
    ['500 identifiers', JSON.stringify({ type: 'access', identifiers: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, 'v'])) }), 'application/json'],
    ['deeply nested arrays', deep(20000), 'application/json'],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), 'application/json'],
    ['a UTF-16 charset', '{"type":"access"}', 'application/json; charset=utf-16'],
    ['a NUL byte in a value', '{"type":"access","identifiers":{"email":"a\\u0000b"}}', 'application/json'],
    ['CR/LF in a value', '{"type":"access","identifiers":{"email":"a\\r\\nX-Evil: 1"}}', 'application/json'],
    ['a duplicate key', '{"type":"access","type":"delete","identifiers":{"email":"a"},"identifiers":{}}', 'application/json'],
    ['a bogus content type', '{}', 'nonsense'],
    ['a body over the limit', 'x'.repeat(65 * 1024), 'application/json'],
  ];

  it(`answers each of ${cases.length} malformed bodies with a 4xx and {error, message}`, async () => {
    const seen: Array<[string, number]> = [];
    for (const [what, body, type] of cases) {
      const res = await send(body, type);
      const parsed = (await res.json()) as { error?: unknown; message?: unknown };
      seen.push([what, res.status]);
      expect([what, res.status >= 400 && res.status < 500]).toEqual([what, true]);
      expect([what, typeof parsed.error, typeof parsed.message]).toEqual([what, 'string', 'string']);
    }
    expect(seen.length).toBeGreaterThanOrEqual(30);
  });

  it('keeps the token endpoint and the connection test route under 500 as well', async () => {
    for (const [what, body, type] of cases) {
      const t = await fetch(`${s.url}/api/v1/token`, { method: 'POST', headers: type ? { 'content-type': type } : {}, body });
      expect([what, t.status < 500]).toEqual([what, true]);
      const c = await send(body, type, '/api/v1/connections/no-such-connection/test');
      expect([what, c.status >= 400 && c.status < 500]).toEqual([what, true]);
    }
  });
});
