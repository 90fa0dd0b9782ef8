/**
 * The Postgres (and Redshift) connector against the local PostgreSQL server (127.0.0.1:5432, trust
 * auth). Every test works in its own database with a random name, created and dropped by the test.
 * Connection failures (refused logins, a server starting up or full, TLS) come from a small
 * scriptable server in front of the real one, which also counts connection attempts.
 */
import { describe, it, expect, afterEach, beforeAll } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import pg from 'pg';
import { makePostgresConnector, parseSecret, sslOption } from '../src/connectors/postgres.js';
import type { Connector, ConnectorRun, RunStatement } from '../src/connectors/types.js';
import type { Connection, QueryType } from '../src/config/types.js';
import { AgentError, ErrorCodes } from '../src/errors.js';
import { makeMask } from '../src/engine/mask.js';
import { captureLogs, type LogCapture } from './helpers/agent.js';
import { makeSelfSignedCert } from './helpers/target.js';

const PG_HOST = '127.0.0.1';
const PG_PORT = 5432;
const PASSWORD = 'pw-Secret-9f8e7d';

// ---------------------------------------------------------------------------------------------
// Per-test databases, connector and fake servers; everything is closed after each test.

interface TestDb {
  name: string;
  sql: (text: string, values?: unknown[]) => Promise<pg.QueryResult>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch((err: unknown) => console.error('cleanup failed', err));
});

async function adminQuery(text: string): Promise<void> {
  const c = new pg.Client({ host: PG_HOST, port: PG_PORT, user: 'postgres', database: 'test' });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

/** A fresh database; dropped (with its sessions) after the test. */
async function createDb(setup?: string): Promise<TestDb> {
  const name = `dsr_pg_${randomBytes(6).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${name}`);
  const client = new pg.Client({ host: PG_HOST, port: PG_PORT, user: 'postgres', database: name });
  await client.connect();
  cleanups.push(async () => {
    await client.end().catch(() => undefined);
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
  if (setup) await client.query(setup);
  return { name, sql: (text, values) => client.query(text, values) };
}

function connector(flavor?: 'Postgres' | 'Redshift'): Connector {
  const c = makePostgresConnector(flavor ? { flavor } : {});
  cleanups.push(() => c.close());
  return c;
}

let connCounter = 0;
function conn(name?: string): Connection {
  connCounter++;
  return {
    name: name ?? `Postgres ${connCounter}`,
    uuid: `00000000-0000-4000-9000-${connCounter.toString(16).padStart(12, '0')}`,
    capabilities: ['privacy/access', 'privacy/delete', 'privacy/optout', 'privacy/identifiers'],
    mode: 'live',
    connector_type: 'Postgres',
    queries: {},
    credentials_location: 'pg-secret',
  } as unknown as Connection;
}

function secretFor(db: string, extra: Record<string, string> = {}): Record<string, string> {
  return { user: 'postgres', password: PASSWORD, host: PG_HOST, port: String(PG_PORT), dbname: db, ...extra };
}

interface RunOptions {
  conn?: Connection;
  type?: QueryType;
  identifiers?: Record<string, string>;
  secret?: Record<string, string>;
  statements: Array<string | Partial<RunStatement>>;
  signal?: AbortSignal;
  logs?: LogCapture;
  retries?: number;
}

/** A ConnectorRun; records handed to consumers are collected per statement. */
function makeRun(o: RunOptions): ConnectorRun & { records: Record<string, unknown>[][]; logs: LogCapture } {
  const type = o.type ?? 'access';
  const identifiers = o.identifiers ?? { email: 'peter@initech.com' };
  const secret = o.secret ?? {};
  const logs = o.logs ?? captureLogs();
  const records: Record<string, unknown>[][] = [];
  const statements = o.statements.map((s, i): RunStatement => {
    const st = typeof s === 'string' ? { text: s } : s;
    const out: Record<string, unknown>[] = [];
    records.push(out);
    return {
      label: st.label ?? `${type}[${i}]`,
      text: st.text!,
      ...(st.identifier ? { identifier: st.identifier } : {}),
      ...(type === 'access' || type === 'identifiers' ? { consume: st.consume ?? ((r) => void out.push(r)) } : {}),
    };
  });
  return {
    conn: o.conn ?? conn(),
    type,
    identifiers,
    secret,
    signal: o.signal ?? new AbortController().signal,
    log: logs.logger,
    retry: { retries: o.retries ?? 2, minDelayMs: 10, maxDelayMs: 40 },
    maxObjectBytes: 64 * 1024 * 1024,
    mask: makeMask([...Object.values(identifiers), ...Object.values(secret)]),
    statements,
    records,
    logs,
  };
}

async function failure(p: Promise<unknown>): Promise<AgentError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('expected the run to fail');
}

const parsed = (logs: LogCapture) => logs.lines().map((l) => JSON.parse(l) as Record<string, unknown>);

/** Poll `check` until it returns true, or fail after `ms`. */
async function waitFor(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function activeCount(marker: string): Promise<number> {
  const c = new pg.Client({ host: PG_HOST, port: PG_PORT, user: 'postgres', database: 'test' });
  await c.connect();
  try {
    const r = await c.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
      [`%${marker}%`],
    );
    return r.rows[0].n as number;
  } finally {
    await c.end();
  }
}

// ---------------------------------------------------------------------------------------------
// A scriptable server in front of the real one: per connection, proxy (optionally behind TLS) or
// answer the startup packet with an error. Cancel requests are forwarded as they are.

type Answer = 'proxy' | { code: string; message: string };
interface FakePg {
  port: number;
  /** Connections that sent a startup packet (cancel requests are not counted). */
  startups: () => number;
  /** Bytes the server has sent to the client so far, over every proxied connection. */
  bytesToClient: () => number;
}

function errorResponse(code: string, message: string): Buffer {
  const field = (t: string, v: string) => Buffer.concat([Buffer.from(t), Buffer.from(v, 'utf8'), Buffer.from([0])]);
  const body = Buffer.concat([field('S', 'FATAL'), field('V', 'FATAL'), field('C', code), field('M', message), Buffer.from([0])]);
  const head = Buffer.alloc(5);
  head.write('E', 0);
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

function readPacket(s: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length < 4 || buf.length < buf.readInt32BE(0)) return;
      s.removeListener('data', onData);
      s.removeListener('error', reject);
      s.pause();
      const len = buf.readInt32BE(0);
      if (buf.length > len) s.unshift(buf.subarray(len));
      resolve(buf.subarray(0, len));
    };
    s.on('data', onData);
    s.once('error', reject);
    s.resume();
  });
}

