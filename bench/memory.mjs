// Case 3, memory: the agent (its own process) runs one access job against a target (another
// process) that streams a 100 MiB, then a 1 GiB, JSON array of 64 KiB–1 MiB objects. Reports each
// agent process's peak RSS. Prints one JSON line.
import { join } from 'node:path';
import { BENCH, MiB, agentNodeFlags, emit, parseArgs, runChildJson, startTarget } from './lib.mjs';

const args = parseArgs();

// The agent runs with the Dockerfile's ENTRYPOINT node flags; --agent-node-flags="--max-semi-space-size=16 ..."
// overrides them (to try a setting).
const flags = agentNodeFlags(args);
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
