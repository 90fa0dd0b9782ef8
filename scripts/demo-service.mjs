// Part of `npm run demo`: start `dsr-agent serve` on the embedded default (example config, JSONFile
// credentials, Local storage, no Redis) and walk the job API as the README's curl session does.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** Returns true when every step worked. */
export async function walkJobApi({ cli, config, env }) {
  const port = Number(process.env.DEMO_AGENT_PORT ?? (await freePort()));
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [cli, 'serve', '--config', config], {
    env: { ...env, PORT: String(port), DSR_AGENT_DATA_DIR: 'data/demo' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    for (let i = 0; ; i++) {
      if (i > 100) throw new Error('the service did not become healthy in 10 s');
      if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) break;
      await sleep(100);
    }
    console.log(`$ dsr-agent serve --config config/example.json   # listening on ${base}`);

    console.log(`\n$ curl -s -u datagrail:demo-client-secret-change-me -d grant_type=client_credentials ${base}/api/v1/token`);
    const tokenRes = await fetch(`${base}/api/v1/token`, {
      method: 'POST',
      headers: {
        authorization: 'Basic ' + Buffer.from('datagrail:demo-client-secret-change-me').toString('base64'),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials',
    });
    const token = await tokenRes.json();
    console.log(JSON.stringify({ ...token, access_token: token.access_token?.slice(0, 24) + '…' }));
    if (!tokenRes.ok) return false;
    const auth = { authorization: `Bearer ${token.access_token}` };

    const job = { type: 'access', identifiers: { email: 'peter@initech.com' } };
    console.log(`\n$ curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\\n    -d '${JSON.stringify(job)}' ${base}/api/v1/jobs`);
    const accepted = await fetch(`${base}/api/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(job) });
    const { id, status } = await accepted.json();
    console.log(JSON.stringify({ id, status }), `(HTTP ${accepted.status})`);

    console.log(`\n$ curl -s -H "Authorization: Bearer $TOKEN" ${base}/api/v1/jobs/${id}`);
    let done;
    for (let i = 0; i < 300; i++) {
      done = await (await fetch(`${base}/api/v1/jobs/${id}`, { headers: auth })).json();
      if (!['queued', 'running'].includes(done.status)) break;
      await sleep(100);
    }
    console.log(JSON.stringify(done, null, 2));

    const first = done.connections?.flatMap((c) => c.reports ?? [])[0];
    if (first) {
      console.log(`\n$ cat ${first}`);
      process.stdout.write(readFileSync(first, 'utf8'));
    }
    return done.status === 'succeeded' && Boolean(first);
  } finally {
    child.kill('SIGTERM');
    const code = await exited;
    console.log(`\n(service stopped on SIGTERM, exit code ${code})`);
  }
}
