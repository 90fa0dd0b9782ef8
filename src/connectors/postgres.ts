/**
 * The Postgres connector (connector_type "Postgres"), and Redshift's (it speaks the same protocol).
 *
 * Statements are SQL with PEP 249 pyformat placeholders (`%(email)s`), as DataGrail writes them;
 * each placeholder is sent as a bound parameter (`$1`, `$2`, …), never spliced into the text.
 *
 * - access: every row becomes one record (JSON/JSONB nest, timestamps ISO 8601, bytea base64, int8
 *   and numeric their decimal text, NULL null). Rows are streamed through a server-side portal
 *   (pg-cursor), {@link BATCH_ROWS} at a time, so a result of millions of rows runs in bounded memory.
 * - identifiers: each row gives `{<identifier>: value}`, the value of the column named like the
 *   identifier, else of the first column.
 * - test: each statement must run without error; no statements means `SELECT 1`.
 * - delete, optout: all statements in one transaction (BEGIN … COMMIT), rolled back together when one fails.
 *
 * The secret ({@link parseSecret}): `user`, `password`, `host`, `port` (default 5432; Redshift 5439),
 * `dbname` (Redshift: `database`), and optionally
 * - `sslmode`: `disable` (no TLS); `require` (TLS without verifying the certificate; with `ssl_ca`
 *   the chain is verified against it, not the host name); `verify-full` (TLS, the chain verified
 *   against `ssl_ca` or the system CAs, and the certificate must name `host`). Default: Postgres as
 *   pg does (no TLS unless PGSSLMODE is set; `verify-full` when `ssl_ca` is given); Redshift `require`.
 * - `ssl_ca`: PEM text of the CA certificate(s) the server's certificate must chain to.
 *
 * Pools: one pg.Pool (at most {@link POOL_MAX} connections) per connection uuid and settings, opened
 * on first use and closed by `close()`; a rotated secret gets a new pool and retires the old one.
 * Make one connector per flavour per process. `pg` is loaded on first use only.
 *
 * Deadline: when `run.signal` aborts, the running statement is cancelled on the server with the
 * protocol's cancel request (what psql's Ctrl-C sends: a new connection to the session's server
 * address carrying the session's process id and key; no login, works through pgbouncer), repeated
 * until the statement ends (at most 5 s); then its connection is closed (an open transaction rolls
 * back) and the signal's reason is thrown.
 *
 * Errors: a statement's failure is DATABASE_ERROR with its SQLSTATE, condition name and the server's
 * message and DETAIL masked by `run.mask`; a connection failure is CONNECT_FAILED, retried per
 * `run.retry` only when retrying can help (unreachable, starting up, too many connections).
 *
 * Each statement is one SQL statement (the extended protocol refuses `SELECT 1; SELECT 2`); a
 * literal `%` is written `%%`. A procedure that COMMITs itself cannot run as a delete/optout
 * statement, since those run inside the connector's transaction.
 */
import type { Pool, PoolClient, PoolConfig, FieldDef, CustomTypesConfig } from 'pg';
import type CursorClass from 'pg-cursor';
import pRetry, { AbortError } from 'p-retry';
import { performance } from 'node:perf_hooks';
import { AgentError, ErrorCodes, asAgentError } from '../errors.js';
import { backoffOptions } from '../engine/send.js';
import type { Logger } from '../logger.js';
import type { RecordConsumer } from '../engine/read.js';
import { bindPyformat, parameterValues } from './pyformat.js';
import { columnValue, rowRecord } from './sql-values.js';
import type { Connector, ConnectorRun, PlannedStatement, RunStatement } from './types.js';
import {
  classifyConnectError,
  connectErrorMessage,
  isSqlstate,
  parseSecret,
  sendCancelRequest,
  settingsFingerprint,
  sslOption,
  statementError,
  type CancelTarget,
  type ConnectFailure,
  type PgFlavor,
  type PgSettings,
} from './pg-support.js';

export { parseSecret, sslOption, type PgFlavor, type PgSettings } from './pg-support.js';

/** Rows fetched from the server per round trip. */
export const BATCH_ROWS = 1000;
/** Connections per pool (per connection uuid and settings). */
export const POOL_MAX = 4;
/** How long a connection attempt may take before it counts as a (retryable) timeout. */
const CONNECT_TIMEOUT_MS = 15_000;
/** Idle pooled connections are closed after this long. */
const IDLE_MS = 30_000;
/** After a cancel request, how long the statement may take to end before its connection is closed anyway. */
const CANCEL_WAIT_MS = 5_000;
/** How often the cancel request is repeated while the statement runs on. */
const CANCEL_REPEAT_MS = 250;

