// The example app that `nines up` deploys: plain Node, no dependencies.
// GET / → "hello from <release> (instance <id>)", GET /healthz → "ok", graceful shutdown on SIGTERM.
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST; // unset: all interfaces, like most PaaS apps
const release = process.env.NINES_RELEASE ?? 'dev';
const instance = process.env.NINES_INSTANCE_ID ?? 'local';
const SHUTDOWN_TIMEOUT_MS = 10_000;

let shuttingDown = false;

function send(res, status, body) {
  // Once shutting down, every answer closes its connection, so that busy keep-alive clients move to
  // another instance instead of sending more requests here.
  const headers = { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) };
  if (shuttingDown) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(body);
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n');
  if (path === '/') return send(res, 200, `hello from ${release} (instance ${instance})\n`);
  if (path === '/healthz') return send(res, 200, 'ok');
  return send(res, 404, 'not found\n');
});

function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  console.log(`hello ${release}: ${signal}, finishing in-flight requests`);
  // Stop accepting; Node also closes idle keep-alive sockets here. The callback runs once every
  // connection has ended.
  server.close(() => {
    console.log(`hello ${release}: drained, exiting`);
    process.exit(0);
  });
  server.closeIdleConnections();
  setTimeout(() => {
    console.log(`hello ${release}: still busy after ${SHUTDOWN_TIMEOUT_MS} ms, exiting anyway`);
    process.exit(0);
  }, SHUTDOWN_TIMEOUT_MS).unref();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.listen(port, host, () => {
  console.log(`hello ${release} (instance ${instance}) listening on ${host ?? '*'}:${server.address().port}`);
});