/**
 * Copy the client's protocol messages to the server, holding each Execute message back for `ms`
 * (order kept): the statement shows as active from its Parse on, but runs only later.
 */
function delayExecutes(client: Duplex, up: Duplex, ms: number): void {
  let buf = Buffer.alloc(0);
  let chain = Promise.resolve();
  client.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 5 && buf.length >= 1 + buf.readInt32BE(1)) {
      const len = 1 + buf.readInt32BE(1);
      const msg = buf.subarray(0, len);
      buf = buf.subarray(len);
      const wait = msg[0] === 0x45; // 'E'
      chain = chain.then(async () => {
        if (wait) await new Promise((r) => setTimeout(r, ms));
        if (up.writable) up.write(msg);
      });
    }
  });
  client.on('end', () => void chain.then(() => up.end()));
  client.resume();
}

async function startFakePg(answer: (n: number) => Answer, tlsCert?: { key: string; cert: string }, delayExecuteMs = 0): Promise<FakePg> {
  let startups = 0;
  let toClient = 0;
  const sockets = new Set<Duplex>();
  const track = (s: Duplex) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    return s;
  };
  const pipeUpstream = (client: Duplex, first: Buffer) => {
    const up = track(net.connect(PG_PORT, PG_HOST));
    up.write(first);
    if (delayExecuteMs === 0) client.pipe(up);
    else delayExecutes(client, up, delayExecuteMs);
    up.on('data', (d: Buffer) => (toClient += d.length));
    up.pipe(client);
    client.on('close', () => up.end()); // end, not destroy: a cancel request's bytes must still reach the server
    up.on('close', () => client.destroy());
  };
  const handle = async (raw: Socket) => {
    track(raw);
    let s: Duplex = raw;
    let packet = await readPacket(s);
    const code = () => packet.readInt32BE(4);
    if (packet.length === 16 && code() === 80877102) {
      // CancelRequest: hand it to the server as it is (the server answers nothing and closes)
      track(net.connect(PG_PORT, PG_HOST)).end(packet);
      s.destroy();
      return;
    }
    if (packet.length === 8 && code() === 80877103) {
      // SSLRequest
      if (!tlsCert) {
        s.write('N');
      } else {
        s.write('S');
        s = track(new tls.TLSSocket(raw, { isServer: true, key: tlsCert.key, cert: tlsCert.cert }));
      }
      packet = await readPacket(s);
    }
    startups++;
    const a = answer(startups);
    if (a === 'proxy') return pipeUpstream(s, packet);
    s.end(errorResponse(a.code, a.message));
  };
  const server = net.createServer((sock) => void handle(sock).catch(() => sock.destroy()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as AddressInfo).port, startups: () => startups, bytesToClient: () => toClient };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

const USERS = `
  CREATE TABLE users (
    id bigint PRIMARY KEY, email text UNIQUE NOT NULL, name text, profile jsonb, settings json,
    created timestamptz, seen timestamp, born date, avatar bytea, score numeric, note text
  );
  CREATE TABLE orders (id serial PRIMARY KEY, email text NOT NULL REFERENCES users (email), total int);
  INSERT INTO users VALUES
    (9007199254740993, 'peter@initech.com', 'Peter Gibbons', '{"tier": "gold", "tags": ["a", "b"], "n": 1}', '{"x": {"y": null}}',
     '2024-01-02 03:04:05.678+00', '2024-01-02 03:04:05.123456', '1990-07-04', '\\x00ff10', 12.50, NULL),
    (2, 'milton@initech.com', 'Milton', '{}', '[]', NULL, NULL, NULL, NULL, NULL, 'stapler');
  INSERT INTO orders (email, total) VALUES ('milton@initech.com', 3);
  CREATE PROCEDURE dsr(action text, subject text) LANGUAGE plpgsql AS $$
  BEGIN
    IF action = 'delete' THEN
      DELETE FROM orders WHERE email = subject;
      DELETE FROM users WHERE email = subject;
    END IF;
  END $$;
`;

// ---------------------------------------------------------------------------------------------

