import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { request } from 'undici';
import { AgentError, ErrorCodes, type ErrorCode } from '../src/errors.js';
import {
  parseTemplate,
  bodyKindFor,
  renderUrl,
  renderHeader,
  renderBody,
  type Template,
  type TemplateValues,
} from '../src/templates.js';

const vals = (identifiers: Record<string, string>, secrets: Record<string, string> = {}): TemplateValues => ({
  identifiers,
  secrets,
});

/** The AgentError `fn` throws; fails the test when it throws nothing or something else. */
function thrown(fn: () => unknown, code: ErrorCode): AgentError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe(code);
    return err as AgentError;
  }
  throw new Error(`expected AgentError ${code}, nothing was thrown`);
}

const HOSTILE = [
  'a"b',
  '{x}',
  '}{',
  '&admin=1',
  '../../etc',
  '/',
  '#frag',
  '?q=1',
  'x@evil.host',
  'a\nb',
  '\r\n',
  '\u0000',
  'üñí©ødé 😀',
  '\\',
  '</script>',
  '%2e%2e',
  "'(!*)~ +",
];

describe('the seed examples', () => {
  it('renders the access URL, the Basic auth header and the delete body exactly', () => {
    const v = vals({ email: 'peter@initech.com' }, { credentials: 'dXNlcjpwYXNz' });
    expect(renderUrl(parseTemplate('https://api.acme.com/v0/users?email={email}'), v)).toBe(
      'https://api.acme.com/v0/users?email=peter%40initech.com',
    );
    expect(renderUrl(parseTemplate('https://api.acme.com/v0/health-check'), v)).toBe('https://api.acme.com/v0/health-check');
    expect(renderHeader(parseTemplate('Basic {credentials}'), v)).toBe('Basic dXNlcjpwYXNz');
    const body = parseTemplate('{{"email": "{email}"}}');
    const kind = bodyKindFor(body, 'application/json');
    expect(kind).toBe('json');
    expect(renderBody(body, vals({ email: 'x@y.z' }), kind)).toBe('{"email": "x@y.z"}');
  });

  it('parses into frozen literal and name parts with distinct variables in order', () => {
    const t = parseTemplate('{b}/{a}?x={b}&{{{c}}}');
    expect(t.source).toBe('{b}/{a}?x={b}&{{{c}}}');
    expect(t.parts).toEqual([
      { name: 'b' }, { literal: '/' }, { name: 'a' }, { literal: '?x=' }, { name: 'b' }, { literal: '&{' }, { name: 'c' }, { literal: '}' },
    ]);
    expect(t.variables).toEqual(['b', 'a', 'c']);
    expect(Object.isFrozen(t) && Object.isFrozen(t.parts) && Object.isFrozen(t.parts[0]) && Object.isFrozen(t.variables)).toBe(true);
    expect(parseTemplate('').parts).toEqual([]);
  });
});

describe('literal braces', () => {
  it.each([
    ['{{', '{'],
    ['}}', '}'],
    ['{{}}', '{}'],
    ['a{{b}}c', 'a{b}c'],
    ['{{{v}}}', '{V}'],
    ['{{{{v}}}}', '{{v}}'],
    ['}}{v}{{', '}V{'],
  ])('%j renders as %j', (source, expected) => {
    expect(renderBody(parseTemplate(source), vals({ v: 'V' }), 'text')).toBe(expected);
  });
});

