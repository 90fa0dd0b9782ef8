// Summarise a V8 .cpuprofile (from `node --cpu-prof`): self time per function and per file, top N.
// Usage: node bench/profile-summary.mjs <file.cpuprofile> [--top 25] [--filter dist/]
import { readFileSync } from 'node:fs';
import { parseArgs } from './lib.mjs';

const args = parseArgs();
const file = process.argv[2];
if (!file || file.startsWith('--')) {
  console.error('usage: node bench/profile-summary.mjs <file.cpuprofile> [--top 25]');
  process.exit(2);
}
const top = Number(args.top ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (dt[i] ?? 0));
const total = dt.reduce((a, b) => a + b, 0);

const fnTime = new Map();
const fileTime = new Map();
for (const [id, us] of self) {
  const { callFrame: f } = byId.get(id);
  const where = f.url ? f.url.replace(/^file:\/\/.*?\/(node_modules|dist|bench)\//, '$1/') : '(native)';
  const fn = `${f.functionName || '(anonymous)'}  ${where}:${f.lineNumber + 1}`;
  fnTime.set(fn, (fnTime.get(fn) ?? 0) + us);
  const mod = where.replace(/:\d+$/, '').replace(/^(node_modules\/(@[^/]+\/)?[^/]+).*/, '$1');
  fileTime.set(mod, (fileTime.get(mod) ?? 0) + us);
}
const show = (title, m) => {
  console.log(`\n${title} (of ${(total / 1000).toFixed(0)} ms sampled)`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
  }
};
show('self time by function', fnTime);
show('self time by module', fileTime);

// --callers NAME: the call paths (3 frames up) that spend self time in functions named NAME.
if (args.callers) {
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const paths = new Map();
  for (const [id, us] of self) {
    if (byId.get(id).callFrame.functionName !== args.callers) continue;
    const chain = [];
    for (let p = parent.get(id), k = 0; p !== undefined && k < 4; p = parent.get(p), k++) {
      const f = byId.get(p).callFrame;
      chain.push(`${f.functionName || '(anon)'}@${(f.url || 'native').split('/').pop()}:${f.lineNumber + 1}`);
    }
    const key = chain.join(' < ');
    paths.set(key, (paths.get(key) ?? 0) + us);
  }
  show(`callers of ${args.callers}`, paths);
}