describe('access', () => {
  it("runs DataGrail's example statement; every row becomes a record with JSON nested, timestamps ISO, bytea base64, NULL, bigint", async () => {
    const db = await createDb(USERS);
    const pgc = connector();
    const run = makeRun({ secret: secretFor(db.name), statements: ['SELECT * FROM users WHERE email = %(email)s'] });
    await pgc.run(run);
    expect(run.records[0]).toEqual([
      {
        id: '9007199254740993',
        email: 'peter@initech.com',
        name: 'Peter Gibbons',
        profile: { tier: 'gold', tags: ['a', 'b'], n: 1 },
        settings: { x: { y: null } },
        created: '2024-01-02T03:04:05.678Z',
        seen: '2024-01-02T03:04:05.123456',
        born: '1990-07-04',
        avatar: Buffer.from([0x00, 0xff, 0x10]).toString('base64'),
        score: '12.50',
        note: null,
      },
    ]);
    const lines = parsed(run.logs);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'info', query: 'access[0]', ms: expect.any(Number), msg: 'statement succeeded' }));
    expect(run.logs.lines().join('\n')).not.toContain('peter@initech.com');
  });

  it('runs several statements in order, each with its own records; no rows is no records', async () => {
    const db = await createDb(USERS);
    const pgc = connector();
    const run = makeRun({
      identifiers: { email: 'milton@initech.com' },
      secret: secretFor(db.name),
      statements: [
        'SELECT name, note FROM users WHERE email = %(email)s',
        'SELECT total, %(email)s AS again FROM orders WHERE email = %(email)s',
        "SELECT 'nothing' WHERE %(email)s = 'nobody'",
      ],
    });
    await pgc.run(run);
    expect(run.records).toEqual([[{ name: 'Milton', note: 'stapler' }], [{ total: 3, again: 'milton@initech.com' }], []]);
  });

  it('streams 200,000 rows: the first row arrives before the server has sent a tenth of the result', async () => {
    const db = await createDb();
    const fake = await startFakePg(() => 'proxy');
    const pgc = connector();
    let count = 0;
    let last = 0;
    let sentAtFirstRow = -1;
    const run = makeRun({
      secret: secretFor(db.name, { host: '127.0.0.1', port: String(fake.port) }),
      statements: [
        {
          text: "SELECT g AS id, 'user' || g || '@example.com' AS email, repeat('x', 500) AS payload FROM generate_series(1, 200000) g WHERE %(email)s::text IS NOT NULL",
          consume: (r) => {
            if (count === 0) sentAtFirstRow = fake.bytesToClient();
            count++;
            last = Number(r.id);
          },
        },
      ],
    });
    await pgc.run(run);
    expect(count).toBe(200_000);
    expect(last).toBe(200_000);
    // Holding every row first would mean the whole result (over 100 MB) crossed the wire before row 1;
    // a cursor fetches it in batches of 1000 rows. The memory figure is bench case 6's (sql).
    const total = fake.bytesToClient();
    expect(total).toBeGreaterThan(100 * 1024 * 1024);
    expect(sentAtFirstRow).toBeGreaterThan(0);
    expect(sentAtFirstRow).toBeLessThan(total / 10);
  }, 60_000);

  it('a consumer error goes out unchanged', async () => {
    const db = await createDb(USERS);
    const pgc = connector();
    const boom = new AgentError(ErrorCodes.STORAGE_ERROR, 'disk full');
    const run = makeRun({
      secret: secretFor(db.name),
      statements: [{ text: 'SELECT * FROM users', consume: () => Promise.reject(boom) }],
    });
    await expect(pgc.run(run)).rejects.toBe(boom);
    // the connector still works afterwards
    const again = makeRun({ conn: run.conn, secret: secretFor(db.name), statements: ['SELECT count(*)::int AS n FROM users'] });
    await pgc.run(again);
    expect(again.records[0]).toEqual([{ n: 2 }]);
  });
});

describe('hostile identifier values', () => {
  const hostile = [
    "' OR 1=1 --",
    '%(email)s',
    '$1',
    '\\',
    "'; DROP TABLE probe; --",
    '%%',
    'Ünïcödé ✓ 😀 ﬀ',
    'x'.repeat(10 * 1024),
  ];

  it('reach the database as exactly that value and match nothing else', async () => {
    const db = await createDb('CREATE TABLE probe (v text)');
    for (const v of [...hostile, 'other', 'peter@initech.com']) await db.sql('INSERT INTO probe VALUES ($1)', [v]);
    const pgc = connector();
    const c = conn();
    for (const value of hostile) {
      const run = makeRun({
        conn: c,
        identifiers: { email: value },
        secret: secretFor(db.name),
        statements: ['SELECT v, length(v) AS n FROM probe WHERE v = %(email)s', 'SELECT %(email)s::text AS echo, %(email)s::text = %(email)s::text AS same'],
      });
      await pgc.run(run);
      expect(run.records[0]).toEqual([{ v: value, n: [...value].length }]);
      expect(run.records[1]).toEqual([{ echo: value, same: true }]);
    }
    const { rows } = await db.sql('SELECT count(*)::int AS n FROM probe');
    expect(rows[0].n).toBe(hostile.length + 2);
  });
});

