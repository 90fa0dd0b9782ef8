import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeSshConnector } from '../src/connectors/ssh.js';
import { quoteFor, renderCommand, shellPlanOf, shellQuote } from '../src/connectors/shell-quote.js';
import type { Connector, ConnectorRun, RunStatement } from '../src/connectors/types.js';
import type { Connection, QueryType } from '../src/config/types.js';
import { makeMask } from '../src/engine/mask.js';
import type { RetryPolicy } from '../src/engine/send.js';
import { AgentError, ErrorCodes } from '../src/errors.js';
import { parseTemplate } from '../src/templates.js';
import { captureLogs, type LogCapture } from './helpers/agent.js';
import { otherHostKey, startSshServer, type TestSshServer } from './helpers/ssh-server.js';

const EMAIL = 'peter@initech.com';
const NODE = shellQuote(process.execPath);

let dir: string;
let canary: string;
/** `node argv.js`: prints `[{"argv": [...its arguments]}]`. */
let ARGV: string;
/** `node gen.js N SIZE`: prints a JSON array of N objects of about SIZE bytes each. */
let GEN: string;
/** `sh lookup.sh EMAIL`: prints one record for the email. */
let LOOKUP: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dsr-ssh-'));
  canary = join(dir, 'pwned');
  writeFileSync(join(dir, 'argv.js'), 'process.stdout.write(JSON.stringify([{ argv: process.argv.slice(2) }]));\n');
  writeFileSync(
    join(dir, 'gen.js'),
    [
      'const n = Number(process.argv[2]); const pad = "x".repeat(Number(process.argv[3]));',
      'const fs = require("node:fs"); let buf = "[";',
      'for (let i = 0; i < n; i++) {',
      '  buf += (i ? "," : "") + JSON.stringify({ id: i, email: "user" + i + "@example.com", pad });',
      '  if (buf.length > 65536) { fs.writeSync(1, buf); buf = ""; }',
      '}',
      'fs.writeSync(1, buf + "]");',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'lookup.sh'), 'printf \'[{"email":"%s","plan":"pro"},{"email":"%s","plan":"legacy"}]\' "$1" "$1"\n');
  ARGV = `${NODE} ${shellQuote(join(dir, 'argv.js'))}`;
  GEN = `${NODE} ${shellQuote(join(dir, 'gen.js'))}`;
  LOOKUP = `sh ${shellQuote(join(dir, 'lookup.sh'))}`;
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let server: TestSshServer | undefined;
let connector: Connector | undefined;
afterEach(async () => {
  await connector?.close();
  await server?.close();
  connector = server = undefined;
});

async function setup(opts: { encryptedKey?: boolean } = {}): Promise<{ server: TestSshServer; connector: Connector }> {
  server = await startSshServer(opts);
  connector = makeSshConnector();
  return { server, connector };
}

const FAST_RETRY: RetryPolicy = { retries: 0, minDelayMs: 10, maxDelayMs: 50 };

interface Built {
  run: ConnectorRun;
  records: Array<Record<string, unknown>>;
  logs: LogCapture;
  abort: AbortController;
}

/** A ConnectorRun as the engine builds it; each text is one statement labelled `<type>[i]`. */
function makeRun(
  texts: readonly string[],
  opts: {
    type?: QueryType;
    identifiers?: Record<string, string>;
    secret?: Record<string, string>;
    retry?: RetryPolicy;
    level?: string;
    maxObjectBytes?: number;
    consume?: (r: Record<string, unknown>) => void | Promise<void>;
    identifier?: string;
  } = {},
): Built {
  const type = opts.type ?? 'access';
  const identifiers = opts.identifiers ?? { email: EMAIL };
  const secret = opts.secret ?? server!.secret();
  const records: Array<Record<string, unknown>> = [];
  const logs = captureLogs(opts.level ?? 'INFO');
  const abort = new AbortController();
  const reads = type === 'access' || type === 'identifiers';
  const statements: RunStatement[] = texts.map((text, i) => ({
    label: type === 'identifiers' ? `identifiers.${opts.identifier ?? 'user_id'}[${i}]` : `${type}[${i}]`,
    text,
    identifier: type === 'identifiers' ? (opts.identifier ?? 'user_id') : undefined,
    consume: reads ? (opts.consume ?? ((r) => void records.push(r))) : undefined,
  }));
  const conn = {
    name: 'Billing box',
    uuid: '00000000-0000-4000-8000-00000000ssh1',
    capabilities: ['privacy/access', 'privacy/delete', 'privacy/identifiers'],
    mode: 'live',
    connector_type: 'SSH',
    queries: { [type]: texts },
    credentials_location: 'billing-box',
  } as unknown as Connection;
  const run: ConnectorRun = {
    conn,
    type,
    identifiers,
    secret: Object.freeze({ ...secret }),
    signal: abort.signal,
    log: logs.logger,
    retry: opts.retry ?? FAST_RETRY,
    maxObjectBytes: opts.maxObjectBytes ?? 1024 * 1024,
    mask: makeMask([...Object.values(identifiers), ...Object.values(secret)]),
    statements,
  };
  return { run, records, logs, abort };
}

