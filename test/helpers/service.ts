import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The built CLI, which the Dockerfile's ENTRYPOINT runs with CMD ["serve"]. */
export const CLI = join(process.cwd(), 'dist/cli.js');

/** A `dsr-agent serve` child process. */
export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output: () => string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Spawn `node dist/cli.js serve --config <file>` (or `node <args>`) and wait until /healthz answers (unless `wait` is false). */
export async function startService(configPath: string, env: Record<string, string>, opts: { wait?: boolean; args?: string[] } = {}): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, opts.args ?? [CLI, 'serve', '--config', configPath], {
    env: { PATH: process.env.PATH!, LOGLEVEL: 'INFO', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const url = `http://127.0.0.1:${port}`;
  const svc: ServiceProcess = {
    url,
    child,
    output: () => out,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  if (opts.wait === false) return svc;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`service exited ${child.exitCode}:\n${out}`);
    if (i > 200) throw new Error(`service not healthy after 20 s:\n${out}`);
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) return svc;
    await sleep(100);
  }
}

/** Client credentials grant → bearer header. */
export async function bearer(url: string, clientId: string, clientSecret: string): Promise<Record<string, string>> {
  const res = await fetch(`${url}/api/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }).toString(),
  });
  if (!res.ok) throw new Error(`token: ${res.status} ${await res.text()}`);
  const { access_token } = (await res.json()) as { access_token: string };
  return { authorization: `Bearer ${access_token}` };
}

/** POST a job; returns the response JSON and status. */
export async function submit(url: string, auth: Record<string, string>, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/api/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

/** Poll GET /api/v1/jobs/:id until final or `timeoutMs`. */
export async function waitFinal(url: string, auth: Record<string, string>, id: string, timeoutMs = 20_000): Promise<any> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const job = await fetch(`${url}/api/v1/jobs/${id}`, { headers: auth }).then((r) => r.json() as Promise<any>);
    if (!['queued', 'running'].includes(job.status) || Date.now() > until) return job;
    await sleep(100);
  }
}
