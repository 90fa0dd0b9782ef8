// A target API that only waits: every GET answers `[]` after `?ms=` milliseconds (0 by default),
// so a job against it is bound by latency, not by CPU (the service scaling and memory cases).
// It records when the first request carrying each `?job=` value arrived (epoch ms), to time a job
// from its POST to its first byte at the target. Prints {"port": N} once listening; exits on SIGTERM.
//   GET /<anything>?ms=50&job=<id>   [] after 50 ms
//   GET /arrivals                    {"<id>": <first arrival, epoch ms>, ...}, then forgets them
//   GET /counters                    {"requests": N, "pending": N}
import { createServer } from 'node:http';
import { serveForParent } from './child-server.mjs';

const arrivals = new Map();
let requests = 0;
let pending = 0;
const now = () => performance.timeOrigin + performance.now();

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/arrivals' || url.pathname === '/counters') {
    const body = JSON.stringify(url.pathname === '/arrivals' ? Object.fromEntries(arrivals) : { requests, pending });
    if (url.pathname === '/arrivals') arrivals.clear();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    return;
  }
  requests++;
  const job = url.searchParams.get('job');
  if (job !== null && !arrivals.has(job)) arrivals.set(job, now());
  const ms = Number(url.searchParams.get('ms') ?? 0);
  pending++;
  const answer = () => {
    pending--;
    if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 }).end('[]');
  };
  const timer = setTimeout(answer, ms);
  // A request the agent gives up on (shutdown) must not keep a timer for minutes.
  res.once('close', () => {
    if (!res.writableEnded) {
      clearTimeout(timer);
      pending--;
    }
  });
  req.resume();
});
server.headersTimeout = 0;
server.requestTimeout = 0;
serveForParent(server);
