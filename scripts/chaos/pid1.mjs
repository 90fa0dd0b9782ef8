// Scenario pid1: `kill -9` of a serve that runs as pid 1 on its host name, as a container's entrypoint
// does, then a restart on the same data dir — again as pid 1 with the same host name, which is what a
// container restart (Docker --restart, a Kubernetes container restart in the same pod) gives. The
// data-dir lock must see that its holder is gone although pid and host match. Runs the service under
// `unshare --pid --fork --kill-child --mount-proc` (root, or a user namespace); skipped otherwise.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT_SLACK_MS, Statuses, assess, finalPass, freePort, makeBook, makeClient, pollUntilFinal, startService, startTarget, submitAll, tokenOf, waitUntil, writeServiceConfig } from './lib.mjs';

export const name = 'pid1';
export const title = 'kill -9 of serve as pid 1 (a container), restarted as pid 1 on the same data dir';

const WRAP = ['unshare', '--pid', '--fork', '--kill-child', '--mount-proc'];
const JOBS = 50;

export async function run({ cli, dir, say }) {
  const probe = spawnSync(WRAP[0], [...WRAP.slice(1), 'true'], { stdio: 'pipe' });
  if (probe.error || probe.status !== 0) {
    return { skipped: `cannot run a process as pid 1 here (${probe.error?.code ?? String(probe.stderr).trim()}); needs root or a user namespace (unshare -r)`, goals: [] };
  }
  const target = await startTarget({ delayMs: [50, 150] });
  const configPath = writeServiceConfig(dir, { targetUrl: target.url, agent: { job_concurrency: 4 } });
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'service.log');
  const client = makeClient({ connections: 16 });
  const book = makeBook();
  const statuses = new Statuses();
  const port = await freePort();
  let svc;
  try {
    svc = await startService({ cli, configPath, dataDir, logFile, port, wrap: WRAP });
    let token = await tokenOf(client, svc.url);
    const holder = readFileSync(join(dataDir, '.lock'), 'utf8');
    await submitAll({ client, url: svc.url, token, ids: Array.from({ length: JOBS }, (_, i) => `p1-j${i}`), book, statuses });
    await sleep(300);
    const from = Date.now();
    await svc.kill9(); // unshare dies; --kill-child sends SIGKILL to the service
    await waitUntil(async () => typeof (await client.call('GET', `${svc.url}/healthz`, { timeoutMs: 500 })).status !== 'number', 5000, 50);
    const faults = [{ from, to: Date.now() + EXIT_SLACK_MS }];
    target.nextEpoch();
    let restartError;
    try {
      svc = await startService({ cli, configPath, dataDir, logFile, port, wrap: WRAP });
    } catch (err) {
      svc = undefined;
      restartError = String(err.message).split('\n').find((l) => /error|exited/i.test(l) && !/^serve exited/.test(l)) ?? String(err.message).split('\n')[0];
    }
    say(`lock held by ${holder.trim()}`);
    if (restartError) {
      say(`restart as pid 1 after kill -9: FAILED — ${restartError}`);
      say(`${book.accepted().length} accepted jobs wait in the journal until someone deletes ${join('DSR_AGENT_DATA_DIR', '.lock')}`);
      return {
        figures: { accepted: book.accepted().length, restarted: false },
        statuses,
        goals: [{ goal: 'restarts after kill -9 as pid 1 on the same host (a container restart)', value: `refused: ${/\[([A-Z_]+)\]/.exec(restartError)?.[1] ?? restartError.slice(0, 80)}`, met: false }],
      };
    }
    token = await tokenOf(client, svc.url);
    book.forgetStates();
    await pollUntilFinal({ client, url: svc.url, token, book, statuses, ms: 30_000 });
    await finalPass({ client, url: svc.url, token, book, statuses });
    const a = assess(book, target.hits, faults);
    say(`restart as pid 1 after kill -9: served; accepted ${a.accepted}, final ${a.final}, lost ${a.lost}, stuck ${a.stuck}, run twice ${a.runTwice} (across the kill ${a.runTwiceAllowed}, violations ${a.runTwiceViolations})`);
    return {
      figures: { ...a, unexpected5xx: statuses.unexpected5xx(), restarted: true },
      statuses,
      goals: [
        { goal: 'restarts after kill -9 as pid 1 on the same host (a container restart)', value: 'served', met: true },
        { goal: '0 lost, 0 stuck', value: `${a.lost} lost, ${a.stuck} stuck`, met: a.lost === 0 && a.stuck === 0 },
        { goal: 'run twice only across the kill', value: a.runTwiceViolations, met: a.runTwiceViolations === 0 && a.rerunAfterFinal === 0 },
      ],
    };
  } finally {
    await svc?.kill9(); // unshare ignores SIGTERM while it waits; --kill-child takes the service with it
    await client.close();
    await target.close();
  }
}
