/**
 * The MySQL connector against a real MariaDB/MySQL (127.0.0.1:3306, root, empty password). Each
 * test creates and drops its own database. ConnectorRun objects are built directly.
 */
import { describe, test, expect, beforeEach, afterEach } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import type { Connection } from '../src/config/types.js';
import type { Secret } from '../src/credentials/source.js';
import { makeMysqlConnector, mysqlSettings } from '../src/connectors/mysql.js';
import type { Connector, ConnectorRun, RunStatement } from '../src/connectors/types.js';
import { makeMask } from '../src/engine/mask.js';
import type { RetryPolicy } from '../src/engine/send.js';
import { AgentError, ErrorCodes, isAgentError } from '../src/errors.js';
import type { QueryType } from '../src/config/types.js';
import { captureLogs, type LogCapture } from './helpers/agent.js';

const HOST = process.env.MYSQL_HOST ?? '127.0.0.1';
const PORT = Number(process.env.MYSQL_PORT ?? 3306);
const USER = process.env.MYSQL_USER ?? 'root';
const PASSWORD = process.env.MYSQL_PASSWORD ?? '';

const FAST_RETRY: RetryPolicy = { retries: 3, minDelayMs: 10, maxDelayMs: 40 };

/** Poll `check` until it returns true or `timeoutMs` passes; returns the last result. */
async function until(check: () => Promise<boolean> | boolean, timeoutMs = 10_000, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await sleep(stepMs);
  }
}

/** A TCP proxy to the database that counts the connections it accepts. */
async function tcpProxy(port = 0): Promise<{ port: number; count: () => number; close: () => Promise<void> }> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    count++;
    const up = net.connect(PORT, HOST);
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        down.destroy();
        up.destroy();
      });
    }
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    count: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let db: string;
let admin: mysql.Connection;
let connector: Connector;
let logs: LogCapture;

beforeEach(async () => {
  db = `dsr_test_${randomBytes(6).toString('hex')}`;
  admin = await mysql.createConnection({ host: HOST, port: PORT, user: USER, password: PASSWORD, multipleStatements: true });
  await admin.query(`CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  await admin.query(`USE \`${db}\``);
  connector = makeMysqlConnector();
  logs = captureLogs('INFO');
});

afterEach(async () => {
  await connector.close();
  await admin.query(`DROP DATABASE IF EXISTS \`${db}\``);
  await admin.end();
});

function secretFor(extra: Record<string, string> = {}): Secret {
  return Object.freeze({ user: USER, password: PASSWORD, server: HOST, port: String(PORT), database: db, ...extra });
}

function connection(name = 'Users DB'): Connection {
  return {
    name,
    uuid: randomUUID(),
    capabilities: ['privacy/access', 'privacy/delete', 'privacy/optout', 'privacy/identifiers'],
    mode: 'live',
    connector_type: 'MySQL',
    queries: {},
    credentials_location: 'mysql',
  } as Connection;
}

interface RunOptions {
  type: QueryType;
  statements: RunStatement[];
  identifiers?: Record<string, string>;
  secret?: Secret;
  conn?: Connection;
  signal?: AbortSignal;
  retry?: RetryPolicy;
  log?: LogCapture;
}

function makeRun(o: RunOptions): ConnectorRun {
  const identifiers = o.identifiers ?? { email: 'peter@initech.com' };
  const secret = o.secret ?? secretFor();
  return {
    conn: o.conn ?? connection(),
    type: o.type,
    identifiers,
    secret,
    signal: o.signal ?? new AbortController().signal,
    log: (o.log ?? logs).logger,
    retry: o.retry ?? FAST_RETRY,
    maxObjectBytes: 64 * 1024 * 1024,
    mask: makeMask([...Object.values(identifiers), ...Object.values(secret)]),
    statements: o.statements,
  };
}

/** A statement whose records are collected into `into`. */
function collect(label: string, text: string, into: Record<string, unknown>[], identifier?: string): RunStatement {
  return { label, text, ...(identifier ? { identifier } : {}), consume: (r) => void into.push(r) };
}

async function rejection(p: Promise<unknown>): Promise<AgentError> {
  try {
    await p;
  } catch (err) {
    return err as AgentError;
  }
  throw new Error('expected a rejection');
}

