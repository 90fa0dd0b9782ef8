// The target API the benchmarks call, run in its own process so its CPU and memory are not the
// agent's. Prints {"port": N} once listening; exits on SIGTERM.
//   GET  /small             a small JSON array of two records (the engine throughput case)
//   GET  /slow              /small after 10 ms (a fast real API)
//   GET  /empty             [] (to tell the engine's request cost from its report cost)
//   GET  /stream?bytes=N    a JSON array of ~N bytes of 64 KiB–1 MiB objects, generated as it is sent,
//                           with backpressure, never held whole (the memory case)
//   ANY  /delay/<ms>        answers {"ok":true} after <ms> milliseconds (the service case)
//   POST /login             {"access_token": "<random>", "expires_in": 3600} (the envelope case)
//   GET  /records?bytes=N&page=P&size=S
//                           with `Authorization: Bearer <a token from /login>` (else 401): page P
//                           (from 1) of a sequence of ~1 KiB records that is ~N bytes as one array,
//                           in an envelope: {"code":200,"status":"success","response":[…S records…],"total":T}
//   GET  /records-bare?bytes=N
//                           the same record sequence as one bare JSON array (same records, same
//                           bytes minus the envelopes)
//   GET  /counters          {"logins", "pages", "unauthorized", "records_bytes", "bare_bytes"}: what
//                           the routes above served so far (bodies' bytes), for the envelope case
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { makeLargeObject, makeRandom, makeRecord, makeSizedRecord } from './records.mjs';
import { serveForParent } from './child-server.mjs';

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

// The envelope case's records: 1,024 records of 896–1,152 bytes (makeSizedRecord), serialised once.
// Record i of the sequence is pool entry hash(i) stamped with "seq": i, so any page can be generated
// on its own and page P of /records holds exactly the bytes of the same stretch of /records-bare.
const RECORD_POOL = 1024;
let records;
function recordPool() {
  if (!records) {
    const r = makeRandom(4);
    const text = [];
    const bytes = [];
    for (let k = 0; k < RECORD_POOL; k++) {
      const t = JSON.stringify(makeSizedRecord(r, k, 896 + Math.floor(r() * 257))).slice(1); // without its '{'
      text.push(t);
      bytes.push(Buffer.byteLength(t));
    }
    records = { text, bytes };
  }
  return records;
}
const poolIndex = (i) => (Math.imul(i, 0x9e3779b1) >>> 0) % RECORD_POOL;
const recordText = (pool, i) => `{"seq":${i},${pool.text[poolIndex(i)]}`;
const recordBytes = (pool, i) => 8 + String(i).length + pool.bytes[poolIndex(i)];

// How many records make a ~N-byte bare array: records are added while the array is shorter than N.
const totals = new Map();
function totalRecords(bytes) {
  if (!totals.has(bytes)) {
    const pool = recordPool();
    let size = 1; // '['
    let i = 0;
    for (; size < bytes; i++) size += (i ? 1 : 0) + recordBytes(pool, i);
    totals.set(bytes, i);
  }
  return totals.get(bytes);
}

const counters = { logins: 0, pages: 0, unauthorized: 0, records_bytes: 0, bare_bytes: 0 };
const tokens = new Set();

/** Records [from, to) between `head` and `tail`, written in ~64 KiB pieces with backpressure. */
async function sendRecords(res, counter, from, to, head, tail) {
  const pool = recordPool();
  res.writeHead(200, { 'content-type': 'application/json' });
  const write = (text) => {
    counters[counter] += Buffer.byteLength(text);
    return res.write(text) ? undefined : new Promise((resolve) => res.once('drain', resolve));
  };
  let piece = head;
  for (let i = from; i < to; i++) {
    if (res.destroyed) return;
    piece += (i > from ? ',' : '') + recordText(pool, i);
    if (piece.length >= 64 * KiB) {
      await write(piece);
      piece = '';
    }
  }
  piece += tail;
  counters[counter] += Buffer.byteLength(piece);
  res.end(piece);
}

function login(req, res) {
  req.resume();
  req.on('end', () => {
    counters.logins++;
    const token = randomBytes(24).toString('base64url');
    tokens.add(token);
    const body = JSON.stringify({ access_token: token, expires_in: 3600 });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

function recordsPage(req, res, url) {
  const auth = req.headers.authorization ?? '';
  if (!auth.startsWith('Bearer ') || !tokens.has(auth.slice('Bearer '.length))) {
    counters.unauthorized++;
    res.writeHead(401, { 'content-type': 'application/json' }).end('{"code":401,"status":"error","response":{"message":"invalid token"}}');
    return;
  }
  const total = totalRecords(Number(url.searchParams.get('bytes') ?? 1024 * KiB));
  const page = Number(url.searchParams.get('page') ?? 1);
  const size = Number(url.searchParams.get('size') ?? 100);
  if (!Number.isInteger(page) || page < 1 || !Number.isInteger(size) || size < 1) {
    res.writeHead(400, { 'content-type': 'application/json' }).end('{"code":400,"status":"error","response":{"message":"page and size must be positive integers"}}');
    return;
  }
  counters.pages++;
  const from = Math.min(total, (page - 1) * size);
  const to = Math.min(total, from + size);
  return sendRecords(res, 'records_bytes', from, to, '{"code":200,"status":"success","response":[', `],"total":${total}}`);
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
  } else if (url.pathname === '/login' && req.method === 'POST') {
    login(req, res);
  } else if (url.pathname === '/records') {
    recordsPage(req, res, url)?.catch(() => res.destroy());
  } else if (url.pathname === '/records-bare') {
    const total = totalRecords(Number(url.searchParams.get('bytes') ?? 1024 * KiB));
    sendRecords(res, 'bare_bytes', 0, total, '[', ']').catch(() => res.destroy());
  } else if (url.pathname === '/counters') {
    const body = JSON.stringify(counters);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
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
serveForParent(server);