describe('identifiers', () => {
  it('reads the column named like the identifier, else the first column', async () => {
    const db = await createDb(USERS);
    const pgc = connector();
    const run = makeRun({
      type: 'identifiers',
      secret: secretFor(db.name),
      statements: [
        { text: 'SELECT name, id AS user_id FROM users WHERE email = %(email)s OR id = 2 ORDER BY id', identifier: 'user_id' },
        { text: 'SELECT id, name FROM users WHERE email = %(email)s', identifier: 'user_id' },
        { text: 'SELECT NULL::text AS x, 1 AS y', identifier: 'user_id' },
      ],
    });
    await pgc.run(run);
    expect(run.records[0]).toEqual([{ user_id: '2' }, { user_id: '9007199254740993' }]);
    expect(run.records[1]).toEqual([{ user_id: '9007199254740993' }]);
    expect(run.records[2]).toEqual([{ user_id: null }]);
  });
});

describe('delete and optout', () => {
  it("runs DataGrail's stored-procedure example in a transaction and commits", async () => {
    const db = await createDb(USERS);
    const pgc = connector();
    const run = makeRun({ type: 'delete', identifiers: { email: 'milton@initech.com' }, secret: secretFor(db.name), statements: ["CALL dsr('delete', %(email)s)"] });
    await pgc.run(run);
    const { rows } = await db.sql('SELECT email FROM users ORDER BY id');
    expect(rows).toEqual([{ email: 'peter@initech.com' }]);
    expect(parsed(run.logs).filter((l) => l.msg === 'statement succeeded').map((l) => l.query)).toEqual(['delete[0]', 'delete (COMMIT)']);
  });

  it('rolls back every statement when a later one fails', async () => {
    const db = await createDb(USERS);
    const pgc = connector();
    const run = makeRun({
      type: 'optout',
      secret: secretFor(db.name),
      statements: ['DELETE FROM users WHERE email = %(email)s', 'UPDATE users SET id = id / 0 WHERE email = %(email)s OR true'],
    });
    const err = await failure(pgc.run(run));
    expect(err.code).toBe(ErrorCodes.DATABASE_ERROR);
    expect(err.message).toMatch(/^optout\[1\] failed: SQLSTATE 22012 \(division_by_zero\): division by zero/);
    const { rows } = await db.sql('SELECT count(*)::int AS n FROM users WHERE email = $1', ['peter@initech.com']);
    expect(rows[0].n).toBe(1);
    // the pooled session was rolled back and is usable again
    const next = makeRun({ conn: run.conn, type: 'delete', secret: secretFor(db.name), statements: ['DELETE FROM users WHERE email = %(email)s'] });
    await pgc.run(next);
    expect((await db.sql('SELECT count(*)::int AS n FROM users')).rows[0].n).toBe(1);
  });

  it("a server error's message and DETAIL are masked: SQLSTATE, condition name, no identifier value", async () => {
    const db = await createDb(USERS);
    const pgc = connector();
    const run = makeRun({
      type: 'delete',
      identifiers: { email: 'milton@initech.com' },
      secret: secretFor(db.name),
      statements: ['DELETE FROM users WHERE email = %(email)s'],
    });
    const err = await failure(pgc.run(run));
    expect(err.code).toBe(ErrorCodes.DATABASE_ERROR);
    expect(err.message).toMatch(/^delete\[0\] failed: SQLSTATE 23503 \(foreign_key_violation\): update or delete on table "users" violates foreign key constraint/);
    expect(err.message).toContain('DETAIL: Key (email)=(***) is still referenced from table "orders"');
    expect(err.message).not.toContain('milton');
    expect(err.message).not.toContain(PASSWORD);

    const typed = makeRun({ identifiers: { email: 'not-a-number-42' }, secret: secretFor(db.name), statements: ['SELECT * FROM users WHERE id = %(email)s'] });
    const e2 = await failure(pgc.run(typed));
    expect(e2.message).toBe('access[0] failed: SQLSTATE 22P02 (invalid_text_representation): invalid input syntax for type bigint: "***"');
  });
});

describe('test', () => {
  it('runs SELECT 1 when there are no statements, each statement otherwise; a failing one is DATABASE_ERROR', async () => {
    const db = await createDb(USERS);
    const pgc = connector();
    const run = makeRun({ type: 'test', secret: secretFor(db.name), statements: [] });
    await pgc.run(run);
    expect(parsed(run.logs)).toContainEqual(expect.objectContaining({ query: 'test[0]', msg: 'statement succeeded' }));
    await pgc.run(makeRun({ type: 'test', secret: secretFor(db.name), statements: ['SELECT count(*) FROM users', 'SELECT * FROM users'] }));
    const err = await failure(pgc.run(makeRun({ type: 'test', secret: secretFor(db.name), statements: ['SELECT 1 FROM no_such_table'] })));
    expect(err.message).toBe('test[0] failed: SQLSTATE 42P01 (undefined_table): relation "no_such_table" does not exist');
  });
});

