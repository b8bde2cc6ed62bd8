/**
 * Runs a proxy in front of one or more upstream ports for a load test (wrk/autocannon), e.g.
 *   taskset -c 1 node dist/proxy/bench.js 18081 18080        # listen on 18081, upstream 127.0.0.1:18080
 * Every feature is on: active health checks (1 s), retries, passive ejection, least-connections,
 * metrics (admin listener on BENCH_ADMIN_PORT, default any free port), and the access log when
 * BENCH_ACCESS_LOG_FILE (a file) or BENCH_ACCESS_LOG=1 (the logger) is set.
 * BENCH_NODE_HTTP=1 turns the HTTP/1.1 fast path (h1.ts) off.
 * Exits on SIGINT/SIGTERM, or after BENCH_MAX_SECONDS (default 120).
 */
import { pino } from 'pino';
import { Proxy as NinesProxy } from './proxy.js';

const [listenPort, ...upstreamPorts] = process.argv.slice(2).map(Number);
if (!listenPort || upstreamPorts.length === 0) {
  console.error('usage: node bench.js <listen-port> <upstream-port>...');
  process.exit(2);
}
const proxy = new NinesProxy({
  host: '127.0.0.1',
  port: listenPort,
  proxyId: 'bench',
  logger: pino({ level: 'warn' }),
  accessLog: process.env.BENCH_ACCESS_LOG === '1',
  ...(process.env.BENCH_ACCESS_LOG_FILE ? { accessLogFile: process.env.BENCH_ACCESS_LOG_FILE } : {}),
  adminPort: Number(process.env.BENCH_ADMIN_PORT ?? 0),
  // BENCH_NODE_HTTP=1: node's http server for every request (A/B against the fast path).
  http1FastPath: process.env.BENCH_NODE_HTTP !== '1',
});
proxy.applySnapshot({
  version: 1,
  services: [
    {
      name: 'bench',
      hosts: [],
      pathPrefix: '/',
      mode: 'live',
      health: { path: '/', intervalMs: 1000, timeoutMs: 1000, rise: 2, fall: 3 },
      instances: upstreamPorts.map((port, i) => ({
        id: `u${i}`,
        address: '127.0.0.1',
        port,
        state: 'ready' as const,
        weight: 1,
        release: 'bench',
      })),
    },
  ],
});
await proxy.listen();
console.log(`proxy listening on ${proxy.port} (metrics on ${proxy.adminPort})`);
const stop = async () => {
  await proxy.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setTimeout(stop, Number(process.env.BENCH_MAX_SECONDS ?? 120) * 1000).unref();
