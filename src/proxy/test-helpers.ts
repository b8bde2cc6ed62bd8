/** Helpers for the proxy's tests: real upstream servers, snapshots, a keep-alive client. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { Pool } from 'undici';
import type { HealthCheckSpec, RouteInstance, RouteService, RoutingSnapshot } from '../core/protocol.js';
import { Proxy as NinesProxy, type ProxyOptions } from './proxy.js';

export const silentLogger = pino({ level: 'silent' });

export interface Backend {
  name: string;
  port: number;
  server: Server;
  /** /healthz answers 200 while true, 503 otherwise. */
  healthy: boolean;
  /** Requests other than health checks. */
  hits: number;
  healthChecks: number;
  lastHeaders: IncomingMessage['headers'] | null;
  close(): Promise<void>;
}

export type BackendHandler = (req: IncomingMessage, res: ServerResponse, b: Backend) => void;

/** Default answer: JSON with the backend's name, the method, url and the headers it received. */
export function echo(req: IncomingMessage, res: ServerResponse, b: Backend): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.stringify({
      name: b.name,
      method: req.method,
      url: req.url,
      headers: req.headers,
      bodyLength: Buffer.concat(chunks).length,
    });
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-backend': b.name,
    });
    res.end(body);
  });
}

export async function startBackend(name: string, handler: BackendHandler = echo): Promise<Backend> {
  const b: Backend = {
    name,
    port: 0,
    server: createServer((req, res) => {
      if (req.url === '/healthz') {
        b.healthChecks++;
        res.writeHead(b.healthy ? 200 : 503);
        res.end();
        return;
      }
      b.hits++;
      b.lastHeaders = req.headers;
      handler(req, res, b);
    }),
    healthy: true,
    hits: 0,
    healthChecks: 0,
    lastHeaders: null,
    close: async () => {
      if (!b.server.listening) return;
      const closed = new Promise<void>((resolve) => b.server.close(() => resolve()));
      b.server.closeAllConnections();
      await closed;
    },
  };
  await new Promise<void>((resolve) => b.server.listen(0, '127.0.0.1', resolve));
  b.port = (b.server.address() as AddressInfo).port;
  return b;
}

export const fastHealth: HealthCheckSpec = {
  path: '/healthz',
  intervalMs: 10_000,
  timeoutMs: 500,
  rise: 2,
  fall: 2,
};

export type SvcInput = Partial<Omit<RouteService, 'instances'>> & {
  instances: { id: string; port: number; state?: RouteInstance['state']; weight?: number }[];
};

export function snapshot(version: number, services: SvcInput[]): RoutingSnapshot {
  return {
    version,
    services: services.map(({ instances, ...s }, i) => ({
      ...s,
      name: s.name ?? `svc${i}`,
      hosts: s.hosts ?? [],
      pathPrefix: s.pathPrefix ?? '/',
      mode: s.mode ?? 'live',
      health: s.health ?? fastHealth,
      instances: instances.map((inst) => ({
        id: inst.id,
        address: '127.0.0.1',
        port: inst.port,
        state: inst.state ?? 'ready',
        weight: inst.weight ?? 1,
        release: 'v1',
      })),
    })),
  };
}

/** Everything a test opens is closed by t.after, last opened first. */
export function testEnv(t: TestContext) {
  const closers: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    for (const c of closers.reverse()) await c();
  });
  return {
    async backend(name: string, handler?: BackendHandler): Promise<Backend> {
      const b = await startBackend(name, handler);
      closers.push(() => b.close());
      return b;
    },
    async proxy(opts: Partial<ProxyOptions> = {}): Promise<{ proxy: NinesProxy; client: TestClient }> {
      const proxy = new NinesProxy({
        host: '127.0.0.1',
        port: 0,
        proxyId: 'p1',
        logger: silentLogger,
        ...opts,
      });
      closers.push(() => proxy.close());
      await proxy.listen();
      const client = new TestClient(proxy.port);
      closers.push(() => client.close());
      return { proxy, client };
    },
    defer(fn: () => Promise<unknown>): void {
      closers.push(fn);
    },
  };
}

/** What `echo` answers. */
export interface EchoBody {
  name: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  bodyLength: number;
  [k: string]: unknown;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** A keep-alive client to the proxy. */
export class TestClient {
  readonly pool: Pool;
  constructor(port: number, connections = 64) {
    this.pool = new Pool(`http://127.0.0.1:${port}`, { connections });
  }
  async req(
    path: string,
    opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
  ): Promise<Answer> {
    const res = await this.pool.request({
      path,
      method: (opts.method ?? 'GET') as 'GET',
      headers: opts.headers ?? {},
      body: opts.body ?? null,
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers as Answer['headers'], text };
  }
  async json(
    path: string,
    opts: Parameters<TestClient['req']>[1] = {},
  ): Promise<{ status: number; body: EchoBody }> {
    const a = await this.req(path, opts);
    return { status: a.status, body: JSON.parse(a.text) };
  }
  close(): Promise<void> {
    return this.pool.destroy();
  }
}

export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function connectionCount(server: Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
}
