import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ProxyReport, RoutingSnapshot } from '../core/protocol.js';
import { sendError } from './errors.js';
import { eqi, Forward, type ForwardOwner, isProxyHeader } from './forward.js';
import { type Route, RouteTable } from './routing.js';
import { readSnapshotCache, writeSnapshotCache } from './snapshot.js';
import { originOf, Upstream, type UpstreamOwner } from './upstream.js';

export interface ProxyOptions {
  host: string;
  /** 0 picks a free port; read it from listen() or `port`. */
  port: number;
  proxyId: string;
  logger: Logger;
  /** Each applied snapshot is written here (atomically) and loaded by listen() when present. */
  snapshotCacheFile?: string;
  /** One JSON line per request through the logger (info). Default false. */
  accessLog?: boolean;
  /** Default 3000. A connect failure ejects the instance and retries elsewhere. */
  upstreamConnectTimeoutMs?: number;
  /** Time for an instance to send response headers; then 504 NINES_E_UPSTREAM_TIMEOUT. Default 60000. */
  upstreamHeadersTimeoutMs?: number;
  /** Longest silence inside a response body before the client connection is cut. Default 300000; 0 off. */
  upstreamBodyTimeoutMs?: number;
  /** close(): how long in-flight requests get before their connections are cut. Default 5000. */
  shutdownGraceMs?: number;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/**
 * The data plane: an HTTP/1.1 reverse proxy on node:http with one undici Pool per instance. It routes by
 * host and path prefix, balances round-robin over instances that are ready and up, checks their health,
 * ejects ones it cannot connect to, retries what is safe to retry, and drains: an instance the snapshot
 * marks `draining` takes no new request, and once its in-flight ones finished the proxy closes its
 * connections to it and reports it `drained` (the controller's cue to stop the app).
 */
// biome-ignore lint/suspicious/noShadowRestrictedNames: `Proxy` is the public name of the data plane (shadows the ES Proxy only inside this module).
export class Proxy implements UpstreamOwner, ForwardOwner {
  readonly logger: Logger;
  readonly proxyId: string;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly onDone: ((f: Forward) => void) | null;
  closing = false;

  private readonly opts: ProxyOptions;
  private readonly server: Server;
  private table: RouteTable = new RouteTable([], new Map());
  /** Instances of the applied snapshot, in snapshot order. */
  private upstreams = new Map<string, Upstream>();
  /** Removed from the snapshot, still finishing in-flight requests or closing their pool. */
  private readonly retired = new Set<Upstream>();
  private appliedVersion = 0;
  private applied = false;
  private listeners: ((r: ProxyReport) => void)[] = [];
  private reportScheduled = false;
  private boundPort = 0;
  private closed: Promise<void> | null = null;
  private cacheJson: string | null = null;
  private cacheWriting: Promise<void> | null = null;
  private readonly idPrefix = randomBytes(4).toString('hex');
  private idSeq = 0;