/** Rows of the admin connection. */
async function rows(sql: string, values: unknown[] = []): Promise<Record<string, unknown>[]> {
  const [r] = await admin.query(sql, values);
  return r as Record<string, unknown>[];
}

/** Server threads other than the admin's, with their statement text. */
async function processlist(): Promise<Array<{ ID: number; INFO: string | null }>> {
  return (await rows('SELECT ID, INFO FROM information_schema.processlist WHERE ID <> CONNECTION_ID()')) as Array<{ ID: number; INFO: string | null }>;
}

async function usersTable(): Promise<void> {
  await admin.query(`
    CREATE TABLE users (
      id BIGINT UNSIGNED PRIMARY KEY,
      email VARCHAR(320) NOT NULL,
      name VARCHAR(100),
      prefs JSON,
      created DATETIME,
      avatar BLOB,
      note TEXT NULL
    ) ENGINE=InnoDB`);
  await admin.query(
    `INSERT INTO users VALUES
      (9007199254740993, 'peter@initech.com', 'Peter Gibbons', '{"newsletter": true, "tags": ["a", "b"]}', '2024-01-02 03:04:05', X'00ff10', NULL),
      (18446744073709551615, 'peter@initech.com', 'Peter G.', NULL, '1999-12-31 23:59:59', NULL, 'second'),
      (2, 'samir@initech.com', 'Samir', NULL, NULL, NULL, NULL)`,
  );
}

describe('access', () => {
  test("DataGrail's SELECT streams every row of the subject, values normalised", async () => {
    await usersTable();
    const got: Record<string, unknown>[] = [];
    await connector.run(makeRun({ type: 'access', statements: [collect('access[0]', 'SELECT * FROM users WHERE email = %(email)s ORDER BY created', got)] }));
    expect(got).toHaveLength(2);
    const [second, { prefs, ...first }] = [got[0], got[1]];
    expect(first).toEqual({
      id: '9007199254740993', // beyond 2^53: exact decimal text
      email: 'peter@initech.com',
      name: 'Peter Gibbons',
      created: '2024-01-02T03:04:05.000Z',
      avatar: Buffer.from([0x00, 0xff, 0x10]).toString('base64'),
      note: null,
    });
    // MariaDB's JSON is LONGTEXT: mysql2 parses it when the server marks the column as JSON, else it stays text.
    if (typeof prefs === 'string') expect(JSON.parse(prefs)).toEqual({ newsletter: true, tags: ['a', 'b'] });
    else expect(prefs).toEqual({ newsletter: true, tags: ['a', 'b'] });
    expect(second).toMatchObject({ id: '18446744073709551615', created: '1999-12-31T23:59:59.000Z', prefs: null, avatar: null, note: 'second' });
  });

  test('a CALL returning several result sets: every row of every set, no status packets', async () => {
    await usersTable();
    await admin.query(`CREATE TABLE orders (id INT PRIMARY KEY, email VARCHAR(320), total DECIMAL(10,2)) ENGINE=InnoDB`);
    await admin.query(`INSERT INTO orders VALUES (1, 'peter@initech.com', 12.50), (2, 'samir@initech.com', 3.00), (3, 'peter@initech.com', 99.99)`);
    await admin.query(`
      CREATE PROCEDURE dsr_access(IN subject VARCHAR(320))
      BEGIN
        SELECT id, name FROM users WHERE email = subject ORDER BY id;
        SELECT id AS order_id, total FROM orders WHERE email = subject ORDER BY id;
      END`);
    const got: Record<string, unknown>[] = [];
    await connector.run(makeRun({ type: 'access', statements: [collect('access[0]', 'CALL dsr_access(%(email)s)', got)] }));
    expect(got).toEqual([
      { id: '9007199254740993', name: 'Peter Gibbons' },
      { id: '18446744073709551615', name: 'Peter G.' },
      { order_id: 1, total: '12.50' },
      { order_id: 3, total: '99.99' },
    ]);
  });

  test('several statements run in order; logs carry label and duration at INFO, never the values', async () => {
    await usersTable();
    const got: Record<string, unknown>[] = [];
    await connector.run(
      makeRun({
        type: 'access',
        statements: [
          collect('access[0]', 'SELECT name FROM users WHERE email = %(email)s AND id = 2', got),
          collect('access[1]', 'SELECT email, name FROM users WHERE email = %(email)s AND name = %(name)s', got),
        ],
        identifiers: { email: 'samir@initech.com', name: 'Samir' },
      }),
    );
    expect(got).toEqual([{ name: 'Samir' }, { email: 'samir@initech.com', name: 'Samir' }]);
    const lines = logs.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    const done = lines.filter((l) => l.msg === 'statement done');
    expect(done.map((l) => l.query)).toEqual(['access[0]', 'access[1]']);
    for (const l of done) {
      expect(l.level).toBe('info');
      expect(typeof l.ms).toBe('number');
    }
    expect(logs.lines().join('\n')).not.toContain('samir@initech.com');
  });

  test('at DEBUG the statement and its values are logged', async () => {
    await usersTable();
    const debug = captureLogs('DEBUG');
    await connector.run(makeRun({ type: 'access', statements: [collect('access[0]', 'SELECT 1 AS one FROM users WHERE email = %(email)s', [])], log: debug }));
    const line = debug.lines().map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'running statement');
    expect(line).toMatchObject({ query: 'access[0]', statement: 'SELECT 1 AS one FROM users WHERE email = ?', identifiers: { email: 'peter@initech.com' } });
  });

  test('200,000 rows stream through with bounded memory', async () => {
    await admin.query('CREATE TABLE digits (n INT PRIMARY KEY) ENGINE=InnoDB');
    await admin.query('INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)');
    await admin.query('CREATE TABLE big (id INT PRIMARY KEY, email VARCHAR(64), payload VARCHAR(400)) ENGINE=InnoDB');
    await admin.query(`
      INSERT INTO big
      SELECT a.n + 10*b.n + 100*c.n + 1000*d.n + 10000*e.n + 100000*f.n, 'peter@initech.com', REPEAT(CONCAT('x', a.n, b.n, c.n), 75)
      FROM digits a, digits b, digits c, digits d, digits e, digits f WHERE f.n < 2`);
    let n = 0;
    let bytes = 0;
    let runningAtFirstRow: boolean | undefined;
    const consume = async (r: Record<string, unknown>): Promise<void> => {
      n++;
      bytes += (r.payload as string).length;
      if (n === 1) {
        // Streamed: the first row reaches us while the server is still sending the rest (not buffered whole).
        const [rows] = await admin.query("SELECT COUNT(*) AS c FROM information_schema.processlist WHERE info LIKE 'SELECT * FROM big%'");
        runningAtFirstRow = Number((rows as Array<{ c: number }>)[0]!.c) > 0;
      }
      if (n % 25_000 === 0) await sleep(1); // a consumer that yields: the stream must wait for it
    };
    await connector.run(makeRun({ type: 'access', statements: [{ label: 'access[0]', text: 'SELECT * FROM big WHERE email = %(email)s', consume }] }));
    expect(n).toBe(200_000);
    expect(bytes).toBe(200_000 * 300); // ~60 MB of payload passed through
    expect(runningAtFirstRow).toBe(true);
  }, 60_000);
});

