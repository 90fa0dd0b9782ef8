// The memory case's target, in its own process so its CPU and memory are not the agent's. Prints
// {"port": N} once listening; exits on SIGTERM or when stdin ends (the parent died).
//   GET /objects?bytes=N&object_bytes=S   a bare JSON array of ~N bytes of ~S-byte objects
//                                          (bench/memory-body.mjs), streamed with backpressure
import { createServer } from 'node:http';
import { bodyPieces } from './memory-body.mjs';
import { serveForParent } from './child-server.mjs';

async function send(res, bytes, objectBytes) {
  res.writeHead(200, { 'content-type': 'application/json' });
  for (const piece of bodyPieces(bytes, objectBytes)) {
    if (res.destroyed) return;
    if (!res.write(piece)) await new Promise((resolve) => res.once('drain', resolve));
  }
  res.end();
}

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const bytes = Number(url.searchParams.get('bytes'));
  const objectBytes = Number(url.searchParams.get('object_bytes'));
  if (url.pathname !== '/objects' || !(bytes > 0) || !(objectBytes > 0)) {
    res.writeHead(404).end();
    return;
  }
  send(res, bytes, objectBytes).catch(() => res.destroy());
});
serveForParent(server);