describe('deadline', () => {
  it('cancels the running statement on the server, then throws the signal reason', async () => {
    const db = await createDb();
    const pgc = connector();
    const marker = `sleep_${randomBytes(4).toString('hex')}`;
    const ac = new AbortController();
    const run = makeRun({ secret: secretFor(db.name), signal: ac.signal, statements: [`SELECT pg_sleep(30) AS ${marker} WHERE %(email)s::text IS NOT NULL`] });
    const started = Date.now();
    const p = pgc.run(run);
    p.catch(() => undefined);
    await waitFor(async () => (await activeCount(marker)) === 1, 10_000, 'the statement to run');
    const reason = new AgentError(ErrorCodes.JOB_TIMEOUT, 'job_timeout_seconds (1) expired');
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(15_000);
    await waitFor(async () => (await activeCount(marker)) === 0, 10_000, 'the statement to end on the server');
    expect(parsed(run.logs)).toContainEqual(expect.objectContaining({ msg: 'running statement cancelled on the server' }));
  });

  it('an abort during a delete transaction rolls it back', async () => {
    const db = await createDb(USERS);
    const pgc = connector();
    const marker = `sleep_${randomBytes(4).toString('hex')}`;
    const ac = new AbortController();
    const run = makeRun({
      type: 'delete',
      secret: secretFor(db.name),
      signal: ac.signal,
      statements: ['DELETE FROM users WHERE email = %(email)s', `SELECT pg_sleep(30) AS ${marker}`],
    });
    const p = pgc.run(run);
    p.catch(() => undefined);
    await waitFor(async () => (await activeCount(marker)) === 1, 10_000, 'the statement to run');
    const reason = new AgentError(ErrorCodes.CANCELLED, 'shutting down');
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
    await waitFor(async () => (await activeCount(marker)) === 0, 10_000, 'the statement to end on the server');
    // the deleting session is gone or rolled back: the row is there and not locked
    await waitFor(async () => (await db.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'")).rows[0].n === 0, 10_000, 'the transaction to end');
    const { rows } = await db.sql('DELETE FROM users WHERE email = $1 AND false RETURNING 1', ['peter@initech.com']);
    expect(rows).toEqual([]);
    expect((await db.sql('SELECT count(*)::int AS n FROM users WHERE email = $1', ['peter@initech.com'])).rows[0].n).toBe(1);
  });

  it('an already aborted signal sends nothing', async () => {
    const fake = await startFakePg(() => 'proxy');
    const pgc = connector();
    const ac = new AbortController();
    const reason = new AgentError(ErrorCodes.JOB_TIMEOUT, 'expired');
    ac.abort(reason);
    await expect(pgc.run(makeRun({ secret: secretFor('test', { port: String(fake.port) }), signal: ac.signal, statements: ['SELECT 1'] }))).rejects.toBe(reason);
    expect(fake.startups()).toBe(0);
  });

  it('repeats the cancel request when the first one lands before the statement executes', async () => {
    const db = await createDb();
    // Execute messages reach the server 600 ms late, so the statement shows as active (from its
    // Parse on) 600 ms before it runs: a cancel request in that gap does nothing.
    const fake = await startFakePg(() => 'proxy', undefined, 600);
    const pgc = connector();
    const marker = `sleep_${randomBytes(4).toString('hex')}`;
    const ac = new AbortController();
    const run = makeRun({ secret: secretFor(db.name, { port: String(fake.port) }), signal: ac.signal, statements: [`SELECT pg_sleep(30) AS ${marker}`] });
    const p = pgc.run(run);
    p.catch(() => undefined);
    await waitFor(async () => (await activeCount(marker)) === 1, 10_000, 'the statement to be parsed');
    const reason = new AgentError(ErrorCodes.JOB_TIMEOUT, 'expired');
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
    await waitFor(async () => (await activeCount(marker)) === 0, 10_000, 'the statement to end on the server');
    const cancelled = parsed(run.logs).find((l) => l.msg === 'running statement cancelled on the server');
    expect(cancelled).toMatchObject({ cancelRequests: expect.any(Number) });
    expect(cancelled!.cancelRequests as number).toBeGreaterThanOrEqual(2);
  });
});

describe('connection failures', () => {
  it('a refused login (28P01) is not retried: one attempt, CONNECT_FAILED naming the connection and the SQLSTATE, never the password', async () => {
    const fake = await startFakePg(() => ({ code: '28P01', message: 'password authentication failed for user "postgres"' }));
    const pgc = connector();
    const run = makeRun({ conn: conn('Billing DB'), secret: secretFor('test', { port: String(fake.port) }), statements: ['SELECT 1'], retries: 3 });
    const err = await failure(pgc.run(run));
    expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
    expect(err.message).toMatch(/^connection "Billing DB": could not connect \(SQLSTATE 28P01 \(invalid_password\)/);
    expect(err.message).toMatch(/check user and password/);
    expect(err.message).not.toContain(PASSWORD);
    expect(fake.startups()).toBe(1);
    expect(parsed(run.logs).filter((l) => l.msg === 'retrying database connection')).toEqual([]);
    expect(run.logs.lines().join('\n')).not.toContain(PASSWORD);
  });

  it('an unknown role on the real server (28000) is not retried', async () => {
    const fake = await startFakePg(() => 'proxy');
    const pgc = connector();
    const run = makeRun({ secret: secretFor('test', { port: String(fake.port), user: 'no_such_role_x' }), statements: ['SELECT 1'] });
    const err = await failure(pgc.run(run));
    expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
    expect(err.message).toContain('SQLSTATE 28000 (invalid_authorization_specification)');
    expect(err.message).toContain('role "***" does not exist');
    expect(fake.startups()).toBe(1);
  });

  it('a refused port is retried with backoff per run.retry, then CONNECT_FAILED', async () => {
    const port = await closedPort();
    const pgc = connector();
    const run = makeRun({ conn: conn('Orders DB'), secret: secretFor('test', { port: String(port) }), statements: ['SELECT 1'], retries: 2 });
    const err = await failure(pgc.run(run));
    expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
    expect(err.message).toMatch(/^connection "Orders DB": could not connect \(ECONNREFUSED\) after 3 attempts; .*check host and port/);
    const retries = parsed(run.logs).filter((l) => l.msg === 'retrying database connection');
    expect(retries).toEqual([
      expect.objectContaining({ level: 'warn', connection: 'Orders DB', attempt: 1, reason: 'ECONNREFUSED' }),
      expect.objectContaining({ level: 'warn', connection: 'Orders DB', attempt: 2, reason: 'ECONNREFUSED' }),
    ]);
  });

  it('a server starting up (57P03) is retried until it accepts', async () => {
    const db = await createDb(USERS);
    const fake = await startFakePg((n) => (n <= 2 ? { code: '57P03', message: 'the database system is starting up' } : 'proxy'));
    const pgc = connector();
    const run = makeRun({ secret: secretFor(db.name, { port: String(fake.port) }), statements: ['SELECT name FROM users WHERE email = %(email)s'], retries: 3 });
    await pgc.run(run);
    expect(run.records[0]).toEqual([{ name: 'Peter Gibbons' }]);
    expect(fake.startups()).toBe(3);
    expect(parsed(run.logs).filter((l) => l.msg === 'retrying database connection').map((l) => l.reason)).toEqual(['57P03', '57P03']);
  });

  it('too many connections (53300) is retried, then CONNECT_FAILED', async () => {
    const fake = await startFakePg(() => ({ code: '53300', message: 'sorry, too many clients already' }));
    const pgc = connector();
    const run = makeRun({ secret: secretFor('test', { port: String(fake.port) }), statements: ['SELECT 1'], retries: 1 });
    const err = await failure(pgc.run(run));
    expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
    expect(err.message).toContain('SQLSTATE 53300 (too_many_connections): sorry, too many clients already) after 2 attempts');
    expect(fake.startups()).toBe(2);
  });

  it('an abort while retrying stops at once with the signal reason', async () => {
    const port = await closedPort();
    const pgc = connector();
    const ac = new AbortController();
    const run = makeRun({ secret: secretFor('test', { port: String(port) }), signal: ac.signal, statements: ['SELECT 1'] });
    (run as { retry: unknown }).retry = { retries: 10, minDelayMs: 60_000, maxDelayMs: 60_000 };
    const p = pgc.run(run);
    p.catch(() => undefined);
    await waitFor(async () => run.logs.lines().some((l) => l.includes('retrying database connection')), 10_000, 'the first retry');
    const reason = new AgentError(ErrorCodes.JOB_TIMEOUT, 'expired');
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
  });
});

describe('TLS', () => {
  let cert: { key: string; cert: string };
  beforeAll(() => {
    cert = makeSelfSignedCert();
  });

  it('sslmode require encrypts without verifying; verify-full refuses an unknown CA without retrying and accepts ssl_ca', async () => {
    const db = await createDb(USERS);
    const fake = await startFakePg(() => 'proxy', cert);
    const pgc = connector();
    const c = conn();
    const ssl = (extra: Record<string, string>) => secretFor(db.name, { port: String(fake.port), ...extra });

    const req = makeRun({ conn: c, secret: ssl({ sslmode: 'require' }), statements: ['SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'] });
    await pgc.run(req);
    expect(req.records[0]).toEqual([{ ssl: false }]); // the proxy terminates TLS: the server itself saw plain text
    expect(fake.startups()).toBe(1);

    const strict = makeRun({ conn: c, secret: ssl({ sslmode: 'verify-full' }), statements: ['SELECT 1'], retries: 3 });
    const err = await failure(pgc.run(strict));
    expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
    expect(err.message).toMatch(/DEPTH_ZERO_SELF_SIGNED_CERT.*sslmode.*ssl_ca/);
    expect(parsed(strict.logs).filter((l) => l.msg === 'retrying database connection')).toEqual([]);

    const pinned = makeRun({ conn: c, secret: ssl({ sslmode: 'verify-full', ssl_ca: cert.cert }), statements: ['SELECT name FROM users WHERE email = %(email)s'] });
    await pgc.run(pinned);
    expect(pinned.records[0]).toEqual([{ name: 'Peter Gibbons' }]);

    const caOnly = makeRun({ conn: c, secret: ssl({ ssl_ca: cert.cert }), statements: ['SELECT 1 AS one'] });
    await pgc.run(caOnly);
    expect(caOnly.records[0]).toEqual([{ one: 1 }]);
  });

  it('sslmode require against a server without TLS is CONNECT_FAILED, not retried', async () => {
    const fake = await startFakePg(() => 'proxy');
    const pgc = connector();
    const run = makeRun({ secret: secretFor('test', { port: String(fake.port), sslmode: 'require' }), statements: ['SELECT 1'] });
    const err = await failure(pgc.run(run));
    expect(err.code).toBe(ErrorCodes.CONNECT_FAILED);
    expect(err.message).toMatch(/TLS handshake failed/);
    expect(parsed(run.logs).filter((l) => l.msg === 'retrying database connection')).toEqual([]);
  });

  it('cancels a statement on a TLS session', async () => {
    const db = await createDb();
    const fake = await startFakePg(() => 'proxy', cert);
    const pgc = connector();
    const marker = `sleep_${randomBytes(4).toString('hex')}`;
    const ac = new AbortController();
    const run = makeRun({ secret: secretFor(db.name, { port: String(fake.port), sslmode: 'require' }), signal: ac.signal, statements: [`SELECT pg_sleep(30) AS ${marker}`] });
    const p = pgc.run(run);
    p.catch(() => undefined);
    await waitFor(async () => (await activeCount(marker)) === 1, 10_000, 'the statement to run');
    const reason = new AgentError(ErrorCodes.JOB_TIMEOUT, 'expired');
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
    await waitFor(async () => (await activeCount(marker)) === 0, 10_000, 'the statement to end on the server');
  });
});

describe('secret', () => {
  it('missing, unknown and malformed keys are SECRET_INVALID naming the key, never a value', async () => {
    const pgc = connector();
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ user: 'u', password: PASSWORD, host: 'h', port: '5432' }, /missing required key "dbname"/],
      [{ user: 'u', password: PASSWORD, port: '5432', dbname: 'd' }, /missing required key "host"/],
      [{ password: PASSWORD, host: 'h', dbname: 'd' }, /missing required key "user"/],
      [{ user: 'u', password: PASSWORD, host: 'h', dbname: 'd', database: 'd' }, /unknown key "database"; Postgres names the database "dbname"/],
      [{ user: 'u', password: PASSWORD, host: 'h', dbname: 'd', ssl_mode: 'require' }, /unknown key "ssl_mode"/],
      [{ user: 'u', password: PASSWORD, host: 'h', dbname: 'd', port: 'x5432' }, /key "port" must be a port number/],
      [{ user: 'u', password: PASSWORD, host: 'h', dbname: 'd', sslmode: 'prefer' }, /key "sslmode" must be one of disable, require, verify-full/],
      [{ user: 'u', password: PASSWORD, host: 'h', dbname: 'd', ssl_ca: 'not pem' }, /key "ssl_ca" must be PEM/],
    ];
    for (const [secret, message] of cases) {
      const err = await failure(pgc.run(makeRun({ secret, statements: ['SELECT 1'] })));
      expect(err.code).toBe(ErrorCodes.SECRET_INVALID);
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain(PASSWORD);
    }
  });
});