describe('a failing consumer', () => {
  test('its error passes through as it is; the statement it left running is killed, the connection dropped', async () => {
    await admin.query('CREATE TABLE digits (n INT PRIMARY KEY) ENGINE=InnoDB');
    await admin.query('INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)');
    const conn = connection();
    const failure = new AgentError(ErrorCodes.STORAGE_ERROR, 'disk full');
    let thread = 0;
    const failing: RunStatement = {
      label: 'access[0]',
      // 100,000 rows: far more than the stream buffers, so the statement is still running when the consumer fails.
      text: "SELECT CONNECTION_ID() AS thread, REPEAT('x', 200) AS pad FROM digits a, digits b, digits c, digits d, digits e WHERE %(email)s <> ''",
      consume: async (r) => {
        thread = Number(r.thread);
        throw failure;
      },
    };
    await expect(connector.run(makeRun({ type: 'access', conn, statements: [failing] }))).rejects.toBe(failure);
    expect(thread).toBeGreaterThan(0);
    expect(await until(async () => !(await processlist()).some((p) => p.ID === thread))).toBe(true);
    const plain = new Error('sink closed');
    await expect(connector.run(makeRun({ type: 'access', conn, statements: [{ ...failing, consume: () => Promise.reject(plain) }] }))).rejects.toBe(plain);
    // The pool goes on with fresh connections.
    const got: Record<string, unknown>[] = [];
    await connector.run(makeRun({ type: 'access', conn, statements: [collect('access[0]', 'SELECT CONNECTION_ID() AS thread', got)] }));
    expect(Number(got[0].thread)).not.toBe(thread);
  });
});

