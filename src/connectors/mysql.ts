/**
 * The MySQL and MariaDB connector (connector_type "MySQL"), on mysql2.
 *
 * Statements are DataGrail's: SQL with PEP 249 pyformat placeholders (`%(email)s`). Each
 * placeholder becomes a `?` of a server-side prepared statement (mysql2's `execute`), and the
 * identifier value travels as a bound parameter: it is never part of the SQL text, whatever it
 * holds (quotes, `%(name)s`, `?`, backslashes, any sql_mode).
 *
 * - access: every row of every result set (a `CALL` may return several) is one record, streamed
 *   with backpressure: the socket is paused while the consumer is busy, so memory stays bounded
 *   whatever the number of rows.
 * - identifiers: each row gives one record carrying the identifier's value under the identifier's
 *   name: the row itself when it has a column of that name, else `{[identifier]: <first column>}`.
 * - test: succeeds when every statement runs; without statements it runs `SELECT 1`.
 * - delete, optout: every statement runs in one transaction, committed at the end or rolled back
 *   together when one fails (use a transactional engine such as InnoDB).
 *
 * Values become report values as {@link rowRecord} says: DATETIME/TIMESTAMP as ISO 8601 in UTC
 * (DATETIME is read as UTC, the session time zone is `+00:00`), BLOB/BINARY as base64, BIGINT and
 * DECIMAL as their exact decimal text, NULL as null, JSON parsed where mysql2 recognises the column
 * as JSON (MySQL's JSON type, MariaDB's JSON alias), else its text.
 *
 * ## Secret keys (DataGrail's MySQL connection secret)
 *
 * | key        | required | meaning                                                              |
 * |------------|----------|----------------------------------------------------------------------|
 * | `user`     | yes      | the login                                                            |
 * | `password` | yes      | its password (the key must exist; it may be empty)                   |
 * | `server`   | yes      | host name or IP address of the server                                |
 * | `port`     | no       | TCP port, default 3306                                               |
 * | `database` | yes      | the default database (schema) the statements run in                  |
 * | `ssl`      | no       | `"true"`: require TLS and verify the server's certificate (system CAs, or `ssl_ca`) and, for a host name, that it matches; `"false"` (default): plain TCP |
 * | `ssl_ca`   | no       | PEM certificate(s) of the CA that signed the server's certificate; implies TLS with verification |
 *
 * A missing required key, an invalid port, or another `ssl` value fails with SECRET_INVALID naming
 * the key (never its value). With TLS required, a server without TLS is refused (no downgrade).
 *
 * ## Pools
 *
 * One small pool (4 connections) per connection uuid and settings fingerprint (a hash of the
 * secret's settings: a rotated password opens a new pool and retires the old one once idle),
 * opened on first use, ended by {@link Connector.close}. A pooled connection is pinged when taken,
 * so one the server or network dropped is replaced.
 *
 * ## Connection failures
 *
 * Failures retrying can fix (refused, DNS, timeout, reset, "too many connections") are retried with
 * backoff per `run.retry`, within `run.signal`. A refused login (errno 1045, 1044) and other
 * server answers are not retried. Either way the error is CONNECT_FAILED naming the connection and
 * the code, never the password.
 *
 * ## Cancellation
 *
 * When `run.signal` aborts (job_timeout_seconds, shutdown), the connector sends `KILL QUERY
 * <thread id>` from a separate connection, so the running statement stops on the server (and a
 * delete transaction is rolled back), destroys the run's connection, and throws `signal.reason`.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import pRetry, { AbortError } from 'p-retry';
import type { Connection as MysqlConnection, FieldPacket, Pool, PoolConnection, PoolOptions, ConnectionOptions } from 'mysql2';
import type { Connection } from '../config/types.js';
import type { Secret } from '../credentials/source.js';
import { AgentError, ErrorCodes, asAgentError } from '../errors.js';
import { backoffOptions } from '../engine/send.js';
import type { Logger } from '../logger.js';
import type { Mask } from '../engine/mask.js';
import { bindPyformat, parameterValues, type BoundStatement } from './pyformat.js';
import { columnValue, rowRecord } from './sql-values.js';
import type { Connector, ConnectorRun, PlannedStatement, RunStatement } from './types.js';

type Mysql2 = typeof import('mysql2');

/** Connections per pool. */
export const MYSQL_POOL_SIZE = 4;
/** Default TCP port. */
export const MYSQL_DEFAULT_PORT = 3306;
/** How long opening one connection may take. */
const CONNECT_TIMEOUT_MS = 10_000;
/** How long the KILL QUERY on abort may take (connecting included) before the connection is simply destroyed. */
const KILL_TIMEOUT_MS = 10_000;
/** Prepared statements kept per connection (mysql2 closes the least recently used beyond). */
const MAX_PREPARED = 64;
/** Rows buffered ahead of the consumer before the socket is paused. */
const STREAM_HIGH_WATER_MARK = 64;
/** The statement a test runs when the connection has no test statements. */
const DEFAULT_TEST = 'SELECT 1';

