// Scenario token: brute force on POST /api/v1/token. First a legitimate burst (50 correct requests at
// once: none may be slowed), then 2,000 wrong client secrets for the real client_id from 127.0.0.1,
// 20 at a time. Then the right secret, from the attacked address and from another one (127.0.0.2):
// the README says failures are throttled per client IP and per client_id, correct requests never.
// Last, informative only: the attack spread over 10 addresses, then the right secret from a fresh one.
// From the attacked address a 429 is right (the lock is answered before the secret is compared, or
// the answer would tell the attacker which guess was right), so only the other address is a goal.
import { join } from 'node:path';
import { CLIENT_ID, Statuses, Tally, fetchToken, fmtMs, makeClient, pool, startService, startTarget, writeServiceConfig } from './lib.mjs';

export const name = 'token';
export const title = 'token endpoint brute force (2,000 wrong client secrets)';

const WRONG = 2000;

export async function run({ cli, dir, say }) {
  const target = await startTarget({ delayMs: [1, 5] });
  const configPath = writeServiceConfig(dir, { targetUrl: target.url });
  const attacker = makeClient({ connections: 20 });
  const other = makeClient({ connections: 2, localAddress: '127.0.0.2' });
  const statuses = new Statuses();
  let svc;
  try {
    svc = await startService({ cli, configPath, dataDir: join(dir, 'data'), logFile: join(dir, 'service.log') });

    const burst = new Tally();
    await Promise.all(Array.from({ length: 50 }, async () => {
      const r = await fetchToken(attacker, svc.url);
      burst.add(r.status);
      statuses.add('POST /api/v1/token (legitimate burst)', r);
    }));

    const t0 = performance.now();
    const wrong = new Tally();
    const retryAfters = [];
    await pool(Array.from({ length: WRONG }, (_, i) => i), 20, async (i) => {
      const r = await fetchToken(attacker, svc.url, `wrong-secret-${i}`);
      wrong.add(r.status);
      statuses.add('POST /api/v1/token (wrong secret)', r);
      if (r.status === 429) retryAfters.push(Number(r.headers?.['retry-after']));
    });
    const attackMs = performance.now() - t0;

    const sameAddr = await fetchToken(attacker, svc.url);
    statuses.add('POST /api/v1/token (right secret, attacked address)', sameAddr);
    const otherAddr = await fetchToken(other, svc.url);
    statuses.add('POST /api/v1/token (right secret, 127.0.0.2)', otherAddr);
    const label = (r) => `${r.status}${r.headers?.['retry-after'] ? ` (Retry-After ${r.headers['retry-after']} s)` : ''}`;

    // Informative: the same attack spread over 10 addresses (10 guesses each) passes the per-IP
    // limit and so trips the per-client_id lock, which then refuses the right secret from anywhere.
    const spread = new Tally();
    await Promise.all(Array.from({ length: 10 }, async (_, k) => {
      const c = makeClient({ connections: 1, localAddress: `127.0.0.${10 + k}` });
      for (let i = 0; i < 10; i++) {
        const r = await fetchToken(c, svc.url, `spread-${k}-${i}`);
        spread.add(r.status);
        statuses.add('POST /api/v1/token (wrong secret, 10 addresses)', r);
      }
      await c.close();
    }));
    const third = makeClient({ connections: 1, localAddress: '127.0.0.3' });
    const afterSpread = await fetchToken(third, svc.url);
    await third.close();
    statuses.add('POST /api/v1/token (right secret, 127.0.0.3, after the spread attack)', afterSpread);

    const refused = wrong.get(429);
    const compared = wrong.get(401);
    const figures = {
      unexpected5xx: statuses.unexpected5xx(),
      attempts: WRONG,
      answered401: compared,
      answered429: refused,
      attackMs,
      maxRetryAfterS: retryAfters.length ? Math.max(...retryAfters) : undefined,
      rightSameAddress: sameAddr.status,
      rightOtherAddress: otherAddr.status,
      rightAfterSpread: afterSpread.status,
    };
    say(`legitimate burst of 50 correct requests: ${burst}`);
    say(`${WRONG} wrong secrets for client_id '${CLIENT_ID}' in ${fmtMs(attackMs)}: ${wrong} (largest Retry-After ${figures.maxRetryAfterS ?? '-'} s)`);
    say(`right secret afterwards: from the attacked address ${label(sameAddr)}; from 127.0.0.2 ${label(otherAddr)}`);
    say(`informative — 100 wrong secrets spread over 10 addresses: ${spread}; then the right secret from a fresh address: ${label(afterSpread)}`);
    return {
      figures,
      statuses,
      goals: [
        { goal: 'legitimate burst never slowed (50 × 200)', value: String(burst), met: burst.get(200) === 50 },
        { goal: 'wrong secrets throttled (≥ 95 % answered 429)', value: `${refused} × 429, ${compared} × 401`, met: refused >= WRONG * 0.95 },
        { goal: 'right secret still gets 200 (from another address)', value: label(otherAddr), met: otherAddr.status === 200 },
        { goal: '0 unexpected 5xx', value: figures.unexpected5xx, met: figures.unexpected5xx === 0 },
      ],
    };
  } finally {
    await svc?.stop(15_000);
    await attacker.close();
    await other.close();
    await target.close();
  }
}