describe('identifiers', () => {
  beforeEach(async () => {
    await admin.query('CREATE TABLE accounts (user_id BIGINT PRIMARY KEY, email VARCHAR(320), phone VARCHAR(32)) ENGINE=InnoDB');
    await admin.query(`INSERT INTO accounts VALUES (42, 'peter@initech.com', '+1 555 0100'), (43, 'peter@initech.com', NULL), (7, 'samir@initech.com', '+1 555 0199')`);
  });

  test('by the column named like the identifier', async () => {
    const got: Record<string, unknown>[] = [];
    await connector.run(
      makeRun({
        type: 'identifiers',
        statements: [collect('identifiers.user_id[0]', 'SELECT email, user_id FROM accounts WHERE email = %(email)s ORDER BY user_id', got, 'user_id')],
      }),
    );
    expect(got.map((r) => r.user_id)).toEqual(['42', '43']); // BIGINT: decimal text
  });

  test('else by the first column', async () => {
    const got: Record<string, unknown>[] = [];
    await connector.run(
      makeRun({
        type: 'identifiers',
        statements: [
          collect('identifiers.phone_number[0]', 'SELECT phone AS p, user_id FROM accounts WHERE email = %(email)s ORDER BY user_id', got, 'phone_number'),
          // The first column by the server's order, not by JS key order (which puts `2` first).
          collect('identifiers.user_id[0]', 'SELECT 1000 + user_id AS uid, 5 AS `2` FROM accounts WHERE email = %(email)s ORDER BY user_id', got, 'user_id'),
        ],
      }),
    );
    expect(got).toEqual([{ phone_number: '+1 555 0100' }, { phone_number: null }, { user_id: '1042' }, { user_id: '1043' }]);
  });
});