/** Connection settings read from a connection's secret. */
export interface MysqlSettings {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** TLS with verification; `ca` replaces the system CAs. Undefined: plain TCP. */
  readonly tls?: { readonly ca?: string };
}

function secretInvalid(conn: Pick<Connection, 'name'>, message: string): AgentError {
  return new AgentError(ErrorCodes.SECRET_INVALID, `connection "${conn.name}": ${message}`);
}

/**
 * Read the connection settings from a MySQL connection's secret (keys: user, password, server,
 * port, database, ssl, ssl_ca). Throws SECRET_INVALID naming a missing or invalid key.
 */
export function mysqlSettings(secret: Secret, conn: Pick<Connection, 'name'>): MysqlSettings {
  const get = (key: string): string | undefined => (Object.hasOwn(secret, key) ? String(secret[key]) : undefined);
  const required = (key: string, mayBeEmpty = false): string => {
    const v = get(key);
    if (v === undefined) {
      throw secretInvalid(conn, `the secret has no "${key}" key (a MySQL secret needs user, password, server and database; port defaults to ${MYSQL_DEFAULT_PORT})`);
    }
    if (!mayBeEmpty && v.trim() === '') throw secretInvalid(conn, `the secret's "${key}" is empty`);
    return v;
  };
  const user = required('user');
  const password = required('password', true);
  const host = required('server').trim();
  const database = required('database');
  let port = MYSQL_DEFAULT_PORT;
  const rawPort = get('port');
  if (rawPort !== undefined && rawPort.trim() !== '') {
    const p = rawPort.trim();
    port = /^\d{1,5}$/.test(p) ? Number(p) : NaN;
    if (!(port >= 1 && port <= 65535)) throw secretInvalid(conn, `the secret's "port" must be a TCP port number (1-65535)`);
  }
  const rawSsl = get('ssl')?.trim().toLowerCase();
  if (rawSsl !== undefined && rawSsl !== '' && rawSsl !== 'true' && rawSsl !== 'false') {
    throw secretInvalid(conn, `the secret's "ssl" must be "true" (require TLS with certificate verification) or "false"`);
  }
  const ca = get('ssl_ca');
  const hasCa = ca !== undefined && ca.trim() !== '';
  if (hasCa && !ca.includes('-----BEGIN CERTIFICATE-----')) {
    throw secretInvalid(conn, `the secret's "ssl_ca" must be PEM (-----BEGIN CERTIFICATE----- …)`);
  }
  const tls = hasCa ? { ca } : rawSsl === 'true' ? {} : undefined;
  return { host, port, user, password, database, ...(tls ? { tls } : {}) };
}

/** A hash of the settings: the pool key, without the password in clear. */
function fingerprint(s: MysqlSettings): string {
  return createHash('sha256')
    .update(JSON.stringify([s.host, s.port, s.user, s.password, s.database, s.tls ? (s.tls.ca ?? true) : false]))
    .digest('hex')
    .slice(0, 32);
}