async function failure(p: Promise<unknown>): Promise<AgentError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('expected a failure');
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function parsedLogs(logs: LogCapture): Array<Record<string, unknown>> {
  return logs.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('shell quoting', () => {
  test('POSIX single quotes; a quote becomes an escaped quote between quoted parts', () => {
    expect(shellQuote('abc')).toBe("'abc'");
    expect(shellQuote('')).toBe("''");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("'")).toBe("''\\'''");
    expect(quoteFor("a'b", 'single')).toBe("a'\\''b");
    expect(quoteFor("a'b", 'double')).toBe(`"'a'\\''b'"`);
  });

  test('each placeholder is quoted for where it sits', () => {
    const contexts = (source: string) => shellPlanOf(parseTemplate(source)).contexts;
    expect(contexts('lookup {email}')).toEqual(['plain']);
    expect(contexts("lookup --email '{email}' {id}")).toEqual(['single', 'plain']);
    expect(contexts('lookup "{email}"')).toEqual(['double']);
    expect(contexts('lookup --email={email} "$(echo {id})"')).toEqual(['plain', 'plain']);
    expect(contexts("lookup # it's a comment\n{email}")).toEqual(['plain']);
    expect(contexts("lookup 'a\\' {email}")).toEqual(['plain']);
    expect(contexts('lookup \\\'{email}')).toEqual(['plain']);
    expect(contexts('lookup "a\\"b" {email} <<< {id}')).toEqual(['plain', 'plain']);
    expect(contexts('lookup {{"k": 1}} {email}')).toEqual(['plain']);
  });

  test.each([
    ['lookup `echo {email}`', /inside `…`/],
    ["lookup $'{email}'", /\$'…'/],
    ['lookup ${{x:-{email}}}', /\$\{…\}/],
    ['lookup $(( {email} + 1 ))', /arithmetic/],
    ['lookup ${email}', /follows a '\$'/],
    ['lookup \\{email}', /backslash/],
    ['lookup "\\{email}"', /backslash/],
    ['cat <<EOF\n{email}\nEOF', /here-document/],
    ["lookup '{email}", /balance its quotes/],
    ['lookup "$(echo {email}"', /balance its quotes/],
  ])('refuses a placeholder where no quoting is safe: %j', (source, message) => {
    let err: unknown;
    try {
      shellPlanOf(parseTemplate(source));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe(ErrorCodes.TEMPLATE_INVALID);
    expect((err as AgentError).message).toMatch(message);
  });

  test('renders values; refuses line breaks, NUL and missing names without quoting the value', () => {
    const t = parseTemplate("lookup {email} --note '{note}'");
    expect(renderCommand(t, { email: "o'neil@x.io", note: "it's" }, { label: 'access[0]' })).toBe(
      "lookup 'o'\\''neil@x.io' --note 'it'\\''s'",
    );
    expect(renderCommand(t, { email: 'a', note: 'b' }, { label: 'access[0]', masked: '****' })).toBe("lookup **** --note '****'");
    for (const bad of ['a\nb', 'a\rb', 'a\0b', 'a\ud800b']) {
      let err: unknown;
      try {
        renderCommand(t, { email: bad, note: 'n' }, { label: 'access[0]' });
      } catch (e) {
        err = e;
      }
      expect((err as AgentError).code).toBe(ErrorCodes.IDENTIFIER_INVALID);
      expect((err as AgentError).message).toContain("identifier 'email'");
      expect((err as AgentError).message).not.toContain(bad);
    }
    expect(() => renderCommand(t, { email: 'a' }, { label: 'access[0]' })).toThrow(/placeholder \{note\} in access\[0\] has no value/);
    expect(() => renderCommand(parseTemplate('x {password}'), {}, { label: 'test[0]', secretKeys: ['password'] })).toThrow(
      /secret keys are not placeholders/,
    );
  });
});

describe('SSH connector', () => {
  test('access: stdout is a JSON array of objects, one record each; labels and durations at INFO, no values', async () => {
    const { server, connector } = await setup();
    const { run, records, logs } = makeRun([`printf '%s' '[{{"email":"x"}}]'`, `${LOOKUP} {email}`]);
    await connector.run(run);
    expect(records).toEqual([{ email: 'x' }, { email: EMAIL, plan: 'pro' }, { email: EMAIL, plan: 'legacy' }]);
    expect(server.connections).toBe(1);
    expect(server.execs.map((e) => e.command)).toEqual([`printf '%s' '[{"email":"x"}]'`, `${LOOKUP} '${EMAIL}'`]);
    const lines = parsedLogs(logs);
    const done = lines.filter((l) => l.msg === 'command succeeded');
    expect(done.map((l) => l.query)).toEqual(['access[0]', 'access[1]']);
    expect(done.every((l) => typeof l.ms === 'number' && l.level === 'info')).toBe(true);
    const text = logs.lines().join('\n');
    expect(text).not.toContain(EMAIL);
    expect(text).not.toContain('lookup.sh');
    await until('the connection to close', () => server.openConnections === 0);
  });

  test('DEBUG shows the rendered command', async () => {
    await setup();
    const { run, logs } = makeRun([`${LOOKUP} {email}`], { level: 'DEBUG' });
    await connector!.run(run);
    expect(parsedLogs(logs).find((l) => l.msg === 'running SSH command')?.command).toBe(`${LOOKUP} '${EMAIL}'`);
  });

  test('identifiers: objects keyed by the identifier name', async () => {
    await setup();
    const { run, records } = makeRun([`printf '%s' '[{{"user_id":"42"}},{{"user_id":"43"}}]' # {email}`], {
      type: 'identifiers',
      identifier: 'user_id',
    });
    await connector!.run(run);
    expect(records).toEqual([{ user_id: '42' }, { user_id: '43' }]);
  });

  test('test without statements runs `true`; delete ignores stdout', async () => {
    const { server, connector } = await setup();
    await connector.run(makeRun([], { type: 'test' }).run);
    expect(server.execs.map((e) => e.command)).toEqual(['true']);
    expect(connector.plan(makeRun([], { type: 'test' }).run)).toEqual([{ query: 'test', statement: 'true' }]);
    await connector.run(makeRun(['echo deleted {email}, not json', 'echo more'], { type: 'delete' }).run);
    expect(server.execs.map((e) => e.command).slice(1)).toEqual([`echo deleted '${EMAIL}', not json`, 'echo more']);
    expect(server.connections).toBe(2);
  });

  test('hostile identifiers arrive as exactly one argument with exactly their value', async () => {
    const { server, connector } = await setup();
    const values = [
      `'; touch ${canary} #`,
      `$(touch ${canary})`,
      `\`touch ${canary}\``,
      `"; touch ${canary}; "`,
      '\\',
      `a\\'b"c\\"d'`,
      'ünïcødé ✓ 名前 😀',
      '  two  spaces  ',
      '\t tab',
      '*',
      '~',
      '$HOME ${HOME} $((1+1))',
      '!! !$',
      '-n',
      '',
      `x' > ${canary}; echo '`,
      `${'\'"$`\\ '.repeat(2048)}`,
    ];
    expect(values.at(-1)!.length).toBe(12288);
    const identifiers = Object.fromEntries(values.map((v, i) => [`v${i}`, v]));
    const { run, records } = makeRun(
      values.map((_, i) => `${ARGV} {v${i}}`),
      { identifiers },
    );
    await connector.run(run);
    expect(records.map((r) => r.argv)).toEqual(values.map((v) => [v]));
    expect(existsSync(canary)).toBe(false);
    expect(server.connections).toBe(1);
  });

  test('a placeholder the author quoted still lands as the author meant, whatever the value', async () => {
    const { connector } = await setup();
    const v = `x'y"z$(touch ${canary})\`touch ${canary}\`\\`;
    const { run, records } = makeRun(
      [
        `${ARGV} '{v}'`,
        `${ARGV} "{v}"`,
        `${ARGV} --value={v}`,
        `${ARGV} 'pre {v} post'`,
        `${ARGV} "pre {v} post"`,
        `${ARGV} pre{v}post {v}`,
        `${ARGV} "$(printf '%s' {v})"`,
        `${ARGV} # comment: it's {v}`,
      ],
      { identifiers: { v } },
    );
    await connector.run(run);
    expect(records.map((r) => r.argv)).toEqual([
      [v],
      [v],
      [`--value=${v}`],
      [`pre ${v} post`],
      [`pre ${v} post`],
      [`pre${v}post`, v],
      [v],
      [],
    ]);
    expect(existsSync(canary)).toBe(false);
  });

  test('CR, LF and NUL are refused before anything is sent', async () => {
    const { server, connector } = await setup();
    for (const bad of [`a@x.io\ntouch ${canary}`, 'a@x.io\r', 'a\0b']) {
      const err = await failure(connector.run(makeRun([`${ARGV} {email}`], { identifiers: { email: bad } }).run));
      expect(err.code).toBe(ErrorCodes.IDENTIFIER_INVALID);
      expect(err.message).not.toContain('a@x.io');
    }
    expect(server.connections).toBe(0);
    expect(existsSync(canary)).toBe(false);
  });

  test('a missing identifier (or a secret key used as one) fails with TEMPLATE_MISSING_VARIABLE', async () => {
    const { server, connector } = await setup();
    const err = await failure(connector.run(makeRun([`${ARGV} {user_id}`]).run));
    expect(err.code).toBe(ErrorCodes.TEMPLATE_MISSING_VARIABLE);
    expect(err.message).toContain('{user_id}');
    const secretErr = await failure(connector.run(makeRun([`${ARGV} {password}`]).run));
    expect(secretErr.code).toBe(ErrorCodes.TEMPLATE_MISSING_VARIABLE);
    expect(secretErr.message).toContain('secret keys are not placeholders');
    expect(server.connections).toBe(0);
  });

  test('a non-zero exit fails with COMMAND_FAILED and the masked first line of stderr', async () => {
    const { connector } = await setup();
    const { run } = makeRun([`echo '[]'; echo "no user {email} in crm" >&2; echo second line >&2; exit 3`]);
    const err = await failure(connector.run(run));
    expect(err.code).toBe(ErrorCodes.COMMAND_FAILED);
    expect(err.message).toBe('access[0] exited with status 3: no user *** in crm');

    const long = await failure(connector.run(makeRun([`printf '%0500d\\n' 0 >&2; exit 1`], { type: 'delete' }).run));
    expect(long.code).toBe(ErrorCodes.COMMAND_FAILED);
    expect(long.message.startsWith('delete[0] exited with status 1: 000')).toBe(true);
    expect(long.message.length).toBeLessThanOrEqual('delete[0] exited with status 1: '.length + 200);

    const silent = await failure(connector.run(makeRun(['exit 7']).run));
    expect(silent.message).toBe('access[0] exited with status 7');
  });

  test('output that is not a JSON array of objects fails with RESPONSE_MALFORMED', async () => {
    const { connector } = await setup();
    const err = await failure(connector.run(makeRun(['echo not json {email}']).run));
    expect(err.code).toBe(ErrorCodes.RESPONSE_MALFORMED);
    expect(err.message).toContain('output of access[0]');
    expect(err.message).not.toContain(EMAIL);
    const scalar = await failure(connector.run(makeRun(["printf '[1]'"]).run));
    expect(scalar.code).toBe(ErrorCodes.RESPONSE_MALFORMED);
  });

  test('an object over max_object_bytes fails and stops the command', async () => {
    const { server, connector } = await setup();
    const { run } = makeRun([`${GEN} 1 4096; sleep 30`], { maxObjectBytes: 1024 });
    const started = Date.now();
    const err = await failure(connector.run(run));
    expect(err.code).toBe(ErrorCodes.RESPONSE_OBJECT_TOO_LARGE);
    expect(Date.now() - started).toBeLessThan(10_000);
    await until('the command to be killed', () => server.execs[0]?.exit !== undefined);
  });

  describe('host key', () => {
    test('a different key is refused before anything runs, naming the presented key', async () => {
      const { server, connector } = await setup();
      const err = await failure(connector.run(makeRun([`${ARGV} {email}`], { secret: server.secret({ host_key: otherHostKey() }) }).run));
      expect(err.code).toBe(ErrorCodes.HOST_KEY_REJECTED);
      expect(err.message).toContain('"Billing box"');
      expect(err.message).toContain(`ssh-ed25519 ${server.hostKeyFingerprint}`);
      expect(server.auths).toEqual([]);
      expect(server.execs).toEqual([]);
    });

    test('a pinned key of a type the server does not have is refused', async () => {
      const { server, connector } = await setup();
      const err = await failure(connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ host_key: otherHostKey('ecdsa') }) }).run));
      expect(err.code).toBe(ErrorCodes.HOST_KEY_REJECTED);
      expect(err.message).toContain('ecdsa-sha2-nistp256');
      expect(server.auths).toEqual([]);
      expect(server.execs).toEqual([]);
    });

    test('a full known_hosts line and several keys are accepted', async () => {
      const { server, connector } = await setup();
      const hostKey = `${otherHostKey()}\n[127.0.0.1]:${server.port} ${server.hostKey} comment`;
      await connector.run(makeRun(['true'], { type: 'delete', secret: server.secret({ host_key: hostKey }) }).run);
      expect(server.execs).toHaveLength(1);
    });

    test('without host_key the connection is refused, with how to get it', async () => {
      const { server, connector } = await setup();
      const err = await failure(connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ host_key: undefined }) }).run));
      expect(err.code).toBe(ErrorCodes.HOST_KEY_REJECTED);
      expect(err.message).toContain('ssh-keyscan -t ed25519');
      expect(err.message).toContain('host_key_check');
      expect(server.connections).toBe(0);
    });

    test('host_key_check "false" connects without a key, with a WARN on every connect', async () => {
      const { server, connector } = await setup();
      const secret = server.secret({ host_key: undefined, host_key_check: 'false' });
      const { run, logs } = makeRun(['true'], { type: 'test', secret });
      await connector.run(run);
      await connector.run(run);
      expect(server.execs).toHaveLength(2);
      const warns = parsedLogs(logs).filter((l) => l.level === 'warn');
      expect(warns).toHaveLength(2);
      expect(String(warns[0].msg)).toContain('host_key_check');
    });

    test('a malformed host_key is a SECRET_INVALID', async () => {
      const { server, connector } = await setup();
      const err = await failure(connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ host_key: 'ssh-ed25519 not-base64!' }) }).run));
      expect(err.code).toBe(ErrorCodes.SECRET_INVALID);
      expect(err.message).toContain('host_key');
      expect(server.connections).toBe(0);
    });
  });

  describe('login', () => {
    test('password', async () => {
      const { server, connector } = await setup();
      await connector.run(makeRun(['true'], { type: 'test' }).run);
      expect(server.auths).toEqual([{ method: 'password', accepted: true }]);
    });

    test('private key, preferred over the password', async () => {
      const { server, connector } = await setup();
      await connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ password: undefined, private_key: server.clientKey.private }) }).run);
      await connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ private_key: server.clientKey.private }) }).run);
      // A key stored on one line with literal \n separators.
      const oneLine = server.clientKey.private.trim().replaceAll('\n', '\\n');
      await connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ password: undefined, private_key: oneLine }) }).run);
      expect(server.auths.map((a) => a.method)).not.toContain('password');
      expect(server.auths.every((a) => a.method === 'publickey' && a.accepted)).toBe(true);
      expect(server.execs).toHaveLength(3);
    });

    test('an encrypted key with its passphrase; without it, SECRET_INVALID', async () => {
      const { server, connector } = await setup({ encryptedKey: true });
      const key = server.encryptedClientKey!;
      await connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ password: undefined, private_key: key.private, passphrase: key.passphrase }) }).run);
      expect(server.execs).toHaveLength(1);
      const err = await failure(connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ password: undefined, private_key: key.private }) }).run));
      expect(err.code).toBe(ErrorCodes.SECRET_INVALID);
      expect(err.message).toContain('passphrase');
      const wrong = await failure(
        connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ password: undefined, private_key: key.private, passphrase: 'nope' }) }).run),
      );
      expect(wrong.code).toBe(ErrorCodes.SECRET_INVALID);
      expect(server.connections).toBe(1);
    });

    test('a wrong password fails with CONNECT_FAILED after one attempt, never quoting it', async () => {
      const { server, connector } = await setup();
      const secret = server.secret({ password: 'hunter2-wrong' });
      const { run } = makeRun(['true'], { type: 'test', secret, retry: { retries: 3, minDelayMs: 10, maxDelayMs: 20 } });
      const err = await failure(connector.run(run));
      expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
      expect(err.message).toContain('"Billing box"');
      expect(err.message).toContain('refused the login');
      expect(err.message).not.toContain('hunter2');
      expect(server.connections).toBe(1);
      expect(server.auths).toEqual([{ method: 'password', accepted: false }]);
    });

    test('missing username or server is a SECRET_INVALID naming the key', async () => {
      const { server, connector } = await setup();
      const noUser = await failure(connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ username: undefined }) }).run));
      expect(noUser.code).toBe(ErrorCodes.SECRET_INVALID);
      expect(noUser.message).toContain('username');
      const noServer = await failure(connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ server: undefined }) }).run));
      expect(noServer.code).toBe(ErrorCodes.SECRET_INVALID);
      expect(noServer.message).toContain('server');
      const noAuth = await failure(connector.run(makeRun(['true'], { type: 'test', secret: server.secret({ password: undefined }) }).run));
      expect(noAuth.code).toBe(ErrorCodes.SECRET_INVALID);
      expect(server.connections).toBe(0);
    });
  });

  describe('connection failures', () => {
    async function freePort(): Promise<number> {
      const s = createServer();
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
      const port = (s.address() as { port: number }).port;
      await new Promise<void>((r) => s.close(() => r()));
      return port;
    }

    test('a refused port is retried with backoff, then CONNECT_FAILED', async () => {
      connector = makeSshConnector();
      const port = await freePort();
      const secret = { username: 'dsr', password: 'pw', server: '127.0.0.1', port: String(port), host_key_check: 'false' };
      const { run, logs } = makeRun(['true'], { type: 'test', secret, retry: { retries: 2, minDelayMs: 10, maxDelayMs: 20 } });
      const err = await failure(connector.run(run));
      expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
      expect(err.message).toContain('ECONNREFUSED');
      expect(err.message).toContain('after 3 attempts');
      expect(parsedLogs(logs).filter((l) => l.msg === 'retrying SSH connection')).toHaveLength(2);
    });

    test('a server that comes up during the retries is reached', async () => {
      connector = makeSshConnector();
      const port = await freePort();
      const secret = { username: 'dsr', password: 'open sesame', server: '127.0.0.1', port: String(port), host_key_check: 'false' };
      const { run, logs } = makeRun(['true'], { type: 'test', secret, retry: { retries: 30, minDelayMs: 50, maxDelayMs: 100 } });
      const running = connector.run(run);
      await sleep(150);
      server = await startSshServer({ port });
      await running;
      expect(server.execs.map((e) => e.command)).toEqual(['true']);
      expect(parsedLogs(logs).filter((l) => l.msg === 'retrying SSH connection').length).toBeGreaterThan(0);
    });
  });

  describe('deadline and shutdown', () => {
    test('the job timeout kills the remote command and throws the signal reason', async () => {
      const { server, connector } = await setup();
      const { run, abort } = makeRun(['sleep 30'], { type: 'delete' });
      const started = Date.now();
      const running = connector.run(run);
      await until('the command to start', () => server.execs[0]?.pid !== undefined);
      const reason = new AgentError(ErrorCodes.JOB_TIMEOUT, 'job_timeout_seconds expired');
      abort.abort(reason);
      await expect(running).rejects.toBe(reason);
      expect(Date.now() - started).toBeLessThan(5000);
      await until('the remote command to end', () => server.execs[0].exit !== undefined);
      expect(server.execs[0].signals).toContain('KILL');
      expect(server.execs[0].exit).toEqual({ code: null, signal: 'SIGKILL' });
      expect(() => process.kill(server.execs[0].pid!, 0)).toThrow();
      await until('the connection to close', () => server.openConnections === 0);
    });

    test('a timeout while streaming access output stops it too', async () => {
      const { server, connector } = await setup();
      let reason: AgentError | undefined;
      const built = makeRun([`${GEN} 1000000 100`], {
        consume: async () => {
          if (!reason) {
            reason = new AgentError(ErrorCodes.JOB_TIMEOUT, 'job_timeout_seconds expired');
            built.abort.abort(reason);
          }
        },
      });
      const err = await failure(connector.run(built.run));
      expect(err).toBe(reason);
      await until('the remote command to end', () => server.execs[0]?.exit !== undefined);
      expect(server.execs[0].exit?.signal).toBe('SIGKILL');
      expect(server.execs[0].signals).toEqual(['KILL']);
    });

    test('an aborted run sends nothing', async () => {
      const { server, connector } = await setup();
      const { run, abort } = makeRun(['true'], { type: 'test' });
      const reason = new AgentError(ErrorCodes.CANCELLED, 'shutting down');
      abort.abort(reason);
      await expect(connector.run(run)).rejects.toBe(reason);
      expect(server.connections).toBe(0);
    });

    test('close() ends open connections: the running command is killed, the run fails CANCELLED', async () => {
      const { server, connector } = await setup();
      const running = connector.run(makeRun(['sleep 30'], { type: 'optout' }).run);
      await until('the command to start', () => server.execs[0]?.pid !== undefined);
      await connector.close();
      const err = await failure(running);
      expect(err.code).toBe(ErrorCodes.CANCELLED);
      await until('the remote command to end', () => server.execs[0].exit !== undefined);
      expect(server.execs[0].signals).toEqual(['KILL']);
      await until('the connection to close', () => server.openConnections === 0);
    });
  });

  test('a large access output is streamed: records arrive while the command still writes', async () => {
    const { server, connector } = await setup();
    const n = 100_000;
    const size = 400; // ~45 MB of output in all
    let count = 0;
    let stillRunningAtFirst: boolean | undefined;
    const { run } = makeRun([`${GEN} ${n} ${size}`], {
      consume: (r) => {
        if (count === 0) stillRunningAtFirst = server.execs[0].exit === undefined;
        if (r.id !== count) throw new Error(`record ${count} out of order`);
        count++;
      },
    });
    await connector.run(run);
    expect(count).toBe(n);
    // The first record arrived while the command was still writing: the output was not buffered whole.
    expect(stillRunningAtFirst).toBe(true);
  }, 60_000);

  test('plan() shows each identifier as **** and sends nothing', async () => {
    const { server, connector } = await setup();
    const { run } = makeRun([`${LOOKUP} {email} --since '{{2024}}'`, `echo "{email}" '{email}'`]);
    expect(connector.plan(run)).toEqual([
      { query: 'access[0]', statement: `${LOOKUP} **** --since '{2024}'` },
      { query: 'access[1]', statement: `echo "****" '****'` },
    ]);
    const [bad] = connector.plan(makeRun(['x {user_id}']).run);
    expect(bad.query).toBe('access[0]');
    expect(bad.statement).toBeUndefined();
    expect(bad.error?.code).toBe(ErrorCodes.TEMPLATE_MISSING_VARIABLE);
    expect(bad.error?.message).toContain('{user_id}');
    const [newline] = connector.plan(makeRun(['x {email}'], { identifiers: { email: 'a\nb' } }).run);
    expect(newline.error?.code).toBe(ErrorCodes.IDENTIFIER_INVALID);
    expect(server.connections).toBe(0);
  });
});
