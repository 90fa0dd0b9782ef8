// The target API the benchmarks call, run in its own process so its CPU and memory are not the
// agent's. Prints {"port": N} once listening; exits on SIGTERM.
//   GET  /small             a small JSON array of two records (the engine throughput case)
//   GET  /slow              /small after 10 ms (a fast real API)
//   GET  /empty             [] (to tell the engine's request cost from its report cost)
//   GET  /stream?bytes=N    a JSON array of ~N bytes of 64 KiB–1 MiB objects, generated as it is sent,
//                           with backpressure, never held whole (the memory case)
//   ANY  /delay/<ms>        answers {"ok":true} after <ms> milliseconds (the service case)
import { createServer } from 'node:http';
import { makeLargeObject, makeRandom, makeRecord } from './records.mjs';

const KiB = 1024;
const rnd = makeRandom(1);
const small = Buffer.from(JSON.stringify([makeRecord(rnd, 1), { address_type: 'Home', address: { street: '191 N. Lamar', city: 'Flander', zip_code: '77070' } }]));

// 8 object shapes from 64 KiB to 1 MiB, serialised once; the stream picks among them and stamps a
// sequence number on each, so the body is generated on the fly from bounded memory.
let pool;
function objectPool() {
  if (!pool) {
    const r = makeRandom(2);
    pool = Array.from({ length: 8 }, (_, i) => {
      const size = Math.round(64 * KiB + (i / 7) * (1024 - 64) * KiB);
      return Buffer.from(JSON.stringify(makeLargeObject(r, i, size)).slice(1)); // without its '{'
    });
  }
  return pool;
}

async function stream(res, bytes) {
  const objects = objectPool();
  const pick = makeRandom(3);
  res.writeHead(200, { 'content-type': 'application/json' });
  let sent = 0;
  const write = (chunk) => {
    sent += chunk.length;
    return res.write(chunk) ? undefined : new Promise((resolve) => res.once('drain', resolve));
  };
  await write(Buffer.from('['));
  for (let seq = 0; sent < bytes; seq++) {
    if (res.destroyed) return;
    const obj = objects[Math.floor(pick() * objects.length)];
    await write(Buffer.from(`${seq ? ',' : ''}{"seq":${seq},`));
    await write(obj);
  }
  res.end(']');
}

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/small') {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': small.length });
    res.end(small);
  } else if (url.pathname === '/slow') {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': small.length });
      res.end(small);
    }, 10);
  } else if (url.pathname === '/empty') {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
    res.end('[]');
  } else if (url.pathname === '/stream') {
    stream(res, Number(url.searchParams.get('bytes') ?? 1024 * KiB)).catch(() => res.destroy());
  } else if (url.pathname.startsWith('/delay/')) {
    const ms = Number(url.pathname.slice('/delay/'.length));
    req.resume();
    req.on('end', () =>
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 11 });
        res.end('{"ok":true}');
      }, ms),
    );
  } else {
    res.writeHead(404).end();
  }
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
const stop = () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop); // the parent died
process.stdin.resume();