describe('Redshift flavor', () => {
  it('reads the database from "database", refuses "dbname", and requires TLS by default', async () => {
    const db = await createDb(USERS);
    const rs = connector('Redshift');
    const secret = { user: 'postgres', password: PASSWORD, host: PG_HOST, port: String(PG_PORT), database: db.name };
    const run = makeRun({ secret: { ...secret, sslmode: 'disable' }, statements: ['SELECT name FROM users WHERE email = %(email)s'] });
    await rs.run(run);
    expect(run.records[0]).toEqual([{ name: 'Peter Gibbons' }]);

    const wrong = await failure(rs.run(makeRun({ secret: secretFor(db.name), statements: ['SELECT 1'] })));
    expect(wrong.code).toBe(ErrorCodes.SECRET_INVALID);
    expect(wrong.message).toMatch(/unknown key "dbname"; Redshift names the database "database"/);

    const plain = await failure(rs.run(makeRun({ secret, statements: ['SELECT 1'] })));
    expect(plain.code).toBe(ErrorCodes.CONNECT_FAILED);
    expect(plain.message).toMatch(/TLS handshake failed/);

    const fake = await startFakePg(() => 'proxy', makeSelfSignedCert());
    const viaTls = makeRun({ secret: { ...secret, port: String(fake.port) }, statements: ['SELECT count(*)::int AS n FROM users'] });
    await rs.run(viaTls);
    expect(viaTls.records[0]).toEqual([{ n: 2 }]);
  });

  it('defaults: port 5439 and sslmode require for Redshift; 5432 and pg\'s default for Postgres', () => {
    expect(parseSecret({ user: 'u', password: 'p', host: 'h', database: 'd' }, 'Redshift')).toMatchObject({ port: 5439, database: 'd', sslmode: 'require' });
    expect(parseSecret({ user: 'u', password: 'p', host: 'h', dbname: 'd' }, 'Postgres')).toMatchObject({ port: 5432, database: 'd', sslmode: undefined });
    const base = { user: 'u', password: 'p', host: 'db.example.com', dbname: 'd' };
    expect(sslOption(parseSecret(base, 'Postgres'))).toBeUndefined();
    expect(sslOption(parseSecret({ ...base, sslmode: 'disable' }, 'Postgres'))).toBe(false);
    expect(sslOption(parseSecret({ ...base, sslmode: 'require' }, 'Postgres'))).toEqual({ rejectUnauthorized: false });
    expect(sslOption(parseSecret({ ...base, sslmode: 'verify-full' }, 'Postgres'))).toEqual({ rejectUnauthorized: true, servername: 'db.example.com' });
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(sslOption(parseSecret({ ...base, sslmode: 'require', ssl_ca: pem }, 'Postgres'))).toMatchObject({ rejectUnauthorized: true, ca: pem });
  });
});