describe('parse errors', () => {
  it.each([
    ['abc}def', /^unbalanced '}' at column 4: write '}}' for a literal brace$/],
    ['{a}}', /^unbalanced '}' at column 4: write '}}'/],
    ['https://x/{', /^unbalanced '{' at column 11: write '{{' for a literal brace$/],
    ['https://x/?e={email', /^unterminated placeholder '{email' at column 14: close it with '}', or write '{{'/],
    ['x{}', /^empty placeholder '{}' at column 2: only named placeholders like \{email\} are supported/],
    ['ab{0}', /^positional placeholder '\{0\}' at column 3: only named placeholders like \{email\}/],
    ['{:>10}', /^placeholder '\{:>10\}' at column 1 has no name: only named placeholders like \{email\}/],
    ['{a.b}', /^attribute or index access in '\{a.b\}' at column 1 is not supported: only named placeholders/],
    ['xx{a[0]}', /^attribute or index access in '\{a\[0\]\}' at column 3 is not supported/],
    ['{a!r}', /^conversion in '\{a!r\}' at column 1 is not supported: only named placeholders like \{email\}/],
    ['{a:>10}', /^format spec in '\{a:>10\}' at column 1 is not supported: only named placeholders/],
    ['{a:{w}}', /^format spec in '\{a:' at column 1 is not supported/],
    ['{ email }', /^'\{ email \}' at column 1 is not a valid placeholder name .*write '\{\{' or '\}\}'/],
    ['{1a}', /^'\{1a\}' at column 1 is not a valid placeholder name/],
    ['{é}', /^'\{é\}' at column 1 is not a valid placeholder name/],
    ['x {a@b}', /^'\{a@b\}' at column 3 is not a valid placeholder name/],
    ['{a{b}}', /^unexpected '\{' at column 3 inside a placeholder: close the placeholder with '\}', or write '\{\{'/],
    ['{"email": "{email}"}', /^'\{"email": "' at column 1 is not a valid placeholder name .*\{\{\\"email\\": \\"\{email\}\\"\}\}/],
    ['😀😀}', /^unbalanced '}' at column 3:/],
    ['{{\n  "a": }\n}}', /^unbalanced '}' at line 2, column 8:/],
  ])('%j', (source, message) => {
    const err = thrown(() => parseTemplate(source), ErrorCodes.TEMPLATE_INVALID);
    expect(err.message).toMatch(message);
  });
});

describe('variable lookup', () => {
  it('names a missing variable (never a value) in url, header and body', () => {
    const v = vals({ email: 'peter@initech.com' }, { token: 's3cr3t-value' });
    for (const render of [
      () => renderUrl(parseTemplate('https://h/{user_id}?e={email}'), v),
      () => renderHeader(parseTemplate('Bearer {token} {user_id}'), v),
      () => renderBody(parseTemplate('{{"id": {user_id}}}'), v, 'json'),
    ]) {
      const err = thrown(render, ErrorCodes.TEMPLATE_MISSING_VARIABLE);
      expect(err.message).toContain("'user_id'");
      expect(err.message).toContain("pass it as an identifier or add the key to the connection's secret");
      expect(err.message).not.toContain('peter');
      expect(err.message).not.toContain('s3cr3t');
    }
  });

  it('does not resolve names from Object.prototype', () => {
    const err = thrown(() => renderHeader(parseTemplate('{constructor}{toString}'), vals({})), ErrorCodes.TEMPLATE_MISSING_VARIABLE);
    expect(err.message).toContain("'constructor'");
  });

  it('takes a secret over an identifier of the same name, unencoded', () => {
    const v = vals({ email: 'identifier@x.y' }, { email: 'secret@x.y', base: 'https://api.acme.com/v0' });
    expect(renderUrl(parseTemplate('{base}/users?email={email}'), v)).toBe('https://api.acme.com/v0/users?email=secret@x.y');
    expect(renderHeader(parseTemplate('{email}'), v)).toBe('secret@x.y');
    expect(renderBody(parseTemplate('{{"email": "{email}"}}'), v, 'json')).toBe('{"email": "secret@x.y"}');
    expect(renderBody(parseTemplate('{{"limit": {n}}}'), vals({}, { n: '10' }), 'json')).toBe('{"limit": 10}');
    expect(renderBody(parseTemplate('e={email}'), v, 'form')).toBe('e=secret@x.y');
  });

  it('renders a Template built by hand, not by parseTemplate', () => {
    const t: Template = { source: 'https://x/?q={v}', parts: [{ literal: 'https://x/?q=' }, { name: 'v' }], variables: ['v'] };
    expect(renderUrl(t, vals({ v: 'a b' }))).toBe('https://x/?q=a%20b');
  });
});