describe('test', () => {
  test('without statements runs SELECT 1', async () => {
    await expect(connector.run(makeRun({ type: 'test', statements: [] }))).resolves.toBeUndefined();
    expect(logs.lines().some((l) => l.includes('"query":"test"'))).toBe(true);
  });

  test('succeeds when the statement runs, fails with DATABASE_ERROR when it does not', async () => {
    await usersTable();
    await connector.run(makeRun({ type: 'test', statements: [{ label: 'test[0]', text: 'SELECT COUNT(*) FROM users' }] }));
    const err = await rejection(connector.run(makeRun({ type: 'test', statements: [{ label: 'test[0]', text: 'SELECT * FROM no_such_table' }] })));
    expect(err.code).toBe(ErrorCodes.DATABASE_ERROR);
    expect(err.message).toMatch(/^test\[0\] failed: errno 1146 \(ER_NO_SUCH_TABLE\) SQLSTATE 42S02: Table '.*no_such_table' doesn't exist$/);
  });
});

describe('delete and optout', () => {
  beforeEach(async () => {
    await usersTable();
    await admin.query(`
      CREATE TABLE profiles (email VARCHAR(320) PRIMARY KEY, bio TEXT) ENGINE=InnoDB;
      CREATE TABLE invoices (id INT PRIMARY KEY, email VARCHAR(320), FOREIGN KEY (email) REFERENCES profiles(email)) ENGINE=InnoDB;
      INSERT INTO profiles VALUES ('peter@initech.com', 'TPS reports'), ('samir@initech.com', 'Nagheenanajar');
      INSERT INTO invoices VALUES (1, 'peter@initech.com');
      CREATE PROCEDURE dsr(IN action VARCHAR(16), IN subject VARCHAR(320))
      BEGIN
        IF action = 'delete' THEN
          DELETE FROM users WHERE email = subject;
        END IF;
      END`);
  });

  test("DataGrail's CALL dsr('delete', %(email)s) deletes the subject only", async () => {
    await connector.run(makeRun({ type: 'delete', statements: [{ label: 'delete[0]', text: "CALL dsr('delete', %(email)s)" }] }));
    expect(await rows('SELECT email FROM users ORDER BY id')).toEqual([{ email: 'samir@initech.com' }]);
  });

  test.each(['delete', 'optout'] as const)('%s: statements commit together', async (type) => {
    await connector.run(
      makeRun({
        type,
        statements: [
          { label: `${type}[0]`, text: 'DELETE FROM invoices WHERE email = %(email)s' },
          { label: `${type}[1]`, text: 'DELETE FROM profiles WHERE email = %(email)s' },
        ],
      }),
    );
    expect(await rows('SELECT email FROM profiles')).toEqual([{ email: 'samir@initech.com' }]);
    expect(await rows('SELECT * FROM invoices')).toEqual([]);
  });

  test.each(['delete', 'optout'] as const)('%s: a failing second statement rolls back the first', async (type) => {
    const err = await rejection(
      connector.run(
        makeRun({
          type,
          statements: [
            { label: `${type}[0]`, text: 'DELETE FROM users WHERE email = %(email)s' },
            { label: `${type}[1]`, text: 'DELETE FROM profiles WHERE email = %(email)s' }, // an invoice still references it
          ],
        }),
      ),
    );
    expect(err.code).toBe(ErrorCodes.DATABASE_ERROR);
    expect(err.message).toMatch(new RegExp(`^${type}\\[1\\] failed: errno 1451 \\(ER_ROW_IS_REFERENCED_2\\) SQLSTATE 23000: Cannot delete or update a parent row`));
    expect(await rows("SELECT COUNT(*) AS n FROM users WHERE email = 'peter@initech.com'")).toEqual([{ n: 2 }]);
    expect(logs.lines().some((l) => l.includes('transaction rolled back'))).toBe(true);
  });

  test('a duplicate entry message is masked, also when the server truncates the value', async () => {
    await admin.query('CREATE TABLE optouts (email VARCHAR(320) PRIMARY KEY) ENGINE=InnoDB');
    const long = `peter.gibbons.${'tps-report-cover-sheet.'.repeat(4)}@initech.example.com`;
    await admin.query('INSERT INTO optouts VALUES (?), (?)', ['peter@initech.com', long]);
    for (const email of ['peter@initech.com', long]) {
      const err = await rejection(
        connector.run(makeRun({ type: 'optout', identifiers: { email }, statements: [{ label: 'optout[0]', text: 'INSERT INTO optouts (email) VALUES (%(email)s)' }] })),
      );
      expect(err.code).toBe(ErrorCodes.DATABASE_ERROR);
      expect(err.message).toMatch(/^optout\[0\] failed: errno 1062 \(ER_DUP_ENTRY\) SQLSTATE 23000: Duplicate entry '\*\*\*' for key/);
      expect(err.message).not.toContain(email.slice(0, 12));
      expect(logs.lines().join('\n')).not.toContain(email.slice(0, 12));
    }
  });
});

describe('hostile identifiers', () => {
  const hostile = [
    "' OR 1=1 --",
    "peter@initech.com' OR '1'='1",
    '%(email)s',
    '%%(email)s %s',
    '?',
    'a?b??',
    '\\',
    "\\' OR 1=1 -- \\",
    '"; DROP TABLE subjects; --',
    'Zoë Ünïcödé 中文 🙂 \u202e',
    'line\nbreak\ttab\0nul',
    `${'x'.repeat(10 * 1024 - 12)}@initech.com`,
  ];

  beforeEach(async () => {
    await admin.query('CREATE TABLE subjects (id INT AUTO_INCREMENT PRIMARY KEY, email TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL) ENGINE=InnoDB');
    for (const v of [...hostile, 'peter@initech.com', 'samir@initech.com', '']) await admin.query('INSERT INTO subjects (email) VALUES (?)', [v]);
  });

  test.each(hostile.map((v) => [v.length > 40 ? `${v.slice(0, 12)}… (${v.length} chars)` : JSON.stringify(v), v]))(
    '%s reaches the database as exactly that value and matches nothing else',
    async (_name, value) => {
      const got: Record<string, unknown>[] = [];
      await connector.run(
        makeRun({
          type: 'access',
          identifiers: { email: value },
          statements: [collect('access[0]', 'SELECT email, CHAR_LENGTH(email) AS n, %(email)s AS echoed FROM subjects WHERE email = %(email)s', got)],
        }),
      );
      expect(got).toEqual([{ email: value, n: [...value].length, echoed: value }]);
      expect(await rows('SELECT COUNT(*) AS n FROM subjects')).toEqual([{ n: hostile.length + 3 }]);
    },
  );

  test('a hostile value in a delete deletes nothing else', async () => {
    await connector.run(
      makeRun({ type: 'delete', identifiers: { email: "' OR 1=1 --" }, statements: [{ label: 'delete[0]', text: 'DELETE FROM subjects WHERE email = %(email)s' }] }),
    );
    await connector.run(makeRun({ type: 'delete', identifiers: { email: "nobody' OR '1'='1" }, statements: [{ label: 'delete[0]', text: 'DELETE FROM subjects WHERE email = %(email)s' }] }));
    expect(await rows('SELECT COUNT(*) AS n FROM subjects')).toEqual([{ n: hostile.length + 2 }]);
  });

  test('a placeholder without a value fails before connecting', async () => {
    const err = await rejection(
      connector.run(makeRun({ type: 'access', secret: secretFor({ port: String(await freePort()) }), statements: [collect('access[0]', 'SELECT * FROM subjects WHERE email = %(phone)s', [])] })),
    );
    expect(err.code).toBe(ErrorCodes.TEMPLATE_MISSING_VARIABLE);
  });
});

describe('deadline and shutdown', () => {
  async function waitForStatement(tag: string): Promise<number> {
    let id = 0;
    const seen = await until(async () => {
      const hit = (await processlist()).find((p) => p.INFO?.includes(tag));
      id = hit?.ID ?? 0;
      return hit !== undefined;
    });
    expect(seen).toBe(true);
    return id;
  }

  test('JOB_TIMEOUT kills the running statement on the server and throws the reason', async () => {
    const tag = `slept_${randomBytes(4).toString('hex')}`;
    const ac = new AbortController();
    const running = connector.run(makeRun({ type: 'access', signal: ac.signal, statements: [collect('access[0]', `SELECT SLEEP(30) AS ${tag}, %(email)s AS e`, [])] }));
    running.catch(() => undefined);
    const thread = await waitForStatement(tag);
    const reason = new AgentError(ErrorCodes.JOB_TIMEOUT, 'access queries did not finish within job_timeout_seconds');
    const abortedAt = Date.now();
    ac.abort(reason);
    await expect(running).rejects.toBe(reason);
    expect(Date.now() - abortedAt).toBeLessThan(15_000); // SLEEP(30) did not run out
    const gone = await until(async () => !(await processlist()).some((p) => p.INFO?.includes(tag)));
    expect(gone).toBe(true);
    // The connection that ran it was destroyed, not returned to the pool.
    expect(await until(async () => !(await processlist()).some((p) => p.ID === thread))).toBe(true);
    expect(logs.lines().some((l) => l.includes('KILL QUERY'))).toBe(true);
  });

  test('CANCELLED during a delete: the statement is killed and the transaction rolled back', async () => {
    await usersTable();
    const tag = `slept_${randomBytes(4).toString('hex')}`;
    const ac = new AbortController();
    const running = connector.run(
      makeRun({
        type: 'delete',
        signal: ac.signal,
        statements: [
          { label: 'delete[0]', text: 'DELETE FROM users WHERE email = %(email)s' },
          { label: 'delete[1]', text: `SELECT SLEEP(30) AS ${tag}` },
        ],
      }),
    );
    running.catch(() => undefined);
    const thread = await waitForStatement(tag);
    const reason = new AgentError(ErrorCodes.CANCELLED, 'shutting down');
    ac.abort(reason);
    await expect(running).rejects.toBe(reason);
    expect(await until(async () => !(await processlist()).some((p) => p.INFO?.includes(tag)))).toBe(true);
    // Once its thread is gone the transaction is over, and the delete was not committed.
    expect(await until(async () => !(await processlist()).some((p) => p.ID === thread))).toBe(true);
    expect(await rows("SELECT COUNT(*) AS n FROM users WHERE email = 'peter@initech.com'")).toEqual([{ n: 2 }]);
  });

  test('an abort while the consumer is busy ends the run promptly', async () => {
    await usersTable();
    const ac = new AbortController();
    let calls = 0;
    const stuck: RunStatement = { label: 'access[0]', text: 'SELECT * FROM users WHERE email = %(email)s', consume: () => (calls++, new Promise<void>(() => undefined)) };
    const running = connector.run(makeRun({ type: 'access', signal: ac.signal, statements: [stuck] }));
    running.catch(() => undefined);
    expect(await until(() => calls > 0)).toBe(true);
    const reason = new AgentError(ErrorCodes.CANCELLED, 'shutting down');
    ac.abort(reason);
    await expect(running).rejects.toBe(reason);
  });

  test('an already aborted signal throws its reason without connecting', async () => {
    const ac = new AbortController();
    const reason = new AgentError(ErrorCodes.JOB_TIMEOUT, 'too late');
    ac.abort(reason);
    await expect(connector.run(makeRun({ type: 'test', statements: [], signal: ac.signal }))).rejects.toBe(reason);
  });
});

describe('connecting', () => {
  test('a wrong password: one attempt, CONNECT_FAILED naming the connection and errno, never the password', async () => {
    const proxy = await tcpProxy();
    try {
      const password = 'not-the-password-Zq9';
      const err = await rejection(
        connector.run(
          makeRun({ type: 'test', statements: [], conn: connection('Billing MySQL'), secret: secretFor({ port: String(proxy.port), password }), retry: { retries: 3, minDelayMs: 10, maxDelayMs: 20 } }),
        ),
      );
      expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
      expect(err.message).toContain('"Billing MySQL"');
      expect(err.message).toContain('errno 1045');
      expect(err.message).not.toContain(password);
      expect(proxy.count()).toBe(1);
      expect(logs.lines().some((l) => l.includes('retrying'))).toBe(false);
      expect(logs.lines().join('\n')).not.toContain(password);
    } finally {
      await proxy.close();
    }
  });

  test('a refused port is retried with backoff until the server answers', async () => {
    const port = await freePort();
    const running = connector.run(
      makeRun({ type: 'test', statements: [], secret: secretFor({ port: String(port) }), retry: { retries: 8, minDelayMs: 100, maxDelayMs: 300 } }),
    );
    running.catch(() => undefined);
    // Let at least one attempt be refused, then start listening.
    expect(await until(() => logs.lines().some((l) => l.includes('retrying') && l.includes('ECONNREFUSED')))).toBe(true);
    const proxy = await tcpProxy(port);
    try {
      await expect(running).resolves.toBeUndefined();
      expect(proxy.count()).toBeGreaterThanOrEqual(1);
    } finally {
      await connector.close();
      await proxy.close();
    }
  });

  test('a port that stays refused: CONNECT_FAILED after every attempt', async () => {
    const port = await freePort();
    const err = await rejection(connector.run(makeRun({ type: 'test', statements: [], secret: secretFor({ port: String(port) }), retry: { retries: 2, minDelayMs: 10, maxDelayMs: 20 } })));
    expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
    expect(err.message).toMatch(/ECONNREFUSED\) after 3 attempts/);
    expect(logs.lines().filter((l) => l.includes('retrying'))).toHaveLength(2);
  });

  test('ssl "true" against a server without TLS is refused, not downgraded, and not retried', async () => {
    const [[have]] = (await admin.query("SHOW VARIABLES LIKE 'have_ssl'")) as unknown as [Array<{ Value: string }>];
    if (have?.Value === 'YES') return; // this server has TLS: the refusal cannot be shown here
    const err = await rejection(connector.run(makeRun({ type: 'test', statements: [], secret: secretFor({ ssl: 'true' }) })));
    expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
    expect(err.message).toMatch(/TLS/);
    expect(logs.lines().some((l) => l.includes('retrying'))).toBe(false);
  });

  test('a pooled connection the server dropped is replaced', async () => {
    const conn = connection();
    const ids: Record<string, unknown>[] = [];
    const idRun = () => makeRun({ type: 'access', conn, statements: [collect('access[0]', 'SELECT CONNECTION_ID() AS id', ids)] });
    await connector.run(idRun());
    const first = Number(ids[0].id);
    await admin.query(`KILL ${first}`);
    await connector.run(idRun());
    expect(Number(ids[1].id)).not.toBe(first);
    // The same pool serves the next run with the replacement.
    await connector.run(idRun());
    expect(Number(ids[2].id)).toBe(Number(ids[1].id));
  });

  test('close() ends the pools; a rotated secret retires the old pool', async () => {
    const conn = connection();
    const ids: Record<string, unknown>[] = [];
    const idRun = (secret: Secret) => makeRun({ type: 'access', conn, secret, statements: [collect('access[0]', 'SELECT CONNECTION_ID() AS id', ids)] });
    const proxy = await tcpProxy();
    try {
      await connector.run(idRun(secretFor()));
      const a = Number(ids[0].id);
      expect((await processlist()).some((p) => p.ID === a)).toBe(true);
      await connector.run(idRun(secretFor({ port: String(proxy.port) }))); // new settings: new pool
      const b = Number(ids[1].id);
      expect(await until(async () => !(await processlist()).some((p) => p.ID === a))).toBe(true);
      expect((await processlist()).some((p) => p.ID === b)).toBe(true);
      await connector.close();
      expect(await until(async () => !(await processlist()).some((p) => p.ID === b))).toBe(true);
    } finally {
      await proxy.close();
    }
  });
});