describe('pools', () => {
  it('reuses one pool per connection, and close() ends its sessions (the connector works again afterwards)', async () => {
    const db = await createDb();
    const pgc = makePostgresConnector();
    cleanups.push(() => pgc.close());
    const c = conn();
    const pid = async () => {
      const run = makeRun({ conn: c, secret: secretFor(db.name), statements: ['SELECT pg_backend_pid() AS pid'] });
      await pgc.run(run);
      return run.records[0]![0]!.pid as number;
    };
    const first = await pid();
    expect(await pid()).toBe(first);
    const sessions = async () =>
      (await db.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dsr-agent'")).rows[0].n as number;
    expect(await sessions()).toBe(1);
    await pgc.close();
    await waitFor(async () => (await sessions()) === 0, 10_000, 'the pooled session to end');
    expect(await pid()).not.toBe(first);

    // a rotated secret (other settings, same connection) gets a new pool; the old one is ended
    const rotated = makeRun({ conn: c, secret: secretFor(db.name, { password: 'rotated-pw' }), statements: ['SELECT pg_backend_pid() AS pid'] });
    await pgc.run(rotated);
    await waitFor(async () => (await sessions()) === 1, 10_000, 'the old pool to end');
    await pgc.close();
    await waitFor(async () => (await sessions()) === 0, 10_000, 'the pooled session to end');
  });

  it('discards a pooled session the server ended, idle or mid-statement', async () => {
    const db = await createDb();
    const pgc = connector();
    const c = conn();
    const pidRun = () => makeRun({ conn: c, secret: secretFor(db.name), statements: ['SELECT pg_backend_pid() AS pid'] });
    const first = pidRun();
    await pgc.run(first);
    const pid = first.records[0]![0]!.pid as number;
    await db.sql('SELECT pg_terminate_backend($1)', [pid]);
    await waitFor(async () => first.logs.lines().some((l) => l.includes('an idle database connection failed and was discarded')), 10_000, 'the pool to drop the session');
    const second = pidRun();
    await pgc.run(second);
    expect(second.records[0]![0]!.pid).not.toBe(pid);

    const marker = `sleep_${randomBytes(4).toString('hex')}`;
    const busy = makeRun({ conn: c, secret: secretFor(db.name), statements: [`SELECT pg_sleep(30) AS ${marker}`] });
    const p = pgc.run(busy);
    p.catch(() => undefined);
    await waitFor(async () => (await activeCount(marker)) === 1, 10_000, 'the statement to run');
    await db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active' AND pid <> pg_backend_pid()", [`%${marker}%`]);
    const err = await failure(p);
    expect(err.code).toBe(ErrorCodes.DATABASE_ERROR);
    expect(err.message).toMatch(/^access\[0\] failed: SQLSTATE 57P01 \(admin_shutdown\): terminating connection due to administrator command/);
    const third = pidRun();
    await pgc.run(third);
    expect(third.records[0]).toHaveLength(1);
  });

  it('at most 4 sessions per connection however many runs at once', async () => {
    const db = await createDb();
    const pgc = connector();
    const c = conn();
    const runs = Array.from({ length: 10 }, () => makeRun({ conn: c, secret: secretFor(db.name), statements: ['SELECT pg_sleep(0.05), pg_backend_pid() AS pid'] }));
    await Promise.all(runs.map((r) => pgc.run(r)));
    const pids = new Set(runs.map((r) => r.records[0]![0]!.pid));
    expect(pids.size).toBeLessThanOrEqual(4);
  });
});

describe('plan', () => {
  it('shows each statement as the driver receives it, parameters masked; opens no connection', async () => {
    const fake = await startFakePg(() => 'proxy');
    const pgc = connector();
    const run = makeRun({
      type: 'delete',
      identifiers: { email: 'peter@initech.com', user_id: '42' },
      secret: secretFor('test', { port: String(fake.port) }),
      statements: ['DELETE FROM orders WHERE email = %(email)s', "CALL dsr('delete', %(email)s, %(user_id)s, %(email)s, '100%%')", 'VACUUM'],
    });
    expect(pgc.plan(run)).toEqual([
      { query: 'delete[0]', statement: 'DELETE FROM orders WHERE email = $1', parameters: { email: '****' } },
      { query: 'delete[1]', statement: "CALL dsr('delete', $1, $2, $1, '100%')", parameters: { email: '****', user_id: '****' } },
      { query: 'delete[2]', statement: 'VACUUM' },
    ]);
    expect(pgc.plan(makeRun({ type: 'test', secret: secretFor('test'), statements: [] }))).toEqual([{ query: 'test[0]', statement: 'SELECT 1' }]);
    expect(pgc.plan(makeRun({ identifiers: { email: 'a@b.c' }, secret: secretFor('test'), statements: ['SELECT %(phone)s', "SELECT 'a%'", 'SELECT %(email)s'] }))).toEqual([
      { query: 'access[0]', error: { code: ErrorCodes.TEMPLATE_MISSING_VARIABLE, message: expect.stringContaining('%(phone)s') } },
      { query: 'access[1]', error: { code: ErrorCodes.TEMPLATE_INVALID, message: expect.stringContaining("'%%'") } },
      { query: 'access[2]', statement: 'SELECT $1', parameters: { email: '****' } },
    ]);
    expect(() => pgc.plan(makeRun({ secret: { host: 'h' }, statements: ['SELECT 1'] }))).toThrow(expect.objectContaining({ code: ErrorCodes.SECRET_INVALID }));
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.startups()).toBe(0);
  });

  it('a template error fails the run before anything is sent', async () => {
    const fake = await startFakePg(() => 'proxy');
    const pgc = connector();
    const err = await failure(pgc.run(makeRun({ type: 'delete', secret: secretFor('test', { port: String(fake.port) }), statements: ['SELECT 1', "SELECT * FROM t WHERE name LIKE 'a%'"] })));
    expect(err.code).toBe(ErrorCodes.TEMPLATE_INVALID);
    expect(fake.startups()).toBe(0);
  });
});
