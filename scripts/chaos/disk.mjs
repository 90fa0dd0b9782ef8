// Scenario disk: DSR_AGENT_DATA_DIR on a 2 MiB tmpfs (journal and local reports both there). Access
// jobs (two reports each) are submitted until the disk is full and well beyond; /readyz is watched.
// Then the tmpfs is grown to 256 MiB (space freed), the service is restarted (SIGTERM, start), the
// POSTs that were refused are sent again, and every accepted job must end final — never forgotten,
// never run again after the client saw it final, never changing its final status.
// Mounting needs root, or a user namespace (`unshare -rm npm run chaos -- --only disk` works
// unprivileged where user namespaces are enabled); otherwise the scenario is skipped and says why.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT_SLACK_MS, Statuses, assess, finalPass, fmtMs, makeBook, makeClient, pollUntilFinal, startService, startTarget, submitAll, waitUntil, tokenOf, writeServiceConfig } from './lib.mjs';

export const name = 'disk';
export const title = 'full data dir (2 MiB tmpfs), space freed, restart';

const SIZE = '2m';
const JOBS = 400;
/** Submitted once the disk is full. */
const MORE = 100;

function mount(dir) {
  const hint = 'run as root, or in a user namespace: unshare -rm npm run chaos -- --only disk';
  if (process.getuid?.() !== 0) return `mounting a tmpfs needs root (${hint})`;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `mount -t tmpfs failed: ${String(err.stderr ?? err.message).trim()} (${hint})`;
  }
}

export async function run({ cli, dir, say }) {
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const why = mount(dataDir);
  if (why) return { skipped: why, goals: [] };
  const target = await startTarget({ delayMs: [20, 60], records: 2, recordBytes: 1500 });
  const configPath = writeServiceConfig(dir, { targetUrl: target.url, agent: { job_concurrency: 4 } });
  const logFile = join(dir, 'service.log');
  const client = makeClient({ connections: 32 });
  const book = makeBook();
  const statuses = new Statuses();
  const faults = [];
  let svc;
  try {
    svc = await startService({ cli, configPath, dataDir, logFile });
    let token = await tokenOf(client, svc.url);

    // Fill the disk while watching /readyz.
    const tStart = Date.now();
    let readyz503At;
    let filling = true;
    const readyLoop = (async () => {
      while (filling) {
        const r = await client.call('GET', `${svc.url}/readyz`, { timeoutMs: 2000 });
        statuses.add('GET /readyz (disk full)', r);
        if (r.status === 503 && readyz503At === undefined) readyz503At = r.at;
        await sleep(200);
      }
    })();
    // First fill the disk with running jobs' reports and journal records, then keep submitting while it is full.
    const ids = Array.from({ length: JOBS }, (_, i) => `dk-j${i}`);
    await submitAll({ client, url: svc.url, token, ids, book, statuses, type: 'access', concurrency: 8 });
    await pollUntilFinal({ client, url: svc.url, token, book, statuses, ms: 15_000 });
    const whileFull = Array.from({ length: MORE }, (_, i) => `dk-f${i}`);
    await submitAll({ client, url: svc.url, token, ids: whileFull, book, statuses, type: 'access', concurrency: 4 });
    await pollUntilFinal({ client, url: svc.url, token, book, statuses, ms: 5_000 });
    filling = false;
    await readyLoop;
    const acceptedWhileFull = book.accepted().length;
    const refused = book.pending().length;
    const finalBeforeFree = book.accepted().filter((j) => j.firstFinal !== undefined).length;
    const failedBeforeFree = book.accepted().filter((j) => j.firstFinal === 'failed').length;

    // Free space, restart.
    execFileSync('mount', ['-o', 'remount,size=256m', dataDir]);
    const tFree = Date.now();
    const readyAgain = await waitUntil(async () => (await client.call('GET', `${svc.url}/readyz`, { timeoutMs: 2000 })).status === 200, 15_000, 200);
    const readyAgainMs = readyAgain ? Date.now() - tFree : undefined;
    await sleep(2000);
    const from = Date.now();
    const stopCode = await svc.stop(40_000);
    faults.push({ from, to: Date.now() + EXIT_SLACK_MS });
    target.nextEpoch();
    svc = await startService({ cli, configPath, dataDir, logFile, port: svc.port });
    token = await tokenOf(client, svc.url);
    book.forgetStates();
    // A client honours Retry-After and sends the refused jobs again.
    await submitAll({ client, url: svc.url, token, ids: book.pending().map((j) => j.id), book, statuses, type: 'access', concurrency: 8 });
    await pollUntilFinal({ client, url: svc.url, token, book, statuses, ms: 60_000 });
    await finalPass({ client, url: svc.url, token, book, statuses });
    const a = assess(book, target.hits, faults);
    const post = statuses.routes.get('POST /api/v1/jobs');
    const figures = {
      ...a,
      unexpected5xx: statuses.unexpected5xx(),
      acceptedWhileFull,
      refused,
      queueUnavailable: post?.get('503 queue_unavailable') ?? 0,
      readyz503Ms: readyz503At !== undefined ? readyz503At - tStart : undefined,
      readyAgainMs,
      stopCode,
    };
    say(`${JOBS} access jobs (2 reports each) into a ${SIZE} tmpfs, then ${MORE} more once it was full: accepted ${acceptedWhileFull}, refused ${refused} (503 queue_unavailable ${figures.queueUnavailable}); final before space was freed ${finalBeforeFree} (failed ${failedBeforeFree})`);
    say(`/readyz 503 while full: ${readyz503At !== undefined ? `yes (${fmtMs(figures.readyz503Ms)} after the first POST)` : 'never'}; ready again ${fmtMs(readyAgainMs)} after space was freed; SIGTERM exit code ${stopCode}`);
    say(`after restart and re-sending refused jobs: accepted ${a.accepted}, final ${a.final}, accepted-then-forgotten ${a.lost}, stuck ${a.stuck}, re-run after seen final ${a.rerunAfterFinal}, final status flipped ${a.flipped}, run twice ${a.runTwice} (across the restart ${a.runTwiceAllowed}, violations ${a.runTwiceViolations})`);
    return {
      figures,
      statuses,
      goals: [
        { goal: '0 unexpected 5xx (a full disk is 503 queue_unavailable)', value: figures.unexpected5xx, met: figures.unexpected5xx === 0 },
        { goal: '/readyz 503 while the disk is full', value: readyz503At !== undefined ? 'yes' : 'never', met: readyz503At !== undefined },
        { goal: '0 accepted-then-forgotten', value: a.lost, met: a.lost === 0 },
        { goal: '0 stuck', value: a.stuck, met: a.stuck === 0 },
        { goal: '0 re-run after a final state (nor final status changed)', value: `${a.rerunAfterFinal} re-run, ${a.flipped} flipped`, met: a.rerunAfterFinal === 0 && a.flipped === 0 && a.runTwiceViolations === 0 },
      ],
    };
  } finally {
    await svc?.stop(15_000);
    await client.close();
    await target.close();
    try {
      execFileSync('umount', [dataDir], { stdio: 'pipe' });
    } catch {
      // already unmounted, or busy: the work folder's removal will say
    }
  }
}
