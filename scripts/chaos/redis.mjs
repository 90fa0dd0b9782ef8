// Scenario redis: the Redis queue when Redis dies mid-run, without and with persistence. A private
// redis-server (free port, temp dir) serves one `serve`; 150 delete jobs are accepted, then Redis is
// killed with SIGKILL for 8 s and started again on the same dir. While it is down the script probes
// /readyz every 100 ms and the job API (a POST of a new job and a GET of an accepted one) every
// 250 ms, timing each answer. After Redis is back, POSTs that were not accepted are sent again (same
// ids), and every accepted job must end final. Without persistence Redis comes back empty: the
// accepted jobs it held are lost, which is why the README asks for AOF and the agent warns at startup.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Statuses, assess, finalPass, fmtMs, freePort, jobBody, makeBook, makeClient, pollUntilFinal, startRedis, startService, startTarget, submitAll, waitUntil, warnings, tokenOf, writeServiceConfig } from './lib.mjs';

export const name = 'redis';
export const title = 'Redis killed and restarted mid-run, without and with persistence';

const OUTAGE_MS = 8000;
const JOBS = 150;
const READINESS_S = 1;
/** Goal: /readyz and the API answer 503 this soon after Redis dies (one 1 s readiness check, plus slack). */
const GOAL_503_MS = 2000;