describe('hostile identifiers in a URL', () => {
  it.each(HOSTILE)('%j in the query stays one query parameter', (value) => {
    const t = parseTemplate('https://api.acme.com/v0/users?email={email}&type=access#top');
    const url = new URL(renderUrl(t, vals({ email: value })));
    expect(url.protocol).toBe('https:');
    expect(url.host).toBe('api.acme.com');
    expect(url.pathname).toBe('/v0/users');
    expect([...url.searchParams.keys()]).toEqual(['email', 'type']);
    expect(url.searchParams.get('email')).toBe(value);
    expect(url.searchParams.get('type')).toBe('access');
    expect(url.hash).toBe('#top');
  });

  it.each(HOSTILE)('%j in the path stays one path segment', (value) => {
    const t = parseTemplate('https://api.acme.com/v0/users/{user_id}/data?x=1');
    const url = new URL(renderUrl(t, vals({ user_id: value })));
    expect(url.host).toBe('api.acme.com');
    const segments = url.pathname.split('/');
    expect(segments).toHaveLength(5);
    expect(segments.slice(0, 3)).toEqual(['', 'v0', 'users']);
    expect(decodeURIComponent(segments[3])).toBe(value);
    expect(segments[4]).toBe('data');
    expect(url.search).toBe('?x=1');
    expect(url.hash).toBe('');
  });

  it.each([...HOSTILE, 'tenant-a', 'evil.com'])('refuses %j as a subdomain, user info or port: a request value never picks the host (issue 10)', (value) => {
    for (const source of ['https://{tenant}.acme.com/x', 'https://{tenant}@acme.com/x', 'https://acme.com:{tenant}/x', '{tenant}://acme.com/x']) {
      expect(() => renderUrl(parseTemplate(source), vals({ tenant: value }))).toThrow(expect.objectContaining({ code: 'IDENTIFIER_INVALID', message: expect.stringMatching(/scheme or host/) }));
    }
    // A secret may still fill the host (a base URL, a tenant from the connection's secret).
    const url = new URL(renderUrl(parseTemplate('https://{tenant}.acme.com/x/{id}'), { identifiers: { id: '7' }, secrets: { tenant: 'acme-eu' } }));
    expect(url.host).toBe('acme-eu.acme.com');
  });

  it.each(['', '.', '..'])('refuses %j where it would make a path segment empty, "." or ".."', (value) => {
    for (const source of ['https://api.acme.com/v0/users/{id}', 'https://api.acme.com/v0/users/{id}/delete']) {
      const err = thrown(() => renderUrl(parseTemplate(source), vals({ id: value })), ErrorCodes.IDENTIFIER_INVALID);
      expect(err.message).toMatch(/^identifier 'id' would make a URL path segment empty/);
    }
    // In the host it is refused before any segment rule: no identifier goes there at all.
    expect(thrown(() => renderUrl(parseTemplate('https://{id}/x'), vals({ id: value })), ErrorCodes.IDENTIFIER_INVALID).message).toMatch(/scheme or host/);
  });

  it('refuses identifiers that together make a dot segment', () => {
    const t = parseTemplate('https://h/users/{a}{b}?q=1');
    thrown(() => renderUrl(t, vals({ a: '.', b: '.' })), ErrorCodes.IDENTIFIER_INVALID);
    thrown(() => renderUrl(t, vals({ a: '%2', b: 'e' }, { a: '%2' })), ErrorCodes.IDENTIFIER_INVALID);
    expect(renderUrl(t, vals({ a: '.', b: '.x' }))).toBe('https://h/users/..x?q=1');
    thrown(() => renderUrl(parseTemplate('https://h/.{id}/x'), vals({ id: '' })), ErrorCodes.IDENTIFIER_INVALID);
    thrown(() => renderUrl(parseTemplate('https://h/.{id}/x'), vals({ id: '.' })), ErrorCodes.IDENTIFIER_INVALID);
  });

  it('accepts empty and dot values where they leave the segment intact', () => {
    expect(renderUrl(parseTemplate('https://h/users/x{id}?e={id}#{id}'), vals({ id: '' }))).toBe('https://h/users/x?e=#');
    expect(renderUrl(parseTemplate('https://h/v{id}/x'), vals({ id: '..' }))).toBe('https://h/v../x');
    expect(renderUrl(parseTemplate('https://h/x?q={id}'), vals({ id: '..' }))).toBe('https://h/x?q=..');
  });

  it('refuses a lone surrogate, naming only the identifier', () => {
    const err = thrown(() => renderUrl(parseTemplate('https://h/?e={email}'), vals({ email: 'a\uD800b' })), ErrorCodes.IDENTIFIER_INVALID);
    expect(err.message).toMatch(/^identifier 'email' is not well-formed Unicode/);
  });
});

