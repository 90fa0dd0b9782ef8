// Case 3, memory: the agent (its own process) runs one access job against a target (another
// process) that streams a 100 MiB, then a 1 GiB, JSON array of 64 KiB–1 MiB objects. Reports each
// agent process's peak RSS. Prints one JSON line.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH, MiB, ROOT, emit, parseArgs, runChildJson, startTarget } from './lib.mjs';

const args = parseArgs();

/**
 * The node flags the container starts the agent with (between "node" and "dist/cli.js" in the
 * Dockerfile's ENTRYPOINT), so the bench measures the process as it runs in production.
 * --agent-node-flags="--max-semi-space-size=16 ..." overrides them (to try a setting).
 */
function productionNodeFlags() {
  try {
    const line = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split('\n').find((l) => l.startsWith('ENTRYPOINT'));
    const argv = JSON.parse(line.slice('ENTRYPOINT'.length));
    return argv.slice(1, argv.indexOf('dist/cli.js')).filter((a) => a.startsWith('--'));
  } catch {
    return [];
  }
}
const flags = typeof args['agent-node-flags'] === 'string' ? args['agent-node-flags'].split(' ').filter(Boolean) : productionNodeFlags();
// --quick streams 32 MiB and 100 MiB instead of 100 MiB and 1 GiB; --sizes 100,1024,2048 to try others.
const sizes = String(args.sizes ?? (args.quick ? '32,100' : '100,1024')).split(',').map(Number);
const target = await startTarget();
const out = { agent_node_flags: flags.join(' ') };
try {
  for (const mib of sizes) {
    const r = await runChildJson(join(BENCH, 'memory-agent.mjs'), ['--target', target.url, '--bytes', String(mib * MiB)], { nodeArgs: flags });
    const key = mib % 1024 === 0 ? `${mib / 1024}gib` : `${mib}mib`;
    out[`peak_rss_mib_${key}`] = r.peak_rss_mib;
    out[`baseline_rss_mib_${key}`] = r.baseline_rss_mib;
    out[`objects_${key}`] = r.objects;
    out[`mb_per_s_${key}`] = r.mb_per_s;
    out[`at_peak_mib_${key}`] = r.at_peak_mib; // process.memoryUsage() and V8 spaces when RSS peaked
  }
} finally {
  await target.stop();
}
emit(out);