/** mysql2 options for these settings. */
function connectionOptions(s: MysqlSettings): ConnectionOptions {
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    password: s.password,
    database: s.database,
    connectTimeout: CONNECT_TIMEOUT_MS,
    charset: 'UTF8MB4_UNICODE_CI',
    dateStrings: false,
    supportBigNumbers: true,
    bigNumberStrings: true,
    // DATETIME has no zone: read it as UTC (the session time zone is set to +00:00 too, for TIMESTAMP).
    timezone: 'Z',
    multipleStatements: false,
    maxPreparedStatements: MAX_PREPARED,
    enableKeepAlive: true,
    ...(s.tls ? { ssl: { ...(s.tls.ca ? { ca: s.tls.ca } : {}), rejectUnauthorized: true, verifyIdentity: true } } : {}),
  };
}

let mysqlModule: Promise<Mysql2> | undefined;
/** mysql2, imported on first use (agents without MySQL connections never load it). */
function loadMysql(): Promise<Mysql2> {
  mysqlModule ??= import('mysql2').then((m) => ((m as unknown as { default?: Mysql2 }).default ?? m) as Mysql2);
  return mysqlModule;
}

/** An error as mysql2 raises it. */
interface DriverError extends Error {
  code?: string;
  errno?: number;
  sqlState?: string;
  sqlMessage?: string;
  fatal?: boolean;
}

/** Connection failures that retrying can fix. */
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT',
]);
/** Server answers that retrying can fix: too many connections (global, per user). */
const RETRYABLE_ERRNOS = new Set([1040, 1203]);
/** The login was refused: access denied (1045), no access to the database (1044). */
const AUTH_ERRNOS = new Set([1044, 1045]);
/** KILL QUERY of a thread that has already gone. */
const ER_NO_SUCH_THREAD = 1094;

/**
 * A failed connection attempt that may be retried, wrapping the driver's error (an Error of this
 * realm: p-retry does not retry what it does not recognise as an Error).
 */
class RetryableAttempt extends Error {
  constructor(readonly driver: DriverError) {
    super(driver.code ?? 'connection failed');
  }
}

function isRetryableConnectError(err: DriverError): boolean {
  return (err.code !== undefined && RETRYABLE_CODES.has(err.code)) || (err.errno !== undefined && RETRYABLE_ERRNOS.has(err.errno));
}

/** `errno 1045 (ER_ACCESS_DENIED_ERROR)`, or the code for a network error. */
function describeCode(err: DriverError): string {
  if (err.sqlState !== undefined && typeof err.errno === 'number') return `errno ${err.errno} (${err.code ?? 'unknown'})`;
  return err.code ?? err.name;
}

/**
 * Mask what the server said: the run's mask (identifier and secret values), then any quoted text
 * that is a piece of an identifier value (MySQL truncates long values in messages such as
 * "Duplicate entry 'peter.gibbons.with.a.long.addr...' for key", which the whole-value mask misses).
 */
function maskServerText(text: string, run: Pick<ConnectorRun, 'mask' | 'identifiers'>): string {
  const masked = run.mask(text);
  const values = Object.values(run.identifiers).filter((v) => typeof v === 'string' && v.length >= 3);
  if (values.length === 0) return masked;
  return masked.replace(/'([^']{3,})'/g, (whole, inner: string) => {
    const core = inner.endsWith('...') ? inner.slice(0, -3) : inner;
    return core.length >= 3 && values.some((v) => v.includes(core)) ? "'***'" : whole;
  });
}

function connectError(run: ConnectorRun, err: DriverError, attempts: number): AgentError {
  const name = `connection "${run.conn.name}"`;
  const server = err.sqlMessage ? `: ${maskServerText(err.sqlMessage, run)}` : '';
  if (err.errno !== undefined && AUTH_ERRNOS.has(err.errno)) {
    return new AgentError(
      ErrorCodes.CONNECT_FAILED,
      `${name}: MySQL refused the login (${describeCode(err)}${server}); check user, password and database in the connection's secret and the user's grants`,
    );
  }
  if (isRetryableConnectError(err)) {
    return new AgentError(
      ErrorCodes.CONNECT_FAILED,
      `${name}: could not connect to MySQL (${describeCode(err)}) after ${attempts} attempt${attempts === 1 ? '' : 's'}; check server and port in the connection's secret and that the database accepts connections from the agent`,
    );
  }
  if (err.sqlState === undefined && /SSL|TLS|CERT|HANDSHAKE/i.test(`${err.code ?? ''} ${err.message}`)) {
    return new AgentError(
      ErrorCodes.CONNECT_FAILED,
      `${name}: TLS to MySQL failed (${err.code ?? 'TLS error'}); the secret asks for TLS with verification (ssl "true" or ssl_ca): check that the server has TLS enabled and ssl_ca holds the CA that signed its certificate`,
    );
  }
  return new AgentError(ErrorCodes.CONNECT_FAILED, `${name}: could not connect to MySQL (${describeCode(err)}${server})`);
}

