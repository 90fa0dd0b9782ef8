// Case 4c, memory per replica and per queued job (issue 11, goal 6): the resident set of one
// `node dist/cli.js serve` process idle (started, a token issued, nothing queued), then with
// QUEUED jobs waiting, for the embedded queue and for Redis (its own BullMQ queue, dropped at the
// end). Prints one JSON line; a scenario that cannot run carries `skipped_rss_<queue>` and nulls.
//
// The jobs wait honestly: the connection's target (bench/latency-target.mjs) holds every request
// for 10 minutes, so `job_concurrency` (4) jobs are running and the rest are queued, as when a
// slow API holds the replica's slots. 32 clients POST the jobs; the replica's RSS (VmRSS from
// /proc) is read after it has been quiet for SETTLE_MS: the median of 5 readings 200 ms apart (--quick: 3, 100 ms).
// RSS also counts garbage not yet collected (start-up leaves some; 10,000 POSTs leave more) and heap
// V8 keeps for later, so RSS deltas are no measure of what a job costs. Each reading is therefore
// followed by a full collection through the process's inspector (it runs with
// NODE_OPTIONS=--inspect=127.0.0.1:0), then the heap V8 still uses and the RSS again: the heap
// delta over the queued jobs is the memory the replica really holds per queued job. The headline
// RSS figures are the ones after the collection; the readings before it are kept as `*_before_gc`.
// For Redis, the memory of the queue's keys in redis-server is reported too (where its jobs live).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BENCH, accessConnection, benchConfig, emit, parseArgs, quantile, round, startChild } from './lib.mjs';
import { collectedHeap, dropQueue, getToken, inspectorUrl, makeApiClient, rssMiB, scrape, uniqueQueueName, withAgents } from './service-lib.mjs';

const args = parseArgs();
const QUEUED = Number(args.jobs ?? (args.quick ? 300 : 10_000));
const CLIENTS = Number(args.clients ?? 32);
const SETTLE_MS = Number(args.settle ?? (args.quick ? 200 : 2000));
const READINGS = args.quick ? 3 : 5;
const GAP_MS = args.quick ? 100 : 200;
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379';
const SCENARIOS = String(args.scenarios ?? 'embedded,redis').split(',');
const api = makeApiClient(CLIENTS);

/** The median of READINGS RSS readings GAP_MS apart, after SETTLE_MS. */
async function settledRss(pid) {
  await sleep(SETTLE_MS);
  const xs = [];
  for (let i = 0; i < READINGS; i++, await sleep(GAP_MS)) xs.push(rssMiB(pid));
  return quantile(xs, 0.5);
}

/**
 * The memory Redis gives one BullMQ queue's keys (`bull:<name>:*`, MEMORY USAGE of each), in MiB:
 * the queue's own, whatever else uses the same Redis meanwhile.
 */
async function queueKeysMiB(name) {
  const { Redis } = await import('ioredis');
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let bytes = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `bull:${name}:*`, 'COUNT', 1000);
      cursor = next;
      const pipeline = redis.pipeline();
      for (const k of keys) pipeline.memory('USAGE', k, 'SAMPLES', 0);
      for (const [err, n] of (await pipeline.exec()) ?? []) if (!err) bytes += Number(n ?? 0);
    } while (cursor !== '0');
    return bytes / 2 ** 20;
  } finally {
    redis.disconnect();
  }
}

async function measure(config, label, { queueName } = {}) {
  const redis = queueName !== undefined;
  return withAgents(api, config, 1, async ([agent]) => {
    const inspector = inspectorUrl(agent.output());
    const token = await getToken(api, agent.url);
    const idle = await settledRss(agent.pid);
    const idleHeap = await collectedHeap(inspector);
    const idleAfterGc = await settledRss(agent.pid);
    const redis0 = redis ? await queueKeysMiB(queueName) : undefined;
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
    const queuedHeap = await collectedHeap(inspector);
    const queuedAfterGc = await settledRss(agent.pid);
    const { depth } = await scrape(api, agent.url);
    const redis1 = redis ? await queueKeysMiB(queueName) : undefined;
    return {
      // The headline readings follow a full collection (comparable, reproducible); `_before_gc` as found.
      idle_rss_mib: round(idleAfterGc, 1),
      queued_rss_mib: round(queuedAfterGc, 1),
      rss_kib_per_queued_job: round(((queuedAfterGc - idleAfterGc) * 1024) / QUEUED, 2),
      idle_rss_mib_before_gc: round(idle, 1),
      queued_rss_mib_before_gc: round(queued, 1),
      idle_heap_used_mib: round(idleHeap.usedMiB, 1),
      queued_heap_used_mib: round(queuedHeap.usedMiB, 1),
      heap_kib_per_queued_job: round(((queuedHeap.usedMiB - idleHeap.usedMiB) * 1024) / QUEUED, 2),
      queue_depth: depth,
      submit_jobs_per_s: round(QUEUED / submitS, 1),
      ...(redis ? { redis_queue_mib: round(redis1, 1), redis_kib_per_queued_job: round(((redis1 - redis0) * 1024) / QUEUED, 2) } : {}),
    };
  }, { nodeOptions: '--inspect=127.0.0.1:0' });
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
  // The scenarios run side by side (each reading is one process's own memory): one start-up's wait.
  await Promise.all(SCENARIOS.map(async (scenario) => {
    const queueName = uniqueQueueName('rss');
    try {
      results[scenario] =
        scenario === 'redis'
          ? await measure({ ...base_config, redis_url: REDIS_URL, agent: { ...base_config.agent, queue_name: queueName } }, scenario, { queueName })
          : await measure(base_config, scenario);
      for (const [k, v] of Object.entries(results[scenario])) out[`${k}_${scenario}`] = v;
    } catch (err) {
      out[`skipped_rss_${scenario}`] = err.message;
    } finally {
      if (scenario === 'redis') await dropQueue(REDIS_URL, queueName).catch(() => undefined);
    }
    if (results[scenario]) process.stderr.write(` [${scenario}: ${results[scenario].idle_rss_mib} → ${results[scenario].queued_rss_mib} MiB]`);
  }));
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