/** Options of {@link makePostgresConnector}. */
export interface PostgresConnectorOptions {
  /** Redshift: the secret names the database `database`, the port defaults to 5439, TLS to `require`. Default Postgres. */
  readonly flavor?: PgFlavor;
}

interface Driver {
  readonly Pool: typeof Pool;
  readonly Cursor: typeof CursorClass;
  readonly types: CustomTypesConfig;
}

let driver: Promise<Driver> | undefined;

/** Load pg and pg-cursor on first use, so an agent without database connections never does. */
function loadDriver(): Promise<Driver> {
  driver ??= (async () => {
    const pg = (await import('pg')).default;
    const Cursor = (await import('pg-cursor')).default;
    return { Pool: pg.Pool, Cursor, types: typeParsers(pg.types) };
  })().catch((err: unknown) => {
    driver = undefined;
    throw new AgentError(ErrorCodes.INTERNAL, 'the pg driver could not be loaded; reinstall dsr-agent', { cause: err });
  });
  return driver;
}

const DATE = 1082;
const TIMESTAMP = 1114;
const DATE_ARRAY = 1182;
const TIMESTAMP_ARRAY = 1115;
const TEXT_ARRAY = 1009;

/**
 * pg's parsers, except that `date` stays `2024-01-31` and `timestamp` (without time zone) becomes
 * `2024-01-31T12:00:00.123456`: pg would read both as the agent's local time and shift them when
 * written as UTC. `timestamptz` is a Date (written as UTC ISO 8601). Scoped to this connector's queries.
 */
function typeParsers(types: CustomTypesConfig): CustomTypesConfig {
  const base = types.getTypeParser as unknown as (oid: number, format?: 'text' | 'binary') => (s: string) => unknown;
  const naive = (s: string): string => (/^\d{4,}-\d\d-\d\d \d/.test(s) ? s.replace(' ', 'T') : s);
  const arrayOf = (f: (s: string) => string) => {
    const parseTextArray = base(TEXT_ARRAY, 'text');
    const map = (v: unknown): unknown => (Array.isArray(v) ? v.map(map) : typeof v === 'string' ? f(v) : v);
    return (s: string) => map(parseTextArray(s));
  };
  const same = (s: string): string => s;
  const overrides: Record<number, (s: string) => unknown> = {
    [DATE]: same,
    [TIMESTAMP]: naive,
    [DATE_ARRAY]: arrayOf(same),
    [TIMESTAMP_ARRAY]: arrayOf(naive),
  };
  const getTypeParser = ((oid: number, format?: 'text' | 'binary') =>
    (format ?? 'text') === 'text' && overrides[oid] ? overrides[oid] : base(oid, format)) as unknown as CustomTypesConfig['getTypeParser'];
  return { getTypeParser };
}

/** A statement ready for the driver. */
interface Prepared {
  readonly label: string;
  readonly text: string;
  readonly names: readonly string[];
  readonly values: readonly string[];
  readonly identifier?: string;
  readonly consume?: RecordConsumer;
}

/** The statements of a run; a test without statements runs `SELECT 1`. */
function statementsOf(run: Pick<ConnectorRun, 'type' | 'statements'>): readonly Pick<RunStatement, 'label' | 'text' | 'identifier' | 'consume'>[] {
  return run.statements.length === 0 && run.type === 'test' ? [{ label: 'test[0]', text: 'SELECT 1' }] : run.statements;
}

/** Bind every statement (and check its placeholders have values) before anything is sent. */
function prepare(run: Pick<ConnectorRun, 'type' | 'identifiers' | 'statements'>): Prepared[] {
  return statementsOf(run).map((st) => {
    const bound = bindPyformat(st.text, 'dollar');
    const values = parameterValues(bound, run.identifiers);
    return { label: st.label, text: bound.text, names: bound.names, values, identifier: st.identifier, consume: st.consume };
  });
}

interface PoolEntry {
  readonly key: string;
  readonly uuid: string;
  readonly pool: Pool;
  readonly settings: PgSettings;
  /** The latest run's logger (for errors of idle connections). */
  log: Logger;
  name: string;
}

/** Thrown through the statement loop when a record consumer failed: its error goes out unchanged. */
class ConsumerFailure {
  constructor(readonly error: unknown) {}
}

