// Scenario slow: 1,000 slow clients on raw sockets while a normal client keeps submitting jobs.
// 400 drip their headers (one byte a second, never ending the header block), 300 send complete
// headers without a token and then drip a 60 kB body (under the 64 KiB limit), 300 do the same with a valid bearer token (so
// their body reaches the JSON parser). The service runs with agent.http_request_timeout_seconds = 10
// (--slow-timeout), so every slow socket must be answered 408 or closed within that time plus the
// server's 1 s check interval; the normal client must keep getting 202s.
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Statuses, Tally, assess, finalPass, fmtMs, makeBook, makeClient, pollUntilFinal, quantile, startService, startTarget, jobBody, tokenOf, writeServiceConfig } from './lib.mjs';

export const name = 'slow';
export const title = '1,000 slow clients (dripped headers and bodies) beside a normal client';

const KINDS = [
  ['header drip', 400],
  ['body drip, no token', 300],
  ['body drip, token', 300],
];

/** Open one slow socket of `kind`; resolves its record once connected. */
function openSlow(port, kind, token) {
  return new Promise((resolve) => {
    const rec = { kind, opened: Date.now(), closedAt: undefined, status: undefined, error: undefined };
    const s = connect(port, '127.0.0.1');
    rec.socket = s;
    let buf = '';
    let timer;
    s.on('connect', () => {
      const head = 'POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n';
      if (kind === 'header drip') s.write(`${head}X-Drip: `);
      else s.write(`${head}Content-Type: application/json\r\nContent-Length: 60000\r\n${kind === 'body drip, token' ? `Authorization: Bearer ${token}\r\n` : ''}\r\n{"type": `);
      timer = setInterval(() => s.writable && s.write('a'), 1000);
      resolve(rec);
    });
    s.on('data', (d) => {
      buf += d;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m && rec.status === undefined) {
        rec.status = Number(m[1]);
        rec.answeredAt = Date.now();
      }
    });
    s.on('error', (err) => {
      rec.error ??= err.code ?? err.message;
    });
    s.on('close', () => {
      clearInterval(timer);
      rec.closedAt = Date.now();
      resolve(rec);
    });
  });
}

export async function run({ cli, dir, opts, say }) {
  const timeoutS = Number(opts['slow-timeout'] ?? 10);
  const target = await startTarget({ delayMs: [5, 20] });
  const configPath = writeServiceConfig(dir, { targetUrl: target.url, agent: { job_concurrency: 4, http_request_timeout_seconds: timeoutS } });
  const client = makeClient({ connections: 4 });
  const book = makeBook();
  const statuses = new Statuses();
  const slow = [];
  let svc;
  try {
    svc = await startService({ cli, configPath, dataDir: join(dir, 'data'), logFile: join(dir, 'service.log') });
    const token = await tokenOf(client, svc.url);

    // The normal client: two loops submitting jobs until the slow sockets are done.
    let running = true;
    const latencies = [];
    let n = 0;
    const normal = Promise.all([0, 1].map(async () => {
      while (running) {
        const id = `sl-n${n++}`;
        const r = await client.call('POST', `${svc.url}/api/v1/jobs`, { token, body: jobBody(id), timeoutMs: 30_000 });
        statuses.add('POST /api/v1/jobs (normal client)', r);
        book.posted(id, r);
        latencies.push(r.ms);
        await sleep(50);
      }
    }));

    // The slow clients, opened in batches of 100.
    const t0 = Date.now();
    for (const [kind, count] of KINDS) {
      for (let i = 0; i < count; i += 100) {
        slow.push(...(await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => openSlow(svc.port, kind, token)))));
        await sleep(50);
      }
    }
    const openedMs = Date.now() - t0;
    const limitMs = timeoutS * 1000 + 5000;
    const deadline = t0 + openedMs + limitMs;
    while (Date.now() < deadline && slow.some((r) => r.closedAt === undefined)) await sleep(250);
    running = false;
    await normal;
    const stillOpen = slow.filter((r) => r.closedAt === undefined);
    for (const r of stillOpen) r.socket.destroy();

    await pollUntilFinal({ client, url: svc.url, token, book, statuses, ms: 30_000 });
    await finalPass({ client, url: svc.url, token, book, statuses });
    const a = assess(book, target.hits, []);
    const perKind = new Map(KINDS.map(([k]) => [k, new Tally()]));
    for (const r of slow) perKind.get(r.kind).add(r.closedAt === undefined ? 'still open' : r.status ? `${r.status} then closed` : r.error ? `closed (${r.error})` : 'closed, no answer');
    const lifetimes = slow.filter((r) => r.closedAt !== undefined).map((r) => r.closedAt - r.opened);
    const normalStatuses = statuses.routes.get('POST /api/v1/jobs (normal client)') ?? new Tally();
    const normalBad = normalStatuses.total() - normalStatuses.get(202);
    const figures = {
      ...a,
      unexpected5xx: statuses.unexpected5xx(),
      slowSockets: slow.length,
      slowStillOpen: stillOpen.length,
      slowLifetimeP50Ms: quantile(lifetimes, 0.5),
      slowLifetimeMaxMs: lifetimes.length ? Math.max(...lifetimes) : undefined,
      normalRequests: latencies.length,
      normalP50Ms: quantile(latencies, 0.5),
      normalP99Ms: quantile(latencies, 0.99),
      normalMaxMs: latencies.length ? Math.max(...latencies) : undefined,
    };
    say(`agent.http_request_timeout_seconds = ${timeoutS}; ${slow.length} slow sockets opened in ${fmtMs(openedMs)}`);
    for (const [kind, tally] of perKind) {
      const mine = slow.filter((r) => r.kind === kind);
      const answered = mine.filter((r) => r.answeredAt).map((r) => r.answeredAt - r.opened);
      const closed = mine.filter((r) => r.closedAt).map((r) => r.closedAt - r.opened);
      say(`  ${kind}: ${tally}; answered after p50 ${fmtMs(quantile(answered, 0.5))}, closed after p50 ${fmtMs(quantile(closed, 0.5))}`);
    }
    say(`slow socket lifetime: p50 ${fmtMs(figures.slowLifetimeP50Ms)}, max ${fmtMs(figures.slowLifetimeMaxMs)}; still open after ${limitMs / 1000} s: ${stillOpen.length}`);
    say(`normal client: ${latencies.length} POSTs, latency p50 ${fmtMs(figures.normalP50Ms)}, p99 ${fmtMs(figures.normalP99Ms)}, max ${fmtMs(figures.normalMaxMs)}; its jobs: accepted ${a.accepted}, final ${a.final}, lost ${a.lost}, stuck ${a.stuck}`);
    return {
      figures,
      statuses,
      goals: [
        { goal: `every slow socket answered 408 or closed within the timeout (+5 s)`, value: `${stillOpen.length} still open`, met: stillOpen.length === 0 },
        { goal: 'normal client gets only 202', value: `${normalBad} other answers`, met: normalBad === 0 && latencies.length > 0 },
        { goal: '0 lost, 0 stuck (normal client)', value: `${a.lost} lost, ${a.stuck} stuck`, met: a.lost === 0 && a.stuck === 0 },
        { goal: '0 unexpected 5xx', value: figures.unexpected5xx, met: figures.unexpected5xx === 0 },
      ],
    };
  } finally {
    for (const r of slow) r.socket?.destroy();
    await svc?.stop(15_000);
    await client.close();
    await target.close();
  }
}