describe('secret', () => {
  const base = (): Record<string, string> => ({ user: 'u', password: 'p', server: 'db.internal', database: 'app' });

  test.each(['user', 'password', 'server', 'database'])('a missing %s is SECRET_INVALID naming the key', async (key) => {
    const s = base();
    delete s[key];
    const err = await rejection(connector.run(makeRun({ type: 'test', statements: [], secret: Object.freeze(s) })));
    expect(err.code).toBe(ErrorCodes.SECRET_INVALID);
    expect(err.message).toContain(`"${key}"`);
  });

  test('port defaults to 3306; an empty password is allowed; TLS options', () => {
    const conn = { name: 'x' };
    expect(mysqlSettings({ ...base(), password: '' }, conn)).toEqual({ host: 'db.internal', port: 3306, user: 'u', password: '', database: 'app' });
    expect(mysqlSettings({ ...base(), port: '3307', ssl: 'true' }, conn)).toMatchObject({ port: 3307, tls: {} });
    const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(mysqlSettings({ ...base(), ssl_ca: ca }, conn).tls).toEqual({ ca });
    expect(mysqlSettings({ ...base(), ssl: 'false' }, conn).tls).toBeUndefined();
    for (const [k, v] of [['port', 'abc'], ['port', '70000'], ['ssl', 'maybe'], ['ssl_ca', 'not a pem']]) {
      let err: unknown;
      try {
        mysqlSettings({ ...base(), [k]: v }, conn);
      } catch (e) {
        err = e;
      }
      expect(isAgentError(err, ErrorCodes.SECRET_INVALID)).toBe(true);
      expect((err as Error).message).toContain(`"${k}"`);
      expect((err as Error).message).not.toContain(v);
    }
  });
});