/** A connection failure worth another attempt. */
class RetryableConnect extends Error {
  constructor(
    readonly failure: ConnectFailure,
    override readonly cause: unknown,
  ) {
    super(failure.code);
  }
}

/** Marks an operation abandoned because the run's signal aborted. */
const ABORTED = Symbol('aborted');

/** Make a Postgres (or Redshift) connector. */
export function makePostgresConnector(options: PostgresConnectorOptions = {}): Connector {
  const flavor: PgFlavor = options.flavor ?? 'Postgres';
  const pools = new Map<string, PoolEntry>();

  const poolFor = async (run: ConnectorRun, settings: PgSettings): Promise<PoolEntry> => {
    const drv = await loadDriver();
    const key = `${run.conn.uuid}\u0000${settingsFingerprint(settings)}`;
    const existing = pools.get(key);
    if (existing) {
      existing.log = run.log;
      existing.name = run.conn.name;
      return existing;
    }
    // The connection's secret changed (a rotated password): its old pool ends once its clients are back.
    for (const [k, old] of pools) {
      if (old.uuid === run.conn.uuid) {
        pools.delete(k);
        old.pool.end().catch(() => undefined);
      }
    }
    const config: PoolConfig = {
      host: settings.host,
      port: settings.port,
      user: settings.user,
      password: settings.password,
      database: settings.database,
      max: POOL_MAX,
      idleTimeoutMillis: IDLE_MS,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      allowExitOnIdle: true,
      keepAlive: true,
      ...(flavor === 'Postgres' ? { application_name: 'dsr-agent' } : {}),
    };
    const ssl = sslOption(settings);
    if (ssl !== undefined) config.ssl = ssl;
    const pool = new drv.Pool(config);
    const entry: PoolEntry = { key, uuid: run.conn.uuid, pool, settings, log: run.log, name: run.conn.name };
    // An idle connection that fails (server restart, network) is dropped by the pool; say so, never crash.
    pool.on('error', (err: Error & { code?: string }) => {
      entry.log.warn({ connection: entry.name, code: err.code ?? err.name }, 'an idle database connection failed and was discarded');
    });
    pools.set(key, entry);
    return entry;
  };

  return {
    async run(run: ConnectorRun): Promise<void> {
      const settings = parseSecret(run.secret, flavor);
      const prepared = prepare(run);
      if (prepared.length === 0) return;
      if (run.signal.aborted) throw run.signal.reason;
      const [drv, entry] = await Promise.all([loadDriver(), poolFor(run, settings)]);
      const client = await connect(run, entry);
      await runStatements(run, client, prepared, drv, settings);
    },

    /** Each statement as pg receives it, parameter values masked; a statement that cannot run carries its error. Sends nothing. */
    plan(run): PlannedStatement[] {
      parseSecret(run.secret, flavor);
      return statementsOf(run).map((st): PlannedStatement => {
        try {
          const bound = bindPyformat(st.text, 'dollar');
          parameterValues(bound, run.identifiers);
          return {
            query: st.label,
            statement: bound.text,
            ...(bound.names.length ? { parameters: Object.fromEntries(bound.names.map((n) => [n, '****'])) } : {}),
          };
        } catch (err) {
          return { query: st.label, error: asAgentError(err).toJSON() };
        }
      });
    },

    async close(): Promise<void> {
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((e) => e.pool.end().catch(() => undefined)));
    },
  };
}

/** `p`, unless the signal aborts first (then rejects with ABORTED; a late client is given back). */
function raceConnect(p: Promise<PoolClient>, signal: AbortSignal): Promise<PoolClient> {
  return new Promise((resolve, reject) => {
    let done = false;
    const onAbort = () => {
      done = true;
      reject(ABORTED);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (client) => {
        signal.removeEventListener('abort', onAbort);
        if (done) client.release();
        else resolve(client);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (!done) reject(err);
      },
    );
  });
}

/**
 * A client from the pool. Unreachable, starting-up and full servers are retried with backoff per
 * `run.retry`; refused logins, TLS failures and other server refusals are not. Throws CONNECT_FAILED,
 * or the signal's reason.
 */
