// Case 4c, memory per replica and per queued job (issue 11, goal 6): the resident set of one
// `node dist/cli.js serve` process idle (started, a token issued, nothing queued), then with
// QUEUED jobs waiting, for the embedded queue and for Redis (its own BullMQ queue, dropped at the
// end). Prints one JSON line; a scenario that cannot run carries `skipped_rss_<queue>` and nulls.
//
// The jobs wait honestly: the connection's target (bench/latency-target.mjs) holds every request
// for 10 minutes, so `job_concurrency` (4) jobs are running and the rest are queued, as when a
// slow API holds the replica's slots. 32 clients POST the jobs; the replica's RSS (VmRSS from
// /proc) is read after it has been quiet for SETTLE_MS, the median of 5 readings 200 ms apart.
// For Redis, redis-server's own `used_memory` growth is reported too (where the queue's jobs live).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BENCH, accessConnection, benchConfig, emit, parseArgs, quantile, round, startChild } from './lib.mjs';
import { dropQueue, getToken, makeApiClient, rssMiB, scrape, uniqueQueueName, withAgents } from './service-lib.mjs';

const args = parseArgs();
const QUEUED = Number(args.jobs ?? (args.quick ? 1000 : 10_000));
const CLIENTS = Number(args.clients ?? 32);
const SETTLE_MS = Number(args.settle ?? (args.quick ? 1000 : 3000));
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379';
const SCENARIOS = String(args.scenarios ?? 'embedded,redis').split(',');
const api = makeApiClient(CLIENTS);

/** The median of 5 RSS readings 200 ms apart, after SETTLE_MS. */
async function settledRss(pid) {
  await sleep(SETTLE_MS);
  const xs = [];
  for (let i = 0; i < 5; i++, await sleep(200)) xs.push(rssMiB(pid));
  return quantile(xs, 0.5);
}

/** redis-server's used_memory in MiB. */
async function redisUsedMiB() {
  const { Redis } = await import('ioredis');
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const info = await redis.info('memory');
    return Number(/used_memory:(\d+)/.exec(info)[1]) / 2 ** 20;
  } finally {
    redis.disconnect();
  }
}

async function measure(config, label, { redis = false } = {}) {
  return withAgents(api, config, 1, async ([agent]) => {
    const token = await getToken(api, agent.url);
    const idle = await settledRss(agent.pid);
    const redis0 = redis ? await redisUsedMiB() : undefined;
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CLIENTS }, async () => {
      for (let n = next++; n < QUEUED; n = next++) {
        const res = await api.call('POST', `${agent.url}/api/v1/jobs`, { token, body: { type: 'access', identifiers: { email: `queued-${n}@bench.example` } } });
        if (res.status !== 202) throw new Error(`${label}: POST /api/v1/jobs answered ${res.status}: ${res.text.slice(0, 300)}`);
      }
    }));
    const submitS = (performance.now() - t0) / 1000;
    const queued = await settledRss(agent.pid);
    const { depth } = await scrape(api, agent.url);
    const redis1 = redis ? await redisUsedMiB() : undefined;
    return {
      idle_rss_mib: round(idle, 1),
      queued_rss_mib: round(queued, 1),
      kib_per_queued_job: round(((queued - idle) * 1024) / QUEUED, 2),
      queue_depth: depth,
      submit_jobs_per_s: round(QUEUED / submitS, 1),
      ...(redis ? { redis_used_mib_growth: round(redis1 - redis0, 1), redis_kib_per_queued_job: round(((redis1 - redis0) * 1024) / QUEUED, 2) } : {}),
    };
  });
}

const out = { rss_queued_jobs: QUEUED, idle_rss_mib: null, rss_mib_10k_queued: null };
const t = startChild(join(BENCH, 'latency-target.mjs'));
try {
  const { port } = await t.ready;
  const base = `http://127.0.0.1:${port}`;
  // 10 minutes: every running job waits on its target for the whole measurement.
  const connections = [accessConnection(0, [`${base}/wait?ms=600000&job={email}`], base)];
  const base_config = benchConfig(connections, {
    datagrail_agent_credentials_location: 'bench-client',
    job_timeout_seconds: 3600,
    agent: { shutdown_grace_seconds: 1 },
  });
  const results = {};
  for (const scenario of SCENARIOS) {
    const queueName = uniqueQueueName('rss');
    try {
      results[scenario] =
        scenario === 'redis'
          ? await measure({ ...base_config, redis_url: REDIS_URL, agent: { ...base_config.agent, queue_name: queueName } }, scenario, { redis: true })
          : await measure(base_config, scenario);
      for (const [k, v] of Object.entries(results[scenario])) out[`${k}_${scenario}`] = v;
    } catch (err) {
      out[`skipped_rss_${scenario}`] = err.message;
    } finally {
      if (scenario === 'redis') await dropQueue(REDIS_URL, queueName).catch(() => undefined);
    }
    if (results[scenario]) process.stderr.write(` [${scenario}: ${results[scenario].idle_rss_mib} → ${results[scenario].queued_rss_mib} MiB]`);
  }
  // Headlines: the larger of the two queues (what to size a replica for).
  const got = Object.values(results);
  if (got.length) {
    out.idle_rss_mib = Math.max(...got.map((r) => r.idle_rss_mib));
    // Only a run that really queued 10,000 jobs fills the 10k key (--quick queues fewer).
    if (QUEUED === 10_000) out.rss_mib_10k_queued = Math.max(...got.map((r) => r.queued_rss_mib));
    out.rss_mib_queued = Math.max(...got.map((r) => r.queued_rss_mib));
  }
} finally {
  await t.stop();
  await api.close();
}
emit(out);