function statementError(label: string, err: DriverError, run: ConnectorRun): AgentError {
  if (err.sqlState !== undefined && typeof err.errno === 'number') {
    const message = maskServerText(err.sqlMessage ?? err.message, run);
    return new AgentError(ErrorCodes.DATABASE_ERROR, `${label} failed: errno ${err.errno} (${err.code ?? 'unknown'}) SQLSTATE ${err.sqlState}: ${message}`);
  }
  const lost = err.fatal || (err.code !== undefined && RETRYABLE_CODES.has(err.code));
  return new AgentError(
    ErrorCodes.DATABASE_ERROR,
    lost ? `${label} failed: the connection to MySQL was lost (${err.code ?? err.name})` : `${label} failed: ${err.code ?? err.name}`,
  );
}

/**
 * `p` unless `signal` aborts first: then rejects with the reason and hands a late value to `onLate`
 * (a connection that arrives after the abort goes back to its pool).
 */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal, onLate: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.then(onLate, () => undefined);
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** One pool, with the runs using it (a retired pool ends once none are left). */
interface PoolEntry {
  readonly key: string;
  readonly uuid: string;
  readonly pool: Pool;
  active: number;
  retired: boolean;
}

/** The statement label of the default test. */
const DEFAULT_TEST_LABEL = 'test';

/** The statements to run, with the default for a test that has none. */
function statementsOf(run: Pick<ConnectorRun, 'type' | 'statements'>): readonly RunStatement[] {
  if (run.statements.length > 0 || run.type !== 'test') return run.statements;
  return [{ label: DEFAULT_TEST_LABEL, text: DEFAULT_TEST }];
}

/** A statement bound for mysql2, with its parameter values. */
interface Prepared {
  readonly st: RunStatement;
  readonly bound: BoundStatement;
  readonly values: string[];
}

/** A consumer's own failure (storage, a record too large), passed on as it is, not as a database error. */
class ConsumerFailure extends Error {
  constructor(readonly error: unknown) {
    super('record consumer failed');
  }
}

/** What the abort handler needs to stop the run. */
interface RunState {
  stream?: Readable;
  killing?: Promise<void>;
  /** A statement was left running (its consumer failed): the connection must not go back to the pool. */
  dirty?: boolean;
  /** The connection failed between statements. */
  broken?: Error;
  /** Rejects the consumer wait in progress (on abort). One slot, not a race per row: that would pile reactions onto one pending promise. */
  interrupt?: (reason: unknown) => void;
}

/**
 * The identifiers record of a row: the row when it has a column named like the identifier, else
 * the identifier's name with the first column's value.
 */
function identifierRecord(row: Record<string, unknown>, identifier: string, firstColumn: string | undefined): Record<string, unknown> {
  if (Object.hasOwn(row, identifier)) return rowRecord(row);
  const first = firstColumn !== undefined && Object.hasOwn(row, firstColumn) ? firstColumn : Object.keys(row)[0];
  return { [identifier]: first === undefined ? null : columnValue(row[first]) };
}

