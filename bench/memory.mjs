// Case 3, memory: large access responses through the CLI as a user runs it. For objects of 1 KB
// and of 500 KB, and for a 100 MiB and a 1 GiB response, the target (its own process,
// bench/memory-target.mjs) streams one bare JSON array, and `node dist/cli.js run access … --out DIR
// --json` (no node flags, NODE_OPTIONS removed) reads it and writes one report file per object.
// Per run: peak RSS of the CLI process (VmHWM from /proc, polled every 10 ms), its wall time and
// MB/s, and JSON.parse's MB/s on the very same bytes (decode + parse, in this process, in arrays of
// at most 64 MiB so that 1 GiB fits V8's string limit). Goals: CLI MB/s ≥ 0.5 × JSON.parse's; peak
// RSS ≤ 256 MiB and flat from 100 MiB to 1 GiB. Prints one JSON line.
//   --quick: 10 MiB and 30 MiB (one file per object makes the 1 KB runs slow); --sizes 100,1024 (MiB); --objects 1000,500000 (bytes per object);
//   --out-dir DIR: where the reports go (default /dev/shm, a tmpfs, so the disk does not set the pace;
//   else the temp folder); --agent-node-flags="...": node flags for the CLI (to try a setting; the
//   `_noflags` figures are then null).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH, DIST, MiB, accessConnection, benchConfig, emit, parseArgs, round, startChild, writeConfigDir } from './lib.mjs';
import { bodyGroups, bodyShape } from './memory-body.mjs';

const args = parseArgs();
const flags = typeof args['agent-node-flags'] === 'string' ? args['agent-node-flags'].split(' ').filter(Boolean) : [];
const sizes = String(args.sizes ?? (args.quick ? '10,30' : '100,1024')).split(',').map(Number);
const objectSizes = String(args.objects ?? '1000,500000').split(',').map(Number);
const outRoot = typeof args['out-dir'] === 'string' ? args['out-dir'] : existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const EMAIL = 'peter@initech.example';

const sizeKey = (mib) => (mib % 1024 === 0 ? `${mib / 1024}gib` : `${mib}mib`);
const objectKey = (b) => (b >= 1000 ? `${Math.round(b / 1000)}kb` : `${b}b`);

/** Peak RSS (VmHWM) and CPU seconds of a live process, from /proc; undefined once it is gone. */
function readProc(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { hwm, cpu: (Number(f[11]) + Number(f[12])) / 100 };
  } catch {
    return undefined;
  }
}

/** Run the CLI to completion; resolve with its parsed --json result, wall seconds, peak RSS and CPU. */
function runCli(configFile, outDir) {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // the CLI as a user starts it
  const argv = [...flags, join(DIST, 'cli.js'), '--config', configFile, 'run', 'access', '--identifier', `email=${EMAIL}`, '--out', outDir, '--json'];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
    let peak = { hwm: 0, cpu: 0 };
    const poll = setInterval(() => {
      const p = readProc(child.pid);
      if (p && p.hwm >= peak.hwm) peak = p;
    }, 10);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearInterval(poll);
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) return reject(new Error(`dist/cli.js run access exited with ${code ?? signal}: ${stderr.slice(-1000)}`));
      try {
        resolve({ result: JSON.parse(stdout), seconds, peakRss: peak.hwm, cpu: peak.cpu, stdoutBytes: stdout.length });
      } catch {
        reject(new Error(`dist/cli.js printed no JSON result: ${stdout.slice(0, 200)}`));
      }
    });
  });
}

/** JSON.parse MB/s (decode + parse) on the body's bytes, timed per group, generation excluded. */
function jsonParseMBps(bytes, objectBytes) {
  let seconds = 0;
  let objects = 0;
  for (const group of bodyGroups(bytes, objectBytes)) {
    const t0 = performance.now();
    objects += JSON.parse(group.toString('utf8')).length;
    seconds += (performance.now() - t0) / 1000;
  }
  return { mbps: bytes / 1e6 / seconds, objects };
}

const target = startChild(join(BENCH, 'memory-target.mjs'));
const base = `http://127.0.0.1:${(await target.ready).port}`;
const runs = [];
try {
  for (const objectBytes of objectSizes) {
    for (const mib of sizes) {
      const shape = bodyShape(mib * MiB, objectBytes);
      const parse = jsonParseMBps(mib * MiB, objectBytes);
      if (parse.objects !== shape.objects) throw new Error(`the body holds ${shape.objects} objects, JSON.parse saw ${parse.objects}`);
      const url = `${base}/objects?bytes=${mib * MiB}&object_bytes=${objectBytes}&email={email}`;
      const cfg = writeConfigDir(benchConfig([accessConnection(0, [url], base)], { job_timeout_seconds: 3600 }));
      const outDir = mkdtempSync(join(outRoot, 'dsr-bench-memory-'));
      try {
        const cli = await runCli(cfg.file, outDir);
        const c = cli.result.connections?.[0];
        const reports = c?.report_count ?? c?.reports?.length;
        if (cli.result.status !== 'succeeded' || reports !== shape.objects) {
          throw new Error(`access job ${cli.result.status}, ${reports} reports for ${shape.objects} objects: ${JSON.stringify(c?.error ?? null)}`);
        }
        const run = {
          object_bytes: objectBytes,
          mib,
          objects: shape.objects,
          bytes: shape.bytes,
          seconds: round(cli.seconds, 2),
          mb_per_s: round(shape.bytes / 1e6 / cli.seconds, 1),
          json_parse_mb_per_s: round(parse.mbps, 1),
          ratio_to_json_parse: round(shape.bytes / 1e6 / cli.seconds / parse.mbps, 3),
          peak_rss_mib: round(cli.peakRss / MiB, 1),
          cpu_s: round(cli.cpu, 1),
          result_json_bytes: cli.stdoutBytes,
        };
        process.stderr.write(` [${objectKey(objectBytes)} ${sizeKey(mib)}: ${run.mb_per_s} MB/s (JSON.parse ${run.json_parse_mb_per_s}), ${run.peak_rss_mib} MiB]`);
        runs.push(run);
      } finally {
        rmSync(outDir, { recursive: true, force: true });
        cfg.cleanup();
      }
    }
  }
} finally {
  await target.stop();
}

// Per size: the worst object size (highest peak, lowest MB/s and ratio).
const out = { agent_node_flags: flags.join(' '), out_dir: outRoot };
const at = (mib) => runs.filter((r) => r.mib === mib);
for (const mib of sizes) {
  const k = sizeKey(mib);
  out[`peak_rss_mib_${k}`] = Math.max(...at(mib).map((r) => r.peak_rss_mib));
  out[`mb_per_s_${k}`] = Math.min(...at(mib).map((r) => r.mb_per_s));
  out[`ratio_to_json_parse_${k}`] = Math.min(...at(mib).map((r) => r.ratio_to_json_parse));
}
out.peak_rss_mib_1gib_noflags = flags.length === 0 && sizes.includes(1024) ? out.peak_rss_mib_1gib : null;
// Flatness: per object size, the largest response's peak minus the smallest's; the worst of them.
out.growth_mib = round(Math.max(...objectSizes.map((b) => {
  const list = runs.filter((r) => r.object_bytes === b);
  return list.at(-1).peak_rss_mib - list[0].peak_rss_mib;
})), 1);
for (const r of runs) out[`${objectKey(r.object_bytes)}_${sizeKey(r.mib)}`] = r;
emit(out);