describe('hostile identifiers in a JSON body', () => {
  it.each(HOSTILE)('%j inside a JSON string of the template stays that string', (value) => {
    const t = parseTemplate('{{"email": "{email}", "kind": "delete"}}');
    const parsed = JSON.parse(renderBody(t, vals({ email: value }), bodyKindFor(t, 'application/json')));
    expect(Object.keys(parsed)).toEqual(['email', 'kind']);
    expect(parsed.email).toBe(value);
    expect(parsed.kind).toBe('delete');
  });

  it.each(HOSTILE)('%j outside a string becomes one JSON string', (value) => {
    const t = parseTemplate('{{"id": {user_id}, "tags": [{user_id}, "x-{user_id}"], "kind": "delete"}}');
    const parsed = JSON.parse(renderBody(t, vals({ user_id: value }), bodyKindFor(t, undefined)));
    expect(Object.keys(parsed)).toEqual(['id', 'tags', 'kind']);
    expect(parsed.id).toBe(value);
    expect(parsed.tags).toEqual([value, `x-${value}`]);
    expect(parsed.kind).toBe('delete');
  });

  it('keeps a doubled backslash literal and refuses a placeholder right after a lone backslash', () => {
    const ok = parseTemplate('{{"path": "C:\\\\{dir}"}}');
    expect(bodyKindFor(ok, 'application/json')).toBe('json');
    expect(JSON.parse(renderBody(ok, vals({ dir: 'a"b' }), 'json'))).toEqual({ path: 'C:\\a"b' });

    const bad = parseTemplate('{{"path": "C:\\{dir}"}}');
    const err = thrown(() => bodyKindFor(bad, 'application/json'), ErrorCodes.TEMPLATE_INVALID);
    expect(err.message).toMatch(/^placeholder \{dir\} in a JSON body comes right after a lone backslash/);
    thrown(() => renderBody(bad, vals({ dir: '"}' }), 'json'), ErrorCodes.TEMPLATE_INVALID);
    expect(bodyKindFor(bad, undefined)).toBe('text');
  });
});