async function connect(run: ConnectorRun, entry: PoolEntry): Promise<PoolClient> {
  const { signal, retry } = run;
  let attempts = 0;
  try {
    return await pRetry(
      async () => {
        attempts++;
        try {
          return await raceConnect(entry.pool.connect(), signal);
        } catch (err) {
          if (err === ABORTED || signal.aborted) throw signal.reason ?? err;
          const failure = classifyConnectError(err);
          if (!failure.retry) {
            throw new AbortError(
              new AgentError(ErrorCodes.CONNECT_FAILED, connectErrorMessage(run.conn.name, failure, err, attempts, run.mask), { cause: err }),
            );
          }
          throw new RetryableConnect(failure, err);
        }
      },
      {
        ...backoffOptions(retry, signal),
        onFailedAttempt: ({ error, attemptNumber, retriesLeft, retryDelay }) => {
          if (retriesLeft > 0 && error instanceof RetryableConnect) {
            run.log.warn(
              { connection: run.conn.name, attempt: attemptNumber, reason: error.failure.code, delayMs: Math.round(retryDelay) },
              'retrying database connection',
            );
          }
        },
      },
    );
  } catch (err) {
    if (signal.aborted) throw signal.reason ?? err;
    if (err instanceof RetryableConnect) {
      throw new AgentError(ErrorCodes.CONNECT_FAILED, connectErrorMessage(run.conn.name, err.failure, err.cause, attempts, run.mask), {
        cause: err.cause,
      });
    }
    throw err;
  }
}

/** pg's client fields this module reads that @types/pg does not declare. */
interface ClientInternals {
  readonly processID?: number | null;
  readonly secretKey?: number | null;
  readonly connection?: { readonly stream?: { readonly remoteAddress?: string; readonly remotePort?: number } };
}

/** One batch of a cursor, with the result's columns. */
function readBatch(cursor: CursorClass, rows: number): Promise<{ rows: unknown[]; fields: FieldDef[] }> {
  return new Promise((resolve, reject) => {
    cursor.read(rows, (err, batch, result) => {
      if (err) reject(err);
      else resolve({ rows: batch ?? [], fields: result?.fields ?? [] });
    });
  });
}

/** The column an identifiers statement's value is read from: the one named like the identifier, else the first. */
function identifierColumn(fields: readonly FieldDef[], identifier: string): number {
  let i = fields.findIndex((f) => f.name === identifier);
  if (i < 0) i = fields.findIndex((f) => f.name.toLowerCase() === identifier.toLowerCase());
  return i < 0 ? 0 : i;
}