  constructor(opts: ProxyOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    this.proxyId = opts.proxyId;
    this.connectTimeoutMs = opts.upstreamConnectTimeoutMs ?? 3000;
    this.headersTimeoutMs = opts.upstreamHeadersTimeoutMs ?? 60_000;
    this.bodyTimeoutMs = opts.upstreamBodyTimeoutMs ?? 300_000;
    this.onDone = opts.accessLog === true ? (f) => this.logAccess(f) : null;
    this.server = createServer(
      {
        // Slow clients: complete headers within 20 s, a whole request (body included) within 5 min.
        headersTimeout: 20_000,
        requestTimeout: 300_000,
        // Longer than the usual client/LB idle timeouts (60 s), so the client closes first, not us.
        keepAliveTimeout: 65_000,
        noDelay: true,
      },
      (req, res) => this.handle(req, res),
    );
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (socket.writable && !socket.destroyed && err.code !== 'ECONNRESET') {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      } else socket.destroy();
    });
  }

  get port(): number {
    return this.boundPort;
  }

  /** Loads the cached snapshot (when configured and nothing was applied yet), then listens. */
  async listen(): Promise<{ port: number }> {
    const file = this.opts.snapshotCacheFile;
    if (file !== undefined && !this.applied) {
      try {
        const cached = await readSnapshotCache(file);
        if (cached !== undefined && !this.applied) {
          this.logger.info({ version: cached.version, file }, 'proxy: serving the cached routing snapshot');
          this.applySnapshot(cached, false);
        }
      } catch (err) {
        this.logger.warn({ err, file }, 'proxy: ignoring an unreadable snapshot cache');
      }
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    this.logger.info(
      { host: this.opts.host, port: this.boundPort, proxyId: this.proxyId },
      'proxy: listening',
    );
    return { port: this.boundPort };
  }

  /**
   * Takes effect synchronously. A snapshot older than the applied one is ignored, the same version
   * again is a no-op; instances keep their pool and health state across snapshots (matched by id).
   */
  applySnapshot(s: RoutingSnapshot, persist = true): void {
    if (this.closed !== null) return;
    if (this.applied && s.version <= this.appliedVersion) {
      if (s.version < this.appliedVersion) {
        this.logger.debug(
          { version: s.version, applied: this.appliedVersion },
          'proxy: stale snapshot ignored',
        );
      }
      return;
    }
    const next = new Map<string, Upstream>();
    for (const svc of s.services) {
      for (const inst of svc.instances) {
        if (next.has(inst.id)) continue;
        let u = this.upstreams.get(inst.id);
        if (u !== undefined && u.origin !== originOf(inst.address, inst.port)) {
          this.retire(u);
          u = undefined;
        }
        if (u === undefined) u = new Upstream(this, inst, svc.health);
        else u.update(inst.state, svc.health);
        next.set(inst.id, u);
      }
    }
    for (const [id, u] of this.upstreams) {
      if (!next.has(id)) this.retire(u);
    }
    this.upstreams = next;
    this.table = new RouteTable(s.services, next);
    this.appliedVersion = s.version;
    this.applied = true;
    this.logger.info(
      { version: s.version, services: s.services.length, instances: next.size },
      'proxy: routing snapshot applied',
    );
    if (persist && this.opts.snapshotCacheFile !== undefined) this.persist(JSON.stringify(s));
    this.upstreamChanged();
  }

  report(): ProxyReport {
    const instances = [];
    for (const u of this.upstreams.values()) instances.push(u.status());
    return { proxyId: this.proxyId, appliedVersion: this.appliedVersion, instances };
  }

  /** Called (coalesced, after the current tick) when a snapshot was applied or an up/drained flag flipped. */
  onReportChange(cb: (r: ProxyReport) => void): () => void {
    this.listeners.push(cb);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== cb);
    };
  }

  /** Stops accepting, lets in-flight requests finish (up to shutdownGraceMs), closes every pool. */
  close(): Promise<void> {
    if (this.closed === null) this.closed = this.doClose();
    return this.closed;
  }

  // ---- UpstreamOwner ----------------------------------------------------------------------------

  upstreamChanged(): void {
    if (this.reportScheduled) return;
    this.reportScheduled = true;
    setImmediate(() => this.emitReport());
  }

  // ---- the request path ------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const startedAt = this.onDone === null ? 0 : performance.now();
    // One pass over the raw headers: copy what goes upstream, note what routing needs.
    const raw = req.rawHeaders;
    const headers: string[] = [];
    let host = '';
    let xff: string | undefined;
    let requestId: string | undefined;
    let connection: string | undefined;
    let hasBody = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      switch (name.length) {
        case 2:
          if (eqi(name, 'te')) continue;
          break;
        case 4:
          if (eqi(name, 'host')) host = value;
          break;
        case 6:
          if (eqi(name, 'expect')) continue; // node answered 100-continue already
          break;
        case 7:
          if (eqi(name, 'trailer') || eqi(name, 'upgrade')) continue;
          break;
        case 10:
          if (eqi(name, 'connection')) {
            connection = value;
            continue;
          }
          if (eqi(name, 'keep-alive')) continue;
          break;
        case 12:
          if (eqi(name, 'x-request-id')) requestId = value;
          break;
        case 14:
          if (value !== '0' && eqi(name, 'content-length') && Number(value) > 0) hasBody = true;
          break;
        case 15:
          if (eqi(name, 'x-forwarded-for')) {
            xff = xff === undefined ? value : `${xff}, ${value}`;
            continue;
          }
          break;
        case 16:
          if (eqi(name, 'x-forwarded-host')) continue;
          break;
        case 17:
          if (eqi(name, 'transfer-encoding')) {
            hasBody = true;
            continue;
          }
          if (eqi(name, 'x-forwarded-proto')) continue;
          break;
      }
      if (isProxyHeader(name)) continue;
      headers.push(name, value);
    }
    if (connection !== undefined) dropConnectionTokens(headers, connection);
    const ip = req.socket.remoteAddress ?? '';
    headers.push('x-forwarded-for', xff === undefined ? ip : `${xff}, ${ip}`, 'x-forwarded-proto', 'http');
    if (host !== '') headers.push('x-forwarded-host', host);
    if (requestId === undefined) {
      requestId = `${this.idPrefix}-${(++this.idSeq).toString(36)}`;
      headers.push('x-request-id', requestId);
    }

    const url = req.url!;
    const route = this.table.match(host, url);
    if (route === null) {
      this.reject(req, res, 'NINES_E_NO_ROUTE', requestId, null, startedAt);
      return;
    }
    const upstream = route.pick(null);
    if (upstream === null) {
      this.reject(req, res, 'NINES_E_NO_HEALTHY_UPSTREAM', requestId, route, startedAt);
      return;
    }
    if (this.closing) res.shouldKeepAlive = false;
    const method = req.method!;
    new Forward(
      this,
      req,
      res,
      route,
      upstream,
      { path: url, method, headers, body: hasBody ? req : null },
      requestId,
      hasBody,
      !hasBody && IDEMPOTENT.has(method),
      startedAt,
    ).start();
  }

  private reject(
    req: IncomingMessage,
    res: ServerResponse,
    code: 'NINES_E_NO_ROUTE' | 'NINES_E_NO_HEALTHY_UPSTREAM',
    requestId: string,
    route: Route | null,
    startedAt: number,
  ): void {
    if (this.closing) res.shouldKeepAlive = false;
    sendError(res, code, requestId);
    if (this.onDone !== null) {
      this.logger.info(
        {
          reqId: requestId,
          method: req.method,
          url: req.url,
          host: req.headers.host,
          status: res.statusCode,
          service: route?.name,
          code,
          ms: round(performance.now() - startedAt),
        },
        'access',
      );
    }
  }

  private logAccess(f: Forward): void {
    const req = f.req;
    this.logger.info(
      {
        reqId: f.requestId,
        method: req.method,
        url: req.url,
        host: req.headers.host,
        status: f.statusCode,
        service: f.route.name,
        instance: f.upstream.id,
        attempts: f.attempts,
        ms: round(performance.now() - f.startedAt),
        ...(f.failure === -1 ? {} : { failure: f.failure }),
      },
      'access',
    );
  }

  // ---- state -----------------------------------------------------------------------------------

  private retire(u: Upstream): void {
    u.remove();
    if (!u.drained) this.retired.add(u);
  }

  private emitReport(): void {
    this.reportScheduled = false;
    for (const u of this.retired) if (u.drained) this.retired.delete(u);
    if (this.listeners.length === 0) return;
    const r = this.report();
    for (const cb of this.listeners) {
      try {
        cb(r);
      } catch (err) {
        this.logger.error({ err }, 'proxy: report listener threw');
      }
    }
  }

  private persist(json: string): void {
    this.cacheJson = json;
    if (this.cacheWriting === null) this.cacheWriting = this.flushCache();
  }

  private async flushCache(): Promise<void> {
    const file = this.opts.snapshotCacheFile!;
    while (this.cacheJson !== null) {
      const json = this.cacheJson;
      this.cacheJson = null;
      try {
        await writeSnapshotCache(file, json);
      } catch (err) {
        this.logger.warn({ err, file }, 'proxy: could not write the snapshot cache');
      }
    }
    this.cacheWriting = null;
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    const server = this.server;
    if (server.listening) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), this.opts.shutdownGraceMs ?? 5000);
      // Connections that become idle after their last response are closed too (Connection: close).
      await closed;
      clearTimeout(grace);
    }
    const all = [...this.upstreams.values(), ...this.retired];
    await Promise.all(all.map((u) => u.destroy()));
    this.retired.clear();
    if (this.cacheWriting !== null) await this.cacheWriting;
    this.listeners = [];
    this.logger.info({ proxyId: this.proxyId }, 'proxy: closed');
  }
}

/** `Connection: close, X-Foo` also makes X-Foo hop-by-hop. Rare: only then is the array filtered. */
function dropConnectionTokens(headers: string[], connection: string): void {
  const tokens = connection
    .toLowerCase()
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '' && t !== 'close' && t !== 'keep-alive');
  if (tokens.length === 0) return;
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (tokens.includes(headers[i]!.toLowerCase())) headers.splice(i, 2);
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
