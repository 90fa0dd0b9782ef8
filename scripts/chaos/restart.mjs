// Scenario restart: how long `serve` takes to listen with 100,000 finished jobs kept (retention), and
// its RSS: finished jobs live in jobs/finished/ and are read on demand, so a restart reads only the jobs
// in flight. Also the one-time move of a journal from before jobs/finished/ (all records in jobs/).
// Goal (issue 10): listening within 5 s with 100,000 finished jobs; a GET of one of them answers.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Statuses, makeClient, startService, tokenOf, writeServiceConfig, startTarget } from './lib.mjs';

export const name = 'restart';
export const title = 'restart with 100,000 finished jobs kept (and the one-time move of an old journal)';

const FINISHED = 100_000;

function writeFinished(folder, n) {
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  for (let i = 0; i < n; i++) {
    const id = `done-${i}`;
    const record = {
      id, type: 'access', status: 'succeeded', attempt: 1,
      created_at: '2026-11-30T10:00:00.000Z', started_at: '2026-11-30T10:00:01.000Z', finished_at: '2026-11-30T10:00:02.000Z',
      connections: [{ uuid: 'c4a05000-0000-4000-8000-000000000001', name: 'Chaos', status: 'succeeded', reports: [`/reports/${id}/report_1.csv`], duration_ms: 12 }],
    };
    writeFileSync(join(folder, `${id}.json`), JSON.stringify(record), { mode: 0o600 });
  }
}

async function timeStart({ cli, configPath, dataDir, logFile }) {
  const t0 = performance.now();
  const svc = await startService({ cli, configPath, dataDir, logFile, logLevel: 'INFO' });
  const ms = performance.now() - t0;
  const metrics = await (await fetch(`${svc.url}/metrics`)).text();
  const rss = Number(/^process_resident_memory_bytes (\d+)/m.exec(metrics)?.[1] ?? 0) / 1048576;
  return { svc, ms, rss };
}

export async function run({ cli, dir, say }) {
  const target = await startTarget({});
  const configPath = writeServiceConfig(dir, { targetUrl: target.url });
  const client = makeClient({ connections: 2 });
  const statuses = new Statuses();
  const results = {};
  try {
    for (const [label, folder] of [['empty', null], ['finished', 'jobs/finished'], ['old layout', 'jobs']]) {
      const dataDir = join(dir, `data-${label.replace(' ', '-')}`);
      if (folder) writeFinished(join(dataDir, folder), FINISHED);
      const { svc, ms, rss } = await timeStart({ cli, configPath, dataDir, logFile: join(dir, `service-${label.replace(' ', '-')}.log`) });
      let readable = true;
      if (folder) {
        const token = await tokenOf(client, svc.url);
        const res = await client.call('GET', `${svc.url}/api/v1/jobs/done-${FINISHED - 1}`, { token });
        statuses.add('GET /api/v1/jobs/{finished id}', res);
        readable = res.status === 200 && res.json?.status === 'succeeded';
      }
      await svc.stop();
      results[label] = { ms, rss, readable };
      say(`${label}${folder ? ` (${FINISHED} records in ${folder}/)` : ''}: listening after ${Math.round(ms)} ms, RSS ${Math.round(rss)} MiB${folder ? `, GET of a finished job ${readable ? '200' : 'FAILED'}` : ''}`);
    }
  } finally {
    await client.close();
    await target.close();
  }
  const f = results.finished;
  return {
    figures: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, { listen_ms: Math.round(v.ms), rss_mib: Math.round(v.rss) }])),
    statuses,
    goals: [
      { goal: `listening within 5 s with ${FINISHED} finished jobs`, value: `${Math.round(f.ms)} ms (empty: ${Math.round(results.empty.ms)} ms)`, met: f.ms < 5000 },
      { goal: 'finished jobs stay out of memory (RSS within 32 MiB of an empty data dir)', value: `${Math.round(f.rss)} MiB vs ${Math.round(results.empty.rss)} MiB`, met: f.rss - results.empty.rss < 32 },
      { goal: 'a finished job is readable after the restart', value: f.readable && results['old layout'].readable ? 'yes' : 'no', met: f.readable && results['old layout'].readable },
    ],
  };
}