describe('hostile identifiers in a form body', () => {
  it.each(HOSTILE)('%j stays one form field', (value) => {
    const t = parseTemplate('email={email}&action=delete');
    const body = renderBody(t, vals({ email: value }), bodyKindFor(t, 'application/x-www-form-urlencoded'));
    expect(body).not.toMatch(/[ "<>\\{}]/);
    const form = new URLSearchParams(body);
    expect([...form.keys()]).toEqual(['email', 'action']);
    expect(form.get('email')).toBe(value);
    expect(form.get('action')).toBe('delete');
  });

  it('encodes a space as +', () => {
    expect(renderBody(parseTemplate('q={q}'), vals({ q: 'a b+c' }), 'form')).toBe('q=a+b%2Bc');
  });
});

describe('identifiers in a text body', () => {
  it.each(HOSTILE)('%j goes in exactly as given', (value) => {
    expect(renderBody(parseTemplate('user: {email}!'), vals({ email: value }), 'text')).toBe(`user: ${value}!`);
  });
});

describe('hostile identifiers in a header', () => {
  const refused = new Set(['a\nb', '\r\n', '\u0000', 'üñí©ødé 😀']);

  it.each(HOSTILE.filter((v) => !refused.has(v)))('%j goes in as it is', (value) => {
    expect(renderHeader(parseTemplate('subject {email};'), vals({ email: value }))).toBe(`subject ${value};`);
  });

  it.each(['a\nb', '\r\n', '\u0000', 'x\rSet-Cookie: a=b'])('%j (line break or NUL) is refused without showing the value', (value) => {
    const err = thrown(() => renderHeader(parseTemplate('subject {email}'), vals({ email: value })), ErrorCodes.IDENTIFIER_INVALID);
    expect(err.message).toMatch(/^identifier 'email' contains a line break or NUL, which cannot go into header/);
    expect(err.message).not.toContain('Set-Cookie');
  });

  it.each(['üñí©ødé 😀', '\u0001', '\u007f', '\u2028'])('%j (not sendable in a header) is refused', (value) => {
    const err = thrown(() => renderHeader(parseTemplate('{email}'), vals({ email: value })), ErrorCodes.IDENTIFIER_INVALID);
    expect(err.message).toMatch(/^identifier 'email' contains a control character or a character outside Latin-1/);
  });

  it('lets trusted secrets through as they are', () => {
    expect(renderHeader(parseTemplate('Bearer {t}'), vals({}, { t: 'a\nb' }))).toBe('Bearer a\nb');
  });

  describe('against a real HTTP exchange', () => {
    let server: http.Server;
    let url: string;
    const seen: string[] = [];
    beforeAll(async () => {
      server = http.createServer((req, res) => {
        seen.push(String(req.headers['x-subject']));
        res.end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('an accepted value arrives unchanged; a refused one is one undici would refuse too', async () => {
      const t = parseTemplate('s {email}');
      for (const value of HOSTILE.filter((v) => !refused.has(v)).concat(['üñí©ødé'])) {
        const res = await request(url, { headers: { 'x-subject': renderHeader(t, vals({ email: value })) } });
        await res.body.dump();
        expect(seen.pop()).toBe(`s ${value}`);
      }
      for (const value of refused) {
        thrown(() => renderHeader(t, vals({ email: value })), ErrorCodes.IDENTIFIER_INVALID);
        await expect(request(url, { headers: { 'x-subject': `s ${value}` } })).rejects.toThrow();
      }
      expect(seen).toEqual([]);
    });
  });
});

describe('bodyKindFor', () => {
  const jsonBody = parseTemplate('{{"email": "{email}"}}');
  it.each([
    ['application/json', 'json'],
    ['Application/JSON; charset=utf-8', 'json'],
    ['application/vnd.api+json', 'json'],
    ['application/merge-patch+json', 'json'],
    ['application/x-www-form-urlencoded', 'form'],
    ['application/x-www-form-urlencoded;charset=UTF-8', 'form'],
    ['text/plain', 'text'],
    ['application/xml', 'text'],
    [undefined, 'json'],
    ['', 'json'],
    ['{content_type}', 'json'],
  ] as const)('Content-Type %j on a JSON-looking body → %s', (contentType, kind) => {
    expect(bodyKindFor(jsonBody, contentType)).toBe(kind);
  });

  it.each([
    ['{{"email": "{email}"}}', 'json'],
    ['{{"id": {user_id}, "n": 1}}', 'json'],
    ['[{{"a": "{b}"}}, {c}]', 'json'],
    ['  {{"a": true}}\n', 'json'],
    ['email={email}', 'text'],
    ['{email}', 'text'],
    ['"{email}"', 'text'],
    ['{{"a": {b}0}}', 'text'],
    ['{{"a": "{b}"', 'text'],
    ['', 'text'],
  ] as const)('without a Content-Type, %j → %s', (source, kind) => {
    expect(bodyKindFor(parseTemplate(source), undefined)).toBe(kind);
  });
});

describe('one Template, many renders', () => {
  it('gives independent results and leaves the template unchanged', () => {
    const url = parseTemplate('https://h/u/{id}?e={email}');
    const body = parseTemplate('{{"id": {id}, "email": "{email}"}}');
    const before = JSON.stringify(url.parts) + JSON.stringify(body.parts);
    const a = vals({ id: '1', email: 'a@x.y' });
    const b = vals({ id: '2', email: 'b"@x.y' });
    const first = [renderUrl(url, a), renderBody(body, a, 'json')];
    const second = [renderUrl(url, b), renderBody(body, b, 'json')];
    expect(first).toEqual(['https://h/u/1?e=a%40x.y', '{"id": "1", "email": "a@x.y"}']);
    expect(second).toEqual(['https://h/u/2?e=b%22%40x.y', '{"id": "2", "email": "b\\"@x.y"}']);
    expect([renderUrl(url, a), renderBody(body, a, 'json')]).toEqual(first);
    expect(JSON.stringify(url.parts) + JSON.stringify(body.parts)).toBe(before);
  });
});
