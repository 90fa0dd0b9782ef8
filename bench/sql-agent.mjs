// The sql case's child process: read every row of `SELECT * FROM orders WHERE email = …` from a
// PostgreSQL database one of three ways, and print rows/s and peak RSS.
//   --mode agent      the agent: the engine built as the CLI builds it, one connection with
//                     `"connector_type": "Postgres"` and the access statement
//                     `SELECT * FROM orders WHERE email = %(email)s`, its secret in a JSONFile;
//                     one access job, reports to the counting sink (CSV produced, then dropped)
//   --mode raw        pg + pg-cursor directly: the same statement with $1, batches of 1000 rows
//                     (the connector's BATCH_ROWS), counting the rows and nothing else
//   --mode stringify  as raw, and JSON.stringify each row: the least an agent must do with a row
// Run by bench/sql.mjs, or alone against a database it made (`node bench/sql.mjs --keep` prints its name):
//   node bench/sql-agent.mjs --db NAME --mode agent [--host 127.0.0.1] [--port 5432] [--email E]
// Experiment (agent mode): --shared-location makes the counting sink return one location string for
// every report, so the job result's list holds a pointer per report instead of a string per report.
// Prints one JSON line: rows, seconds (connect + query + every row), rows_per_s, cpu_s (this
// process, user + system), server_cpu_s (the server process that ran the query, from /proc, null
// when unreadable), peak_rss_mib, at_peak_mib; agent mode also reports (written) and
// report_list_mib (the heap the job result's report locations hold once the job is done).
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
// Imported here in every mode: the connector's own import of pg on first use then finds it loaded,
// so the agent's timing does not include loading the driver, as the raw modes' does not.
import pg from 'pg';
import Cursor from 'pg-cursor';
import { MiB, benchConfig, databaseConnection, emit, makeBenchEngine, makeCountingSink, parseArgs, peakRssMiB, startMemorySampler } from './lib.mjs';

const args = parseArgs();
const db = args.db;
const mode = args.mode ?? 'agent';
const host = String(args.host ?? '127.0.0.1');
const port = Number(args.port ?? 5432);
const user = String(args.user ?? 'postgres');
const email = String(args.email ?? 'peter@initech.example');
if (typeof db !== 'string' || !['agent', 'raw', 'stringify'].includes(mode)) {
  console.error('usage: node bench/sql-agent.mjs --db NAME [--mode agent|raw|stringify] [--host 127.0.0.1] [--port 5432] [--email E]');
  process.exit(2);
}

/** Batch size of the raw read: the connector's BATCH_ROWS. */
const BATCH_ROWS = 1000;
const TEXT = 'SELECT * FROM orders WHERE email = $1';
const STATEMENT = 'SELECT * FROM orders WHERE email = %(email)s';

/** CPU seconds (user + system) a server process has used, from /proc/PID/stat; null when unreadable. */
function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return null;
  }
}

const out = { mode };
const baseline = process.memoryUsage().rss;
let sampler;
let t0;
let cpu0;
let rows = 0;
let serverCpu = null;

if (mode === 'agent') {
  const conn = databaseConnection(0, 'Postgres', [STATEMENT], 'bench-pg');
  const secrets = { 'bench-pg': { user, password: '', host, port, dbname: db } };
  const { engine, cleanup } = await makeBenchEngine(benchConfig([conn], { job_timeout_seconds: 3600 }), { secrets });
  const sink = makeCountingSink();
  if (args['shared-location']) {
    const put = sink.put;
    const location = 'discard://shared/report.csv';
    sink.put = async (uuid, n, csv) => (await put(uuid, n, csv), location);
    out.shared_location = true;
  }
  sampler = startMemorySampler();
  cpu0 = process.cpuUsage();
  t0 = performance.now();
  const result = await engine.run({ type: 'access', identifiers: { email } }, { sink });
  out.seconds = (performance.now() - t0) / 1000;
  out.cpu_s = cpuSince(cpu0);
  out.at_peak_mib = sampler.stop();
  if (result.status !== 'succeeded') throw new Error(`agent: access job ${result.status}: ${JSON.stringify(result.connections[0]?.error)}`);
  // The pool keeps the job's session open (idle): its server process is the one that ran the query.
  serverCpu = await serverCpuOfIdleAgentSession();
  rows = sink.reports;
  out.reports = sink.reports;
  out.csv_mib = Number(((sink.csvChars * 2) / MiB).toFixed(1)); // UTF-16 chars, as held by V8 (an upper bound)
  out.csv_chars_per_row = Number((sink.csvChars / Math.max(1, sink.reports)).toFixed(1));
  out.report_list_mib = reportListMiB(result);
  await cleanup();
} else {
  const client = new pg.Client({ host, port, user, password: '', database: db, application_name: 'dsr-bench-raw' });
  sampler = startMemorySampler();
  cpu0 = process.cpuUsage();
  t0 = performance.now();
  await client.connect();
  const cursor = client.query(new Cursor(TEXT, [email]));
  const read = () => new Promise((resolve, reject) => cursor.read(BATCH_ROWS, (err, batch) => (err ? reject(err) : resolve(batch))));
  let chars = 0;
  for (;;) {
    const batch = await read();
    if (batch.length === 0) break;
    rows += batch.length;
    if (mode === 'stringify') for (const row of batch) chars += JSON.stringify(row).length;
  }
  await new Promise((resolve, reject) => cursor.close((err) => (err ? reject(err) : resolve())));
  out.seconds = (performance.now() - t0) / 1000;
  out.cpu_s = cpuSince(cpu0);
  out.at_peak_mib = sampler.stop();
  serverCpu = typeof client.processID === 'number' ? processCpuSeconds(client.processID) : null;
  if (mode === 'stringify') out.json_chars_per_row = Number((chars / Math.max(1, rows)).toFixed(1));
  await client.end();
}

emit({
  ...out,
  rows,
  seconds: Number(out.seconds.toFixed(2)),
  rows_per_s: Math.round(rows / out.seconds),
  cpu_s: Number(out.cpu_s.toFixed(2)),
  server_cpu_s: serverCpu,
  baseline_rss_mib: Number((baseline / MiB).toFixed(1)),
  peak_rss_mib: peakRssMiB(),
});

function cpuSince(start) {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

/** The server CPU of the agent's pooled session (application_name dsr-agent, idle in this database). */
async function serverCpuOfIdleAgentSession() {
  const c = new pg.Client({ host, port, user, password: '', database: db, application_name: 'dsr-bench-probe' });
  try {
    await c.connect();
    const { rows: found } = await c.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dsr-agent'");
    return found.length === 1 ? processCpuSeconds(found[0].pid) : null;
  } catch {
    return null;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * What the job result's list of report locations (one string per report) holds on the heap: live
 * heap after a full GC with the list, then without it. Measured after the timing, with gc() made
 * available only now, so the run itself is the production process.
 */
function reportListMiB(result) {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc');
  const heapAfterGc = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const withList = heapAfterGc();
  result.connections[0].reports = undefined;
  return Number(((withList - heapAfterGc()) / MiB).toFixed(1));
}