async function runMode({ cli, dir, persist, say }) {
  const mode = persist ? 'aof' : 'nopersist';
  const redisPort = await freePort();
  const redisArgs = persist ? ['--appendonly', 'yes', '--save', ''] : ['--save', '', '--appendonly', 'no'];
  let redis = await startRedis({ port: redisPort, dir, args: redisArgs });
  const target = await startTarget({ delayMs: [100, 200] });
  const configPath = writeServiceConfig(dir, {
    targetUrl: target.url,
    redisUrl: `redis://127.0.0.1:${redisPort}`,
    agent: { job_concurrency: 4, job_lock_seconds: 10, readiness_interval_seconds: READINESS_S },
  });
  const client = makeClient({ connections: 64 });
  const book = makeBook();
  const statuses = new Statuses();
  const faults = [];
  let svc;
  try {
    svc = await startService({ cli, configPath, dataDir: join(dir, 'data'), logFile: join(dir, 'service.log') });
    const token = await tokenOf(client, svc.url);
    await sleep(1000); // let startup checks (and their warnings) run
    const persistenceWarning = warnings(svc.output(), /persist|appendonly|\baof\b|\brdb\b/i).length > 0;

    const ids = Array.from({ length: JOBS }, (_, i) => `rd-${mode}-j${i}`);
    await submitAll({ client, url: svc.url, token, ids, book, statuses, concurrency: 16 });
    let stopPolling = false;
    const poller = pollUntilFinal({ client, url: svc.url, token, book, statuses, ms: 600_000, stop: () => stopPolling, concurrency: 4 });
    await sleep(500);

    // Redis down.
    const tKill = Date.now();
    await redis.kill9();
    target.nextEpoch();
    let readyz503At;
    const readyzDown = new Statuses();
    const outage = { post: new Statuses(), get: new Statuses(), probes: [] };
    const inOutage = () => Date.now() - tKill < OUTAGE_MS;
    const readyLoop = (async () => {
      while (inOutage()) {
        const r = await client.call('GET', `${svc.url}/readyz`, { timeoutMs: 2000 });
        readyzDown.add('GET /readyz', r);
        if (r.status === 503 && readyz503At === undefined) readyz503At = r.at - tKill;
        await sleep(100);
      }
    })();
    const apiProbes = [];
    let n = 0;
    const acceptedIds = book.accepted().map((j) => j.id);
    while (inOutage()) {
      const id = `rd-${mode}-o${n}`;
      const getId = acceptedIds[n % acceptedIds.length];
      n++;
      const sent = Date.now();
      apiProbes.push(
        client.call('POST', `${svc.url}/api/v1/jobs`, { token, body: jobBody(id), timeoutMs: 30_000 }).then((r) => {
          outage.post.add('POST /api/v1/jobs (Redis down)', r);
          statuses.add('POST /api/v1/jobs', r);
          book.posted(id, r);
          outage.probes.push({ kind: 'POST', sent, ...r });
        }),
        client.call('GET', `${svc.url}/api/v1/jobs/${getId}`, { token, timeoutMs: 30_000 }).then((r) => {
          outage.get.add('GET /api/v1/jobs/:id (Redis down)', r);
          statuses.add('GET /api/v1/jobs/:id', r);
          outage.probes.push({ kind: 'GET', sent, ...r });
        }),
      );
      await sleep(250);
    }
    await readyLoop;

    // Redis back, on the same dir (with AOF it reloads what it had).
    redis = await startRedis({ port: redisPort, dir, args: redisArgs });
    const tUp = Date.now();
    faults.push({ from: tKill, to: tUp });
    const ready = await waitUntil(async () => (await client.call('GET', `${svc.url}/readyz`, { timeoutMs: 2000 })).status === 200, 30_000, 100);
    const readyAgainMs = ready ? Date.now() - tUp : undefined;
    await Promise.all(apiProbes);
    const probes = outage.probes.filter((p) => p.sent - tKill < OUTAGE_MS);
    const first503 = probes.filter((p) => p.status === 503).map((p) => p.at - tKill);
    const api503At = first503.length ? Math.min(...first503) : undefined;
    const slowest = probes.length ? Math.max(...probes.map((p) => p.ms)) : undefined;
    const over2s = probes.filter((p) => p.ms > 2000).length;

    // A client re-sends what was not accepted, once Redis is back.
    await submitAll({ client, url: svc.url, token, ids: book.pending().map((j) => j.id), book, statuses, concurrency: 16 });
    await pollUntilFinal({ client, url: svc.url, token, book, statuses, ms: 60_000 });
    stopPolling = true;
    await poller;
    await finalPass({ client, url: svc.url, token, book, statuses });
    if (readyzDown.routes.has('GET /readyz')) statuses.routes.set('GET /readyz (Redis down)', readyzDown.routes.get('GET /readyz'));
    const a = assess(book, target.hits, faults);
    const figures = {
      ...a,
      unexpected5xx: statuses.unexpected5xx(),
      persistenceWarning,
      readyz503Ms: readyz503At,
      api503Ms: api503At,
      apiSlowestMs: slowest,
      apiOver2s: over2s,
      readyAgainMs,
    };
    const label = persist ? 'with AOF (--appendonly yes)' : 'without persistence (--save "" --appendonly no)';
    say(`[${label}] ${JOBS} jobs accepted before the kill; Redis down ${OUTAGE_MS / 1000} s; readiness interval ${READINESS_S} s`);
    say(`  startup warning about no persistence: ${persistenceWarning ? 'yes' : 'no'}`);
    say(`  /readyz first 503 after the kill: ${fmtMs(readyz503At)}; ready again after Redis restart: ${fmtMs(readyAgainMs)}`);
    say(`  API while down: first 503 at ${fmtMs(api503At)}; slowest answer ${fmtMs(slowest)}; answers over 2 s: ${over2s} of ${probes.length}`);
    say(`  ${outage.post.lines().join('; ')}; ${outage.get.lines().join('; ')}`);
    say(`  accepted ${a.accepted}, final ${a.final}, lost ${a.lost}, stuck ${a.stuck}, run twice ${a.runTwice} (across the outage ${a.runTwiceAllowed}, violations ${a.runTwiceViolations}), final status flipped ${a.flipped}`);
    const goals = [
      { goal: '/readyz 503 within 2 s of Redis dying', value: fmtMs(readyz503At), met: readyz503At !== undefined && readyz503At <= GOAL_503_MS },
      { goal: 'API 503 queue_unavailable within 2 s (no answer slower)', value: `first ${fmtMs(api503At)}, slowest ${fmtMs(slowest)}`, met: api503At !== undefined && api503At <= GOAL_503_MS && over2s === 0 },
      { goal: '0 unexpected 5xx', value: figures.unexpected5xx, met: figures.unexpected5xx === 0 },
      { goal: '0 stuck', value: a.stuck, met: a.stuck === 0 },
      { goal: 'run twice only across the outage (at-least-once)', value: a.runTwiceViolations, met: a.runTwiceViolations === 0 && a.rerunAfterFinal === 0 },
    ];
    if (persist) goals.unshift({ goal: '0 lost', value: a.lost, met: a.lost === 0 });
    else goals.unshift({ goal: 'startup warns that Redis has no persistence', value: persistenceWarning ? 'warned' : 'no warning', met: persistenceWarning });
    return { name: `redis-${mode}`, figures, statuses, goals, notes: persist ? [] : [`${a.lost} accepted jobs lost: Redis without persistence restarts empty (documented; not a goal)`] };
  } finally {
    await svc?.stop(15_000);
    await redis.kill9();
    await client.close();
    await target.close();
  }
}

export async function run({ cli, dir, say }) {
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (probe.error) return { skipped: `redis-server is not on the PATH (${probe.error.code}); install Redis to run this scenario`, goals: [] };
  const results = [];
  for (const persist of [false, true]) {
    const sub = join(dir, persist ? 'aof' : 'nopersist');
    mkdirSync(sub, { recursive: true });
    results.push(await runMode({ cli, dir: sub, persist, say }));
  }
  return results;
}
