// What every bench target child does with its server: keep connections alive, listen on a free port,
// print {"port"} on stdout for the parent (lib.mjs startChild), and exit on a signal or when the parent
// dies (stdin ends).
export function serveForParent(server, { keepAliveMs = 60_000 } = {}) {
  server.keepAliveTimeout = keepAliveMs;
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
}
