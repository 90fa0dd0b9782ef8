// Scenario kill9: the embedded queue under repeated `kill -9`. Each cycle starts `serve` on the same
// DSR_AGENT_DATA_DIR, submits 200 delete jobs (and re-submits, with the same ids, those whose POST
// got no answer), lets them run for a random 0.3-1.5 s and kills the process with SIGKILL, often in
// the middle of the POSTs. After the last cycle a final process drains the journal. The target
// counts hits per job: a job hit twice is allowed only when a kill lies between the two runs and
// the client had not yet seen it final (the README's at-least-once delivery).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT_SLACK_MS, Statuses, assess, finalPass, freePort, makeBook, makeClient, pollUntilFinal, randomBetween, startService, startTarget, submitAll, tokenOf, writeServiceConfig } from './lib.mjs';

export const name = 'kill9';
export const title = 'kill -9 cycles, embedded queue';

export async function run({ cli, dir, opts, say }) {
  const cycles = Number(opts.cycles ?? 10);
  const perCycle = Number(opts.jobs ?? 200);
  const concurrency = 32;
  const target = await startTarget({ delayMs: [20, 100] });
  const configPath = writeServiceConfig(dir, { targetUrl: target.url, agent: { job_concurrency: concurrency } });
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'service.log');
  const client = makeClient({ connections: 32 });
  const book = makeBook();
  const statuses = new Statuses();
  const faults = [];
  const depths = [];
  const port = await freePort();
  const started = Date.now();
  let token;
  try {
    for (let c = 1; c <= cycles; c++) {
      const svc = await startService({ cli, configPath, dataDir, logFile, port });
      token = await tokenOf(client, svc.url);
      // A client re-sends, with the same id, every POST that got no answer (the id makes it idempotent).
      const ids = [...book.pending().map((j) => j.id), ...Array.from({ length: perCycle }, (_, i) => `k9-c${c}-j${i}`)];
      let killed = false;
      const poller = pollUntilFinal({ client, url: svc.url, token, book, statuses, ms: 600_000, stop: () => killed, concurrency: 4, pauseMs: 1000 });
      const submitting = submitAll({ client, url: svc.url, token, ids, book, statuses, concurrency: 16, timeoutMs: 10_000, stop: () => killed });
      await sleep(randomBetween(300, 1500));
      depths.push(await depthOf(client, svc.url));
      killed = true; // the client stops sending; what it could not send goes again next cycle
      const from = Date.now();
      await svc.kill9();
      faults.push({ from, to: Date.now() + EXIT_SLACK_MS });
      target.nextEpoch();
      await Promise.all([submitting, poller]);
    }
    const svc = await startService({ cli, configPath, dataDir, logFile, port });
    token = await tokenOf(client, svc.url);
    const drainStart = Date.now();
    book.forgetStates();
    await submitAll({ client, url: svc.url, token, ids: book.pending().map((j) => j.id), book, statuses, concurrency: 16 });
    await pollUntilFinal({ client, url: svc.url, token, book, statuses, ms: 120_000 });
    const drainMs = Date.now() - drainStart;
    await finalPass({ client, url: svc.url, token, book, statuses });
    await svc.stop();
    const a = assess(book, target.hits, faults);
    const known = depths.filter((d) => d !== undefined);
    const figures = {
      ...a,
      unexpected5xx: statuses.unexpected5xx(),
      cycles,
      submitted: book.jobs.size,
      queuedAtKill: known.length ? `${Math.min(...known)}-${Math.max(...known)} (mean ${Math.round(known.reduce((x, y) => x + y, 0) / known.length)})` : '-',
      drainMs,
      wallMs: Date.now() - started,
    };
    say(`cycles: ${cycles} × ${perCycle} new jobs (delete, target 20-100 ms, job_concurrency ${concurrency}); jobs queued at each kill (dsr_queue_depth): ${figures.queuedAtKill}`);
    say(`submitted ${figures.submitted}, accepted ${a.accepted}, final ${a.final}, lost ${a.lost}, stuck ${a.stuck}, run twice ${a.runTwice} (at-least-once across a kill ${a.runTwiceAllowed}, violations ${a.runTwiceViolations}), re-run after seen final ${a.rerunAfterFinal}, final status flipped ${a.flipped}`);
    say(`final drain after the last restart: ${(drainMs / 1000).toFixed(1)} s; wall ${(figures.wallMs / 1000).toFixed(1)} s`);
    if (a.lostIds.length) say(`lost ids (first 5): ${a.lostIds.slice(0, 5).join(', ')}`);
    for (const v of (a.violations ?? []).slice(0, 5)) say(`run-twice violation: ${JSON.stringify(v)}`);
    return {
      figures,
      statuses,
      goals: [
        { goal: '0 lost', value: a.lost, met: a.lost === 0 },
        { goal: '0 stuck', value: a.stuck, met: a.stuck === 0 },
        { goal: '0 unexpected 5xx', value: figures.unexpected5xx, met: figures.unexpected5xx === 0 },
        { goal: 'run twice only across a kill (at-least-once)', value: a.runTwiceViolations, met: a.runTwiceViolations === 0 && a.rerunAfterFinal === 0 },
      ],
    };
  } finally {
    await client.close();
    await target.close();
  }
}

/** dsr_queue_depth from the service's /metrics (jobs accepted, not yet started), or undefined. */
async function depthOf(client, url) {
  const res = await client.call('GET', `${url}/metrics`, { timeoutMs: 2000 });
  if (res.status !== 200 || typeof res.text !== 'string') return undefined;
  const line = res.text.split('\n').find((l) => l.startsWith('dsr_queue_depth '));
  return line ? Number(line.split(' ')[1]) : undefined;
}
