// Case 6, sql: a 2,000,000-row access query through the Postgres connector, against the driver's own
// raw read of the same rows. Goal: the agent's peak RSS within the memory goal (≤ 256 MiB); its
// rows/s is reported against pg + pg-cursor reading the same rows.
//
// Setup (here): a database with a random name on the local PostgreSQL (127.0.0.1:5432, user postgres,
// trust auth, admin database `test`), and a table `orders` (id, email, name, created_at timestamptz,
// amount numeric, tags jsonb, note text of 100 characters) of 2,000,000 rows for one email, made with
// INSERT … SELECT generate_series, then VACUUM (FREEZE, ANALYZE) so no reader pays for hint bits. The
// database is dropped at the end, also when a run fails or the bench is interrupted.
//
// Then three child processes one after the other (bench/sql-agent.mjs), each a fresh node with the
// Dockerfile's ENTRYPOINT flags: agent (one access job, one report per row, counting sink), raw
// (pg + pg-cursor, batches of 1000, count only) and stringify (raw + JSON.stringify of each row).
//   ratio = agent rows/s / raw rows/s;  baseline_ratio = agent rows/s / stringify rows/s.
// Fails when the agent wrote a number of reports other than the rows, or a raw read saw other rows.
// PostgreSQL not answering: prints `skipped` with the reason and null figures (exit 0).
//   --quick: 200,000 rows; --rows N: another size; --rounds R: R rounds, the order rotating (best of
//   each mode counts; default 1); --host H --port P (or DSR_BENCH_PG=H:P): another server; --keep: do not drop the
//   database (its name goes to stderr); --agent-node-flags="...": other node flags for the children;
//   --cpu-prof DIR: a V8 CPU profile of every child, DIR/<mode>-<round>.cpuprofile
//   (summarise with `node bench/profile-summary.mjs FILE`).
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { BENCH, MiB, agentNodeFlags, emit, parseArgs, round, runChildJson } from './lib.mjs';

const args = parseArgs();
const flags = agentNodeFlags(args);
const rows = Number(args.rows ?? (args.quick ? 200_000 : 2_000_000));
const rounds = Number(args.rounds ?? 1);
// DSR_BENCH_PG=host:port names another server for the whole bench (run.mjs passes no arguments through).
const [envHost, envPort] = (process.env.DSR_BENCH_PG ?? '').split(':');
const host = String(args.host ?? (envHost || '127.0.0.1'));
const port = Number(args.port ?? (envPort || 5432));
const USER = 'postgres';
const EMAIL = 'peter@initech.example';
const profDir = typeof args['cpu-prof'] === 'string' ? resolve(args['cpu-prof']) : undefined;
if (profDir) mkdirSync(profDir, { recursive: true });
const MODES = ['agent', 'raw', 'stringify'];

const KEYS = ['agent_rows_per_s', 'raw_rows_per_s', 'ratio', 'baseline_rows_per_s', 'baseline_ratio', 'agent_peak_rss_mib', 'raw_peak_rss_mib', 'rows'];
const clientFor = (database) => new pg.Client({ host, port, user: USER, password: '', database, connectionTimeoutMillis: 5000, application_name: 'dsr-bench-setup' });

// Is PostgreSQL there? Any failure to open the admin database skips the case, with the reason.
const admin = clientFor('test');
try {
  await admin.connect();
} catch (err) {
  emit({ skipped: `PostgreSQL at ${host}:${port} (user ${USER}, database test) is not answering: ${err.code ?? err.message}`, ...Object.fromEntries(KEYS.map((k) => [k, null])) });
  process.exit(0);
}

let adminClosed;
const closeAdmin = () => (adminClosed ??= admin.end().catch(() => undefined));

const db = `dsr_bench_${randomBytes(6).toString('hex')}`;
let dropping;
const drop = () =>
  (dropping ??= (async () => {
    if (args.keep) {
      process.stderr.write(` [kept database ${db}]`);
      return;
    }
    const c = clientFor('test');
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    } finally {
      await c.end();
    }
  })());
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    drop().finally(() => process.exit(130));
  });
}