/** Run the prepared statements on `client` and give it back (or destroy it). */
async function runStatements(run: ConnectorRun, client: PoolClient, prepared: readonly Prepared[], drv: Driver, settings: PgSettings): Promise<void> {
  const { signal, log } = run;
  const transaction = run.type === 'delete' || run.type === 'optout';
  let inflight: Promise<unknown> | undefined;
  let inflightSettled = true;
  let broken: unknown;
  let released = false;
  const release = (destroy: boolean): void => {
    if (released) return;
    released = true;
    client.release(destroy ? true : undefined);
  };
  // A checked-out client has no listener of the pool's: a dropped socket must not crash the process.
  const onClientError = (err: unknown): void => {
    broken = err;
  };
  client.on('error', onClientError);

  /** Await a database operation, unless the signal aborts first (the operation stays `inflight`). */
  const guarded = <T>(p: Promise<T>): Promise<T> => {
    inflightSettled = false;
    const tracked = p.finally(() => {
      inflightSettled = true;
    });
    tracked.catch(() => undefined);
    inflight = tracked;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(ABORTED);
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      tracked.then(
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
  };

  const execute = async (st: Prepared): Promise<number> => {
    const identifier = run.type === 'identifiers' ? st.identifier : undefined;
    const cursor = client.query(
      new drv.Cursor(st.text, [...st.values], { types: drv.types, ...(identifier !== undefined ? { rowMode: 'array' as const } : {}) }),
    );
    let count = 0;
    let column = -1;
    for (;;) {
      if (signal.aborted) throw ABORTED;
      const batch = await guarded(readBatch(cursor, BATCH_ROWS));
      if (batch.rows.length === 0) break;
      count += batch.rows.length;
      if (!st.consume) continue;
      if (identifier !== undefined && column < 0) column = identifierColumn(batch.fields, identifier);
      for (const row of batch.rows) {
        const record =
          identifier !== undefined
            ? { [identifier]: columnValue((row as unknown[])[column]) }
            : rowRecord(row as Record<string, unknown>);
        try {
          await st.consume(record);
        } catch (err) {
          throw new ConsumerFailure(err);
        }
      }
      batch.rows.length = 0;
    }
    return count;
  };

  let inTransaction = false;
  /** The last failure was the server's answer (SQLSTATE): the session is still usable. */
  let serverAnswered = false;
  const failed = (label: string, err: unknown): AgentError => {
    const code = (err as { code?: unknown } | undefined)?.code;
    // 08xxx and 57P0x (admin_shutdown, crash_shutdown, …) end the session; other SQLSTATEs leave it usable.
    serverAnswered = isSqlstate(code) && !code.startsWith('08') && !code.startsWith('57P');
    return statementError(label, err, run.mask);
  };
  try {
    if (transaction) {
      try {
        await guarded(client.query('BEGIN'));
      } catch (err) {
        if (err === ABORTED) throw err;
        throw failed(`${run.type} (BEGIN)`, err);
      }
      inTransaction = true;
    }
    for (const st of prepared) {
      if (signal.aborted) throw ABORTED;
      const t0 = performance.now();
      let rows: number;
      try {
        rows = await execute(st);
      } catch (err) {
        if (err === ABORTED || err instanceof ConsumerFailure || signal.aborted) throw err;
        throw failed(st.label, err);
      }
      const ms = Math.round(performance.now() - t0);
      run.settled?.({ label: st.label, durationMs: performance.now() - t0 });
      log.info({ query: st.label, ms }, 'statement succeeded');
      log.debug({ query: st.label, statement: st.text, rows }, 'statement details');
    }
    if (transaction) {
      const t0 = performance.now();
      try {
        await guarded(client.query('COMMIT'));
      } catch (err) {
        if (err === ABORTED || signal.aborted) throw err;
        throw failed(`${run.type} (COMMIT)`, err);
      }
      inTransaction = false;
      log.info({ query: `${run.type} (COMMIT)`, ms: Math.round(performance.now() - t0) }, 'statement succeeded');
    }
    release(broken !== undefined);
  } catch (err) {
    if (signal.aborted) {
      if (!inflightSettled && inflight) await cancelOnServer(run, client, settings, inflight);
      release(true); // closing the session also rolls back an open transaction
      throw signal.reason ?? err;
    }
    if (err instanceof ConsumerFailure) {
      release(true);
      throw err.error;
    }
    const usable = serverAnswered && broken === undefined;
    if (inTransaction && usable) {
      try {
        await guarded(client.query('ROLLBACK'));
        release(false);
      } catch {
        release(true); // closing the session rolls the transaction back too
        if (signal.aborted) throw signal.reason ?? err;
      }
    } else {
      release(!usable);
    }
    throw err;
  } finally {
    client.removeListener('error', onClientError);
  }
}

/** True once `p` settled, false after `ms` (the timer is cleared either way). */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Cancel the statement running on `client`'s session: send the cancel request to the address the
 * session is connected to, and wait for the statement to end. A cancel request that arrives while
 * the session is between two protocol messages (e.g. after Parse, before Execute) has no effect, so
 * it is sent again every {@link CANCEL_REPEAT_MS} until the statement ends, for at most
 * {@link CANCEL_WAIT_MS}.
 */
async function cancelOnServer(run: ConnectorRun, client: PoolClient, settings: PgSettings, inflight: Promise<unknown>): Promise<void> {
  const c = client as unknown as ClientInternals;
  const pid = c.processID;
  const key = c.secretKey;
  const where = { connection: run.conn.name };
  if (typeof pid !== 'number' || typeof key !== 'number') {
    run.log.warn(where, 'the server gave no cancel key; closing the connection of the running statement');
    return;
  }
  const stream = c.connection?.stream;
  const target: CancelTarget = settings.host.startsWith('/')
    ? { path: `${settings.host}/.s.PGSQL.${settings.port}` }
    : { host: stream?.remoteAddress ?? settings.host, port: stream?.remotePort ?? settings.port };
  const deadline = performance.now() + CANCEL_WAIT_MS;
  for (let sent = 0; ; ) {
    try {
      await sendCancelRequest(target, pid, key, CANCEL_WAIT_MS);
      sent++;
    } catch (err) {
      if (sent === 0) {
        run.log.warn({ ...where, code: (err as { code?: string }).code }, 'the cancel request could not be sent; closing the connection of the running statement');
        return;
      }
    }
    const left = deadline - performance.now();
    if (await settledWithin(inflight, Math.max(0, Math.min(CANCEL_REPEAT_MS, left)))) {
      run.log.info({ ...where, cancelRequests: sent }, 'running statement cancelled on the server');
      return;
    }
    if (performance.now() >= deadline) {
      run.log.warn(where, `the statement did not end within ${CANCEL_WAIT_MS / 1000} s of the cancel request; closing its connection`);
      return;
    }
  }
}
