import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The built CLI, which the Dockerfile's ENTRYPOINT runs with CMD ["serve"]. */
export const CLI = join(process.cwd(), 'dist/cli.js');

/** A `dsr-agent serve` child process. */
export interface ServiceProcess {
  /** http://127.0.0.1:<port>, the port the service bound (throws before it has logged "dsr-agent serving"). */
  readonly url: string;
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output: () => string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** The port in a "dsr-agent serving" log line, or undefined when `line` is another line. */
function servingPort(line: string): number | undefined {
  if (!line.includes('dsr-agent serving')) return undefined;
  try {
    const { msg, address } = JSON.parse(line) as { msg?: string; address?: string };
    return msg === 'dsr-agent serving' && address ? Number(new URL(address).port) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Spawn `node dist/cli.js serve --config <file>` (or `node <args>`) on PORT=0 unless `env` sets PORT, and,
 * unless `wait` is false, resolve once it logged "dsr-agent serving" with the address it bound. The service
 * binds the port itself: no port is picked here and released for another process to take first.
 */
export async function startService(configPath: string, env: Record<string, string>, opts: { wait?: boolean; args?: string[] } = {}): Promise<ServiceProcess> {
  const child = spawn(process.execPath, opts.args ?? [CLI, 'serve', '--config', configPath], {
    env: { PATH: process.env.PATH!, LOGLEVEL: 'INFO', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let pending = '';
  let port: number | undefined;
  let onListening: (() => void) | undefined;
  child.stdout!.on('data', (d) => {
    out += d;
    pending += d;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      port ??= servingPort(line);
      if (port !== undefined) onListening?.();
    }
  });
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const svc: ServiceProcess = {
    get url() {
      if (port === undefined) throw new Error(`the service has not logged "dsr-agent serving" yet:\n${out}`);
      return `http://127.0.0.1:${port}`;
    },
    child,
    output: () => out,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  if (opts.wait === false) return svc;
  const listening = new Promise<void>((resolve) => (onListening = resolve));
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    listening.then(() => 'listening' as const),
    exited.then((code) => `exited ${code}`),
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve('not listening after 20 s'), 20_000))),
  ]);
  clearTimeout(timer);
  if (outcome !== 'listening') {
    child.kill('SIGKILL');
    throw new Error(`service ${outcome}:\n${out}`);
  }
  return svc;
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