/** Make the MySQL/MariaDB connector. Pools live in it until {@link Connector.close}. */
export function makeMysqlConnector(): Connector {
  const pools = new Map<string, PoolEntry>();
  const endings = new Set<Promise<void>>();
  const kills = new Set<Promise<void>>();

  const endPool = (entry: PoolEntry): void => {
    pools.delete(entry.key);
    const ending = new Promise<void>((resolve) => entry.pool.end(() => resolve()));
    endings.add(ending);
    void ending.finally(() => endings.delete(ending));
  };

  const poolFor = (mysql: Mysql2, run: ConnectorRun, settings: MysqlSettings): PoolEntry => {
    const key = `${run.conn.uuid}:${fingerprint(settings)}`;
    const found = pools.get(key);
    if (found) return found;
    // Settings changed (a rotated secret): retire the connection's older pools.
    for (const other of [...pools.values()]) {
      if (other.uuid !== run.conn.uuid) continue;
      other.retired = true;
      if (other.active === 0) endPool(other);
    }
    const options: PoolOptions = {
      ...connectionOptions(settings),
      connectionLimit: MYSQL_POOL_SIZE,
      maxIdle: MYSQL_POOL_SIZE,
      waitForConnections: true,
      queueLimit: 0,
    };
    const pool = mysql.createPool(options);
    pool.on('connection', (c: PoolConnection) => {
      // A connection that breaks while idle leaves the pool (mysql2 does that); never an unhandled 'error'.
      c.on('error', () => undefined);
      c.query("SET time_zone = '+00:00'", () => undefined);
    });
    const entry: PoolEntry = { key, uuid: run.conn.uuid, pool, active: 0, retired: false };
    pools.set(key, entry);
    return entry;
  };

  /**
   * Take a connection and ping it. One the server or the network dropped is destroyed and the next
   * taken (the pool opens a new one once no idle ones are left), without using up a retry.
   */
  const checkout = async (pool: Pool): Promise<PoolConnection> => {
    for (let i = 0; ; i++) {
      const c = await new Promise<PoolConnection>((resolve, reject) => pool.getConnection((err, x) => (err ? reject(err) : resolve(x))));
      const pingErr = await new Promise<DriverError | null>((resolve) => c.ping((e) => resolve(e)));
      if (!pingErr) return c;
      c.destroy();
      if (i >= MYSQL_POOL_SIZE) {
        throw Object.assign(new Error('the connection broke right after it was opened'), { code: pingErr.code ?? 'PROTOCOL_CONNECTION_LOST' });
      }
    }
  };

  /** A connection of the pool, retrying failures that retrying can fix. Throws CONNECT_FAILED or the abort reason. */
  const acquire = async (entry: PoolEntry, run: ConnectorRun): Promise<PoolConnection> => {
    let attempts = 0;
    try {
      return await pRetry(
        async () => {
          attempts++;
          try {
            return await raceAbort(checkout(entry.pool), run.signal, (late) => late.release());
          } catch (err) {
            if (run.signal.aborted) throw err;
            const e = err as DriverError;
            if (!isRetryableConnectError(e)) throw new AbortError(connectError(run, e, attempts));
            throw new RetryableAttempt(e);
          }
        },
        {
          ...backoffOptions(run.retry, run.signal),
          onFailedAttempt: ({ error, attemptNumber, retriesLeft, retryDelay }) => {
            if (retriesLeft > 0 && error instanceof RetryableAttempt) {
              run.log.warn(
                { attempt: attemptNumber, code: describeCode(error.driver), delayMs: retryDelay },
                'MySQL connection failed; retrying',
              );
            }
          },
        },
      );
    } catch (err) {
      if (run.signal.aborted) throw run.signal.reason;
      if (err instanceof AgentError) throw err;
      throw connectError(run, err instanceof RetryableAttempt ? err.driver : (err as DriverError), attempts);
    }
  };

  /** Stop the running statement on the server, then drop the connection. Never rejects. */
  const killAndDestroy = async (mysql: Mysql2, settings: MysqlSettings, c: PoolConnection, log: Logger, mask: Mask): Promise<void> => {
    const threadId = c.threadId;
    try {
      if (!Number.isSafeInteger(threadId) || threadId <= 0) return;
      const killer: MysqlConnection = mysql.createConnection({ ...connectionOptions(settings), connectTimeout: KILL_TIMEOUT_MS });
      killer.on('error', () => undefined);
      let timer: NodeJS.Timeout | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error('KILL QUERY timed out'), { code: 'KILL_TIMEOUT' })), KILL_TIMEOUT_MS);
          // The thread id is an integer the server gave; nothing else goes into this text.
          killer.query(`KILL QUERY ${threadId}`, (err) => (err ? reject(err) : resolve()));
        });
        log.info({ threadId }, 'cancelled the running MySQL statement on the server (KILL QUERY)');
      } catch (err) {
        const e = err as DriverError;
        if (e.errno !== ER_NO_SUCH_THREAD) {
          log.warn({ threadId, code: describeCode(e), reason: e.sqlMessage ? mask(e.sqlMessage) : undefined }, 'KILL QUERY failed; the statement may run on until the server notices the closed connection');
        }
      } finally {
        clearTimeout(timer);
        killer.destroy();
      }
    } finally {
      c.destroy();
    }
  };

  /** Run one statement on `c`, streaming its rows to the statement's consumer. Returns the records handed over. */
  const runStatement = async (c: PoolConnection, p: Prepared, state: RunState): Promise<number> => {
    const { st } = p;
    // Rows and the OK packets of statements without a result set come through one stream; tell
    // them apart (and note each result set's first column) as mysql2 emits them, in order.
    const okPackets = new WeakSet<object>();
    const firstColumnOf = st.identifier !== undefined ? new WeakMap<object, string>() : undefined;
    let okNext = false;
    let firstColumn: string | undefined;
    let ended = false;
    let fatal = false;
    if (state.broken) throw state.broken;
    const cmd = c.execute(p.bound.text, p.values);
    cmd.on('end', () => (ended = true));
    cmd.on('error', (err: DriverError) => {
      if (err.fatal) fatal = true;
    });
    cmd.on('fields', (fields?: FieldPacket[]) => {
      okNext = fields === undefined;
      firstColumn = fields?.[0]?.name;
    });
    cmd.on('result', (row: object) => {
      if (okNext) okPackets.add(row);
      else if (firstColumnOf && firstColumn !== undefined) firstColumnOf.set(row, firstColumn);
    });
    const stream = cmd.stream({ highWaterMark: STREAM_HIGH_WATER_MARK });
    state.stream = stream;
    // A connection that is already closed fails the command on the connection, not on the command.
    if (state.broken) stream.destroy(state.broken);
    let records = 0;
    try {
      for await (const row of stream as AsyncIterable<Record<string, unknown>>) {
        if (okPackets.has(row) || !st.consume) continue;
        const record = st.identifier !== undefined ? identifierRecord(row, st.identifier, firstColumnOf?.get(row)) : rowRecord(row);
        try {
          const pending = st.consume(record);
          if (pending && typeof (pending as Promise<void>).then === 'function') {
            await new Promise<void>((resolve, reject) => {
              state.interrupt = reject;
              (pending as Promise<void>).then(resolve, reject);
            });
            state.interrupt = undefined;
          }
        } catch (err) {
          throw new ConsumerFailure(err);
        }
        records++;
      }
    } finally {
      state.stream = undefined;
      if (!stream.destroyed) stream.destroy();
      if (!ended && !fatal) state.dirty = true;
    }
    return records;
  };

  const simpleQuery = (c: PoolConnection, sql: string, aborted: Promise<never>): Promise<void> =>
    Promise.race([new Promise<void>((resolve, reject) => c.query(sql, (err) => (err ? reject(err) : resolve()))), aborted]);

  const run = async (r: ConnectorRun): Promise<void> => {
    r.signal.throwIfAborted();
    const statements = statementsOf(r);
    if (statements.length === 0) return;
    // Bind everything before connecting: a bad template or a missing identifier fails without a round trip.
    const prepared: Prepared[] = statements.map((st) => {
      const bound = bindPyformat(st.text, 'question');
      return { st, bound, values: parameterValues(bound, r.identifiers) };
    });
    const settings = mysqlSettings(r.secret, r.conn);
    const mysql = await loadMysql();
    r.signal.throwIfAborted();
    const entry = poolFor(mysql, r, settings);
    entry.active++;
    const state: RunState = {};
    let c: PoolConnection | undefined;
    let abortedReject: (reason: unknown) => void = () => undefined;
    const aborted = new Promise<never>((_, reject) => (abortedReject = reject));
    aborted.catch(() => undefined);
    const onAbort = () => {
      abortedReject(r.signal.reason);
      state.interrupt?.(r.signal.reason);
      state.stream?.destroy(r.signal.reason instanceof Error ? r.signal.reason : undefined);
      if (c && !state.killing) {
        const killing = killAndDestroy(mysql, settings, c, r.log, r.mask);
        state.killing = killing;
        kills.add(killing);
        void killing.finally(() => kills.delete(killing));
      }
    };
    const onConnectionError = (err: Error) => {
      state.broken = err;
      state.stream?.destroy(err);
    };
    const transactional = r.type === 'delete' || r.type === 'optout';
    let inTransaction = false;
    let current: string | undefined;
    try {
      c = await acquire(entry, r);
      c.on('error', onConnectionError);
      r.signal.addEventListener('abort', onAbort, { once: true });
      if (r.signal.aborted) onAbort();
      const runStarted = performance.now();
      if (transactional) {
        current = `${r.type} transaction`;
        await simpleQuery(c, 'START TRANSACTION', aborted);
        inTransaction = true;
      }
      for (const p of prepared) {
        current = p.st.label;
        const started = performance.now();
        if (r.log.isLevelEnabled('debug')) {
          r.log.debug(
            { query: p.st.label, statement: p.bound.text, identifiers: Object.fromEntries(p.bound.names.map((n, i) => [n, p.values[i]])) },
            'running statement',
          );
        }
        const records = await runStatement(c, p, state);
        r.settled?.({ label: p.st.label, durationMs: performance.now() - started });
        r.log.info(
          { query: p.st.label, ms: Math.round(performance.now() - started), ...(p.st.consume ? { records } : {}) },
          'statement done',
        );
      }
      if (inTransaction) {
        current = `${r.type} transaction (COMMIT)`;
        await simpleQuery(c, 'COMMIT', aborted);
        inTransaction = false;
        r.log.info({ statements: prepared.length, ms: Math.round(performance.now() - runStarted) }, 'transaction committed');
      }
      r.signal.removeEventListener('abort', onAbort);
      if (state.killing) {
        await state.killing;
        throw r.signal.reason;
      }
    } catch (err) {
      r.signal.removeEventListener('abort', onAbort);
      if (r.signal.aborted) {
        if (c && !state.killing) onAbort();
        await state.killing;
        throw r.signal.reason;
      }
      if (err instanceof ConsumerFailure) throw err.error;
      if (err instanceof AgentError) throw err;
      const e = err as DriverError;
      r.log.debug({ query: current, code: describeCode(e), message: e.sqlMessage ? maskServerText(e.sqlMessage, r) : undefined }, 'statement failed');
      if (inTransaction && c && !e.fatal) {
        try {
          await simpleQuery(c, 'ROLLBACK', aborted);
          r.log.info({ statements: prepared.length }, 'transaction rolled back');
        } catch {
          c.destroy(); // the server rolls back when the connection closes
        }
      } else if (inTransaction && c) {
        c.destroy();
      }
      throw statementError(current ?? 'statement', e, r);
    } finally {
      c?.removeListener('error', onConnectionError);
      if (c && !state.killing) {
        if (state.dirty) {
          // A consumer failed mid-statement: stop the statement rather than read its remaining rows.
          await killAndDestroy(mysql, settings, c, r.log, r.mask);
        } else {
          // A fatal error already took the connection out of the pool; release() is then a no-op.
          c.release();
        }
      }
      entry.active--;
      if (entry.retired && entry.active === 0 && pools.get(entry.key) === entry) endPool(entry);
    }
  };

  /** Each statement as mysql2 receives it, parameter values masked; a statement that cannot run carries its error. Sends nothing. */
  const plan = (r: Pick<ConnectorRun, 'conn' | 'type' | 'identifiers' | 'secret' | 'statements'>): PlannedStatement[] =>
    statementsOf(r).map((st): PlannedStatement => {
      try {
        const bound = bindPyformat(st.text, 'question');
        parameterValues(bound, r.identifiers);
        return {
          query: st.label,
          statement: bound.text,
          ...(bound.names.length > 0 ? { parameters: Object.fromEntries(bound.names.map((n) => [n, '****'])) } : {}),
        };
      } catch (err) {
        return { query: st.label, error: asAgentError(err).toJSON() };
      }
    });

  const close = async (): Promise<void> => {
    await Promise.allSettled([...kills]);
    for (const entry of [...pools.values()]) endPool(entry);
    await Promise.allSettled([...endings]);
  };

  return { run, plan, close };
}