const runs = Object.fromEntries(MODES.map((m) => [m, []]));
const setup = {};
try {
  await admin.query(`CREATE DATABASE ${db}`);
  await closeAdmin();
  const c = clientFor(db);
  await c.connect();
  try {
    const t0 = performance.now();
    await c.query(`CREATE TABLE orders (
      id bigint PRIMARY KEY,
      email text NOT NULL,
      name text NOT NULL,
      created_at timestamptz NOT NULL,
      amount numeric(12, 2) NOT NULL,
      tags jsonb NOT NULL,
      note text NOT NULL)`);
    // Realistic values, varying per row; the note has commas and quotes, as free text does.
    await c.query(
      `INSERT INTO orders (id, email, name, created_at, amount, tags, note)
       SELECT i, $1, 'Peter Gibbons',
              timestamptz '2019-01-01 00:00:00+00' + i * interval '47 seconds',
              round((((i * 7919) % 100000) / 100.0)::numeric, 2) + 0.99,
              jsonb_build_object('channel', (ARRAY['web', 'store', 'phone', 'partner'])[1 + i % 4],
                                 'items', 1 + i % 9, 'gift', i % 13 = 0, 'coupon', CASE WHEN i % 5 = 0 THEN 'SPRING' || (i % 100) END),
              left(format('Order %s: deliver to 4120 Freidrich Lane, Austin, TX. "Leave at the door" %s', i, md5(i::text)), 100)
       FROM generate_series(1, $2::bigint) AS i`,
      [EMAIL, rows],
    );
    setup.insert_seconds = round((performance.now() - t0) / 1000, 1);
    await c.query('VACUUM (FREEZE, ANALYZE) orders');
    const { rows: info } = await c.query(
      "SELECT count(*)::int AS n, pg_table_size('orders') AS table_bytes, avg(length(o::text))::int AS text_bytes FROM orders o WHERE email = $1",
      [EMAIL],
    );
    if (info[0].n !== rows) throw new Error(`the table holds ${info[0].n} rows for ${EMAIL}, not ${rows}`);
    setup.table_mib = round(Number(info[0].table_bytes) / MiB, 1);
    setup.row_text_bytes = info[0].text_bytes;
    setup.setup_seconds = round((performance.now() - t0) / 1000, 1);
  } finally {
    await c.end();
  }
  process.stderr.write(` [${rows} rows, ${setup.table_mib} MiB, ${setup.setup_seconds} s]`);

  for (let r = 0; r < rounds; r++) {
    // Rotate the order, so drift in the machine's load hits every mode.
    const order = MODES.map((_, i) => MODES[(i + r) % MODES.length]);
    for (const mode of order) {
      const prof = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${mode}-${r}.cpuprofile`] : [];
      const res = await runChildJson(
        join(BENCH, 'sql-agent.mjs'),
        ['--db', db, '--mode', mode, '--host', host, '--port', String(port), '--email', EMAIL],
        { nodeArgs: [...flags, ...prof] },
      );
      process.stderr.write(` [${mode} ${res.rows_per_s} rows/s, ${res.peak_rss_mib} MiB]`);
      runs[mode].push(res);
    }
  }
} finally {
  await closeAdmin();
  await drop();
}

const problems = [];
for (const r of runs.agent) if (r.reports !== rows) problems.push(`the agent wrote ${r.reports} reports for ${rows} rows`);
for (const r of [...runs.raw, ...runs.stringify]) if (r.rows !== rows) problems.push(`the ${r.mode} read saw ${r.rows} rows, not ${rows}`);
if (problems.length) {
  console.error(`sql: ${problems.join('; ')}\n${JSON.stringify(runs)}`);
  process.exit(1);
}

const best = (mode, key, pick) => pick(...runs[mode].map((r) => r[key]));
const agent = best('agent', 'rows_per_s', Math.max);
const raw = best('raw', 'rows_per_s', Math.max);
const baseline = best('stringify', 'rows_per_s', Math.max);
const perRow = (mode, key) => {
  const values = runs[mode].map((r) => r[key]).filter((v) => typeof v === 'number');
  return values.length ? round((Math.min(...values) / rows) * 1e6, 1) : null;
};
emit({
  agent_rows_per_s: agent,
  raw_rows_per_s: raw,
  ratio: round(agent / raw, 3),
  baseline_rows_per_s: baseline,
  baseline_ratio: round(agent / baseline, 3),
  agent_peak_rss_mib: best('agent', 'peak_rss_mib', Math.max),
  raw_peak_rss_mib: best('raw', 'peak_rss_mib', Math.max),
  rows,
  baseline_peak_rss_mib: best('stringify', 'peak_rss_mib', Math.max),
  agent_seconds: best('agent', 'seconds', Math.min),
  raw_seconds: best('raw', 'seconds', Math.min),
  baseline_seconds: best('stringify', 'seconds', Math.min),
  // CPU per row (µs): the child process (user + system, GC threads included) and the server process that ran the query.
  agent_cpu_us_per_row: perRow('agent', 'cpu_s'),
  raw_cpu_us_per_row: perRow('raw', 'cpu_s'),
  baseline_cpu_us_per_row: perRow('stringify', 'cpu_s'),
  agent_server_cpu_us_per_row: perRow('agent', 'server_cpu_s'),
  raw_server_cpu_us_per_row: perRow('raw', 'server_cpu_s'),
  // The heap the job result's list of report locations holds at the end (one string per report).
  report_list_mib: best('agent', 'report_list_mib', Math.max),
  csv_chars_per_row: runs.agent[0].csv_chars_per_row,
  json_chars_per_row: runs.stringify[0].json_chars_per_row,
  ...setup,
  batch_rows: 1000,
  agent_node_flags: flags.join(' '),
  // Each run: its own figures and process.memoryUsage() / V8's spaces when its RSS was highest.
  runs: MODES.flatMap((m) => runs[m]).map(({ mode, rows_per_s, seconds, cpu_s, server_cpu_s, peak_rss_mib, report_list_mib, at_peak_mib }) => ({
    mode,
    rows_per_s,
    seconds,
    cpu_s,
    server_cpu_s,
    peak_rss_mib,
    ...(report_list_mib !== undefined ? { report_list_mib } : {}),
    at_peak_mib,
  })),
});