describe('plan', () => {
  test('shows the driver statement and masked parameters; sends nothing', async () => {
    const proxy = await tcpProxy();
    try {
      const planned = connector.plan({
        conn: connection(),
        type: 'access',
        identifiers: { email: 'peter@initech.com', user_id: '42' },
        secret: secretFor({ port: String(proxy.port) }),
        statements: [
          { label: 'access[0]', text: 'SELECT * FROM users WHERE email = %(email)s' },
          { label: 'access[1]', text: "SELECT * FROM t WHERE a = %(user_id)s OR b = %(user_id)s OR c LIKE '100%%'" },
          { label: 'access[2]', text: 'SELECT NOW()' },
          { label: 'access[3]', text: 'SELECT * FROM t WHERE phone = %(phone)s' },
          { label: 'access[4]', text: 'SELECT * FROM t WHERE email = %s' },
        ],
      });
      expect(planned).toEqual([
        { query: 'access[0]', statement: 'SELECT * FROM users WHERE email = ?', parameters: { email: '****' } },
        { query: 'access[1]', statement: "SELECT * FROM t WHERE a = ? OR b = ? OR c LIKE '100%'", parameters: { user_id: '****' } },
        { query: 'access[2]', statement: 'SELECT NOW()' },
        { query: 'access[3]', error: { code: ErrorCodes.TEMPLATE_MISSING_VARIABLE, message: expect.stringContaining('%(phone)s') } },
        { query: 'access[4]', error: { code: ErrorCodes.TEMPLATE_INVALID, message: expect.stringContaining("'%s'") } },
      ]);
      expect(JSON.stringify(planned)).not.toContain('peter@initech.com');
      expect(connector.plan({ conn: connection(), type: 'test', identifiers: {}, secret: secretFor(), statements: [] })).toEqual([{ query: 'test', statement: 'SELECT 1' }]);
      await sleep(50);
      expect(proxy.count()).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});
