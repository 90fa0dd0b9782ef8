import { describe, it, expect, afterAll, beforeAll } from '@jest/globals';
import { startTarget, json, type Target } from './helpers/target.js';
import { makeTestAgent, connection, query, type TestAgent } from './helpers/agent.js';

let target: Target;
beforeAll(async () => {
  target = await startTarget((_req, res) => json(res, 200, {}));
});
afterAll(async () => {
  await target.close();
});

const HOSTILE = ['a"b', "it's", '{x}', '}{', '&admin=1', '../../etc/passwd', 'a/b', '#frag', '?q=1', 'x@evil.host', 'a\nb', 'tab\there', 'üñí©ødé 😀', '\\', '</script>', '%41', '+plus', ' lead'];

describe('hostile identifier values reach the target as exactly the value, never as structure', () => {
  it.each(HOSTILE)('%j in URL query, URL path, JSON body and form body', async (value) => {
    const agent: TestAgent = makeTestAgent([
      connection({
        optout: [
          query(`${target.url}/v0/users/{email}/optout?email={email}&fixed=1`, { verb: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{{"email": "{email}", "n": {email}}}' }),
          query(`${target.url}/form`, { verb: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'email={email}&fixed=1' }),
        ],
      }),
    ]);
    const before = target.received.length;
    const result = await agent.engine.run({ type: 'optout', identifiers: { email: value } });
    await agent.close();
    expect(result.status).toBe('succeeded');
    const [put, post] = target.received.slice(before);
    const url = new URL(put!.url, target.url);
    expect(url.host).toBe(new URL(target.url).host);
    expect(url.pathname.split('/')).toHaveLength(5); // '', v0, users, <value>, optout
    expect(decodeURIComponent(url.pathname.split('/')[3]!)).toBe(value);
    expect(url.pathname.endsWith('/optout')).toBe(true);
    expect([...url.searchParams.keys()]).toEqual(['email', 'fixed']);
    expect(url.searchParams.get('email')).toBe(value);
    expect(url.hash).toBe('');
    const body = JSON.parse(put!.body);
    expect(Object.keys(body)).toEqual(['email', 'n']);
    expect(body.email).toBe(value);
    expect(body.n).toBe(value);
    const form = new URLSearchParams(post!.body);
    expect([...form.keys()]).toEqual(['email', 'fixed']);
    expect(form.get('email')).toBe(value);
  });

  it('refuses a line break in a header value and sends nothing', async () => {
    const agent = makeTestAgent([connection({ optout: [query(`${target.url}/h`, { verb: 'PUT', headers: { 'X-Subject': '{email}' } })] })]);
    const before = target.received.length;
    const result = await agent.engine.run({ type: 'optout', identifiers: { email: 'a@b.c\r\nX-Admin: 1' } });
    await agent.close();
    expect(result.connections[0]!.error?.code).toBe('IDENTIFIER_INVALID');
    expect(result.connections[0]!.error?.message).not.toContain('a@b.c');
    expect(target.received.length).toBe(before);
  });

  it('rejects an identifier whose name collides with a secret key before anything is sent', async () => {
    const agent = makeTestAgent([connection({ optout: [query(`${target.url}/h?e={email}`, { verb: 'PUT' })] })]);
    const before = target.received.length;
    const result = await agent.engine.run({ type: 'optout', identifiers: { email: 'a@b.c', credentials: 'attacker' } });
    await agent.close();
    expect(result.connections[0]!.error?.code).toBe('IDENTIFIER_COLLISION');
    expect(target.received.length).toBe(before);
  });

  it('fails a query whose placeholder has no value, naming the variable', async () => {
    const agent = makeTestAgent([connection({ optout: [query(`${target.url}/h?phone={phone}`, { verb: 'PUT' })] })]);
    const result = await agent.engine.run({ type: 'optout', identifiers: { email: 'a@b.c' } });
    await agent.close();
    expect(result.connections[0]!.error).toEqual({ code: 'TEMPLATE_MISSING_VARIABLE', message: expect.stringContaining('phone') });
  });
});
