// Summarise a V8 .cpuprofile (from `node --cpu-prof`): self time per function and per file, top N.
// Also a sampling heap profile: bytes allocated per function (--stacks: with two callers).
// Usage: node bench/profile-summary.mjs <file.cpuprofile|file.heapprofile> [--top 25] [--callers NAME] [--inclusive a,b]
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

// A sampling heap profile (.heapprofile, or HeapProfiler.stopSampling's result): bytes allocated per function.
if (profile.head) {
  const bytes = new Map();
  let total = 0;
  const visit = (n, chain) => {
    const f = n.callFrame;
    const where = f.url ? f.url.replace(/^file:\/\/.*?\/(node_modules|dist|bench)\//, '$1/') : '(native)';
    const name = `${f.functionName || '(anonymous)'}  ${where}:${f.lineNumber + 1}`;
    if (n.selfSize) {
      const key = args.stacks ? [name, ...chain].slice(0, 3).join(' < ') : name;
      bytes.set(key, (bytes.get(key) ?? 0) + n.selfSize);
      total += n.selfSize;
    }
    for (const c of n.children ?? []) visit(c, [name, ...chain]);
  };
  visit(profile.head, []);
  console.log(`\nallocated bytes by function (of ${(total / 2 ** 20).toFixed(0)} MiB sampled)`);
  for (const [k, b] of [...bytes].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(b / 2 ** 20).toFixed(1).padStart(9)} MiB ${((100 * b) / total).toFixed(1).padStart(5)}%  ${k}`);
  }
  process.exit(0);
}
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

// --inclusive a,b,c: time spent in those functions and everything they call (within one stack;
// work resumed after an await starts a new stack and is not counted).
if (args.inclusive) {
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const out = new Map();
  for (const name of String(args.inclusive).split(',')) {
    let us = 0;
    for (const [id, t] of self) {
      for (let p = id; p !== undefined; p = parent.get(p)) {
        if (byId.get(p).callFrame.functionName === name) {
          us += t;
          break;
        }
      }
    }
    out.set(name, us);
  }
  show('inclusive time', out);
}
