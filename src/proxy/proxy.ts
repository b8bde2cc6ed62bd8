import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, BlockList, isIPv4, isIPv6, Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext } from 'node:tls';
import { type Logger, pino } from 'pino';
import type { ProxyReport, RouteService, RoutingSnapshot } from '../core/protocol.js';
import { AccessLogFile } from './accesslog.js';
import { errorStatus, type ProxyErrorCode, rawError, sendError, sendModeError } from './errors.js';
import { eqi, Forward, type ForwardOwner, isProxyHeader } from './forward.js';
import { H1Server, type ProxyRequest, type ProxyResponse } from './h1.js';
import { CLASS_LABELS, classIndex, Exposition, esc, LATENCY_BUCKETS } from './metrics.js';
import { type Held, MODE_NAMES, Mode, Route, RouteTable } from './routing.js';
import { readSnapshotCache, writeSnapshotCache } from './snapshot.js';
import { originOf, Upstream, type UpstreamOwner } from './upstream.js';
import { WsTunnel } from './ws.js';

export interface TlsCertificate {
  certFile: string;
  keyFile: string;
  /** Host names (exact or `*.example.com`) this certificate serves; default: its DNS subjectAltNames. */
  hosts?: string[];
}

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
  /** One JSON line per request to this file (its own asynchronous pino destination); implies accessLog. */
  accessLogFile?: string;
  /** Default 1000 (`nines proxy --connect-timeout`). A connect failure ejects the instance and retries elsewhere. */
  upstreamConnectTimeoutMs?: number;
  /** Time for an instance to send response headers; then 504 NINES_E_UPSTREAM_TIMEOUT. Default 60000. */
  upstreamHeadersTimeoutMs?: number;
  /** Longest silence inside a response body before the client connection is cut. Default 300000; 0 off. */
  upstreamBodyTimeoutMs?: number;
  /** Whole exchange: 504 before the answer started, a cut connection after. Default 0 (off). */
  upstreamTotalTimeoutMs?: number;
  /** close(): how long in-flight requests get before their connections are cut. Default 5000. */
  shutdownGraceMs?: number;
  /**
   * close(): keep-alive connections get `Connection: close` on their next response; ones still idle
   * after this are closed (closing an idle connection at once races a request the client is sending).
   * Default 1000.
   */
  closeIdleAfterMs?: number;
  /** A client must send its request headers within this time (slowloris), else 408. Default 20000. */
  clientHeadersTimeoutMs?: number;
  /** A client must send its whole request (body included) within this time. Default 300000. */
  clientRequestTimeoutMs?: number;
  /** Idle keep-alive client connections are closed after this. Default 65000. */
  clientIdleTimeoutMs?: number;
  /** Request line + headers limit; larger gets 431 NINES_E_HEADERS_TOO_LARGE. Default 16384. */
  maxHeaderBytes?: number;
  /** Request body limit; larger gets 413 NINES_E_PAYLOAD_TOO_LARGE. Default 0 (no limit). */
  maxBodyBytes?: number;
  /**
   * Clients whose X-Forwarded-For/-Proto/-Host and Forwarded headers are kept (appended to); from any
   * other address they are replaced. CIDRs or addresses. Default loopback only.
   */
  trustedNetworks?: string[];
  /** Answered 200 by the proxy itself on the main listener, in every mode. Default `/_nines/health`. */
  healthPath?: string;
  /**
   * Serve plain HTTP/1.1 requests without a body on the proxy's own parser (h1.ts); anything else is
   * handed to node's http server. Default true; false: node's server for everything (A/B benchmarks).
   */
  http1FastPath?: boolean;
  /** Admin listener (GET /metrics in Prometheus format, GET /health). Off unless a port (0: any) is set. */
  adminPort?: number;
  /** Default: `host`. */
  adminHost?: string;
  /** TLS termination; the first certificate is the default for clients without (matching) SNI. */
  tls?: {
    certificates: TlsCertificate[];
    /** Reload when a PEM file changes (polled every second). Default true. */
    watch?: boolean;
  };
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);
const kClient = Symbol('nines.client');
/** Per client connection, computed on its first request: its address as headers want it, and trust. */
interface ClientInfo {
  ip: string;
  /** The `for=` node of a Forwarded element (IPv6 quoted and bracketed). */
  node: string;
  trusted: boolean;
}
type ClientSocket = Socket & { [kClient]?: ClientInfo };
const HEALTH_BODY = Buffer.from('{"status":"ok"}');

/**
 * The data plane: an HTTP/1.1 + WebSocket reverse proxy on node:http with one keep-alive `UpstreamPool` (client.ts) per instance.
 * It routes by host (exact or `*.` wildcard) and path prefix, balances (least-connections by default,
 * round-robin, weighted; slow start), checks health actively (HTTP or TCP) and passively (ejection
 * with a growing time, capped share, optional fail-open panic), retries what is safe within a budget,
 * applies service modes (live, read-only, maintenance, pause), and drains: an instance the snapshot
 * marks `draining` or `maintenance` takes no new request, and once its in-flight ones (WebSockets
 * included, closed with 1001 after their own timeout) finished the proxy closes its connections to it
 * and reports it `drained` (the controller's cue to stop the app).
 */
// biome-ignore lint/suspicious/noShadowRestrictedNames: `Proxy` is the public name of the data plane (shadows the ES Proxy only inside this module).
export class Proxy implements UpstreamOwner, ForwardOwner {
  readonly logger: Logger;
  readonly proxyId: string;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly totalTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly onDone: ((f: Forward) => void) | null;
  closing = false;

  private readonly opts: ProxyOptions;
  private readonly server: Server;
  /** The fast HTTP/1.1 path, or null when node's server handles every connection. */
  private readonly h1: H1Server | null = null;
  private admin: Server | null = null;
  private readonly accessLogger: Logger;
  private readonly accessDest: AccessLogFile | null = null;
  private readonly proxyIdJson: string;
  private readonly scheme: string;
  private readonly healthPath: string;
  private readonly trust: BlockList | null;
  private table: RouteTable = new RouteTable([]);
  /** Services of the applied snapshot by name; a Route outlives snapshots (counters, held requests). */
  private routes = new Map<string, Route>();
  /** Instances of the applied snapshot, in snapshot order. */
  private upstreams = new Map<string, Upstream>();
  /** Removed from the snapshot, still finishing in-flight requests or closing their pool. */
  private readonly retired = new Set<Upstream>();
  private appliedVersion = 0;
  private applied = false;
  private listeners: ((r: ProxyReport) => void)[] = [];
  private reportScheduled = false;
  private boundPort = 0;
  private adminBoundPort = 0;
  private closed: Promise<void> | null = null;
  private cacheJson: string | null = null;
  private cacheWriting: Promise<void> | null = null;
  private readonly idPrefix = randomBytes(4).toString('hex');
  private idSeq = 0;
  private clientConnections = 0;
  private rejectedNoRoute = 0;
  private tlsContexts = new Map<string, SecureContext>();
  private tlsWildcards: [string, SecureContext][] = [];
  private tlsDefault: SecureContext | null = null;
  private tlsReloads = 0;
  private tlsWatched: string[] = [];
  private tlsReloadTimer: NodeJS.Timeout | null = null;

  constructor(opts: ProxyOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    this.proxyId = opts.proxyId;
    this.proxyIdJson = JSON.stringify(opts.proxyId);
    this.connectTimeoutMs = opts.upstreamConnectTimeoutMs ?? 1000;
    this.headersTimeoutMs = opts.upstreamHeadersTimeoutMs ?? 60_000;
    this.bodyTimeoutMs = opts.upstreamBodyTimeoutMs ?? 300_000;
    this.totalTimeoutMs = opts.upstreamTotalTimeoutMs ?? 0;
    this.maxBodyBytes = opts.maxBodyBytes ?? 0;
    this.healthPath = opts.healthPath ?? '/_nines/health';
    this.trust = buildTrust(opts.trustedNetworks ?? ['127.0.0.0/8', '::1/128']);
    if (opts.accessLogFile !== undefined) {
      this.accessDest = new AccessLogFile(opts.accessLogFile);
      this.accessLogger = pino({ base: { proxy: opts.proxyId } }, this.accessDest);
    } else this.accessLogger = this.logger;
    this.onDone =
      opts.accessLog === true || opts.accessLogFile !== undefined ? (f) => this.logAccess(f) : null;
    const headersTimeout = opts.clientHeadersTimeoutMs ?? 20_000;
    const serverOpts: ServerOptions = {
      headersTimeout,
      requestTimeout: Math.max(headersTimeout, opts.clientRequestTimeoutMs ?? 300_000),
      // Longer than the usual client/LB idle timeouts (60 s), so the client closes first, not us.
      keepAliveTimeout: opts.clientIdleTimeoutMs ?? 65_000,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
      maxHeaderSize: opts.maxHeaderBytes ?? 16_384,
      noDelay: true,
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    if (opts.tls !== undefined) {
      this.scheme = 'https';
      this.loadTls();
      if (this.tlsDefault === null) throw new Error('proxy: tls needs at least one certificate');
      this.server = createHttpsServer(
        {
          ...serverOpts,
          // A SecureContext object is accepted here at runtime (it is what tls.Server keeps internally).
          SNICallback: (name, cb) => cb(null, this.contextFor(name) ?? undefined),
          ...this.defaultPem(),
        },
        handler,
      );
      if (opts.tls.watch !== false) this.watchTls();
    } else {
      this.scheme = 'http';
      this.server = createServer(serverOpts, handler);
    }
    if (opts.http1FastPath !== false) this.h1 = this.takeConnections(headersTimeout, serverOpts);
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
    this.server.on('connection', (socket: Socket) => {
      this.clientConnections++;
      socket.once('close', () => this.clientConnections--);
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (!socket.writable || socket.destroyed || err.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      if (err.code === 'HPE_HEADER_OVERFLOW') socket.end(rawError('NINES_E_HEADERS_TOO_LARGE'));
      else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      } else socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
  }

  /**
   * Puts the fast path (h1.ts) in front of node's connection listener, which keeps the connections
   * the fast path hands over. (http.Server and https.Server register it first, on 'connection' and
   * 'secureConnection' respectively.)
   */
  private takeConnections(headersTimeoutMs: number, o: ServerOptions): H1Server | null {
    const event = this.opts.tls !== undefined ? 'secureConnection' : 'connection';
    const server = this.server;
    const nodeListener = server.listeners(event)[0] as ((socket: Socket) => void) | undefined;
    if (nodeListener === undefined || nodeListener.name !== 'connectionListener') {
      this.logger.warn('proxy: node http server internals differ, serving everything with node:http');
      return null;
    }
    server.removeListener(event, nodeListener);
    const h1 = new H1Server(
      {
        headersTimeoutMs,
        keepAliveTimeoutMs: o.keepAliveTimeout ?? 65_000,
        maxHeaderBytes: o.maxHeaderSize ?? 16_384,
        checkIntervalMs: o.connectionsCheckingInterval ?? 1000,
      },
      (ex) => this.handle(ex, ex),
      (socket) => nodeListener.call(server, socket),
    );
    server.prependListener(event, (socket: Socket) => h1.accept(socket));
    return h1;
  }

  get port(): number {
    return this.boundPort;
  }

  get adminPort(): number {
    return this.adminBoundPort;
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
    await listenOn(this.server, this.opts.port, this.opts.host);
    this.boundPort = (this.server.address() as AddressInfo).port;
    if (this.opts.adminPort !== undefined) {
      this.admin = createServer((req, res) => this.handleAdmin(req, res));
      await listenOn(this.admin, this.opts.adminPort, this.opts.adminHost ?? this.opts.host);
      this.adminBoundPort = (this.admin.address() as AddressInfo).port;
    }
    this.logger.info(
      { host: this.opts.host, port: this.boundPort, adminPort: this.adminBoundPort, proxyId: this.proxyId },
      'proxy: listening',
    );
    return { port: this.boundPort };
  }

  /**
   * Takes effect synchronously. A snapshot older than the applied one is ignored, the same version
   * again is a no-op; instances keep their pool and health state across snapshots (matched by id),
   * services their counters and held requests (matched by name).
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
    const fresh: Upstream[] = [];
    const routes = new Map<string, Route>();
    const entries: { svc: RouteService; route: Route }[] = [];
    for (const svc of s.services) {
      const list: Upstream[] = [];
      for (const inst of svc.instances) {
        let u = next.get(inst.id);
        if (u === undefined) {
          u = this.upstreams.get(inst.id);
          if (u !== undefined && u.origin !== originOf(inst.address, inst.port)) {
            this.retire(u);
            u = undefined;
          }
          if (u === undefined) {
            u = new Upstream(this, inst, svc.health);
            fresh.push(u);
          } else u.update(inst, svc.health);
          next.set(inst.id, u);
        }
        if (!list.includes(u)) list.push(u);
      }
      if (routes.has(svc.name)) continue;
      const route = this.routes.get(svc.name) ?? new Route(svc.name, this.logger);
      route.update(svc, list);
      for (const u of list) if (u.route === null || !routes.has(u.route.name)) u.route = route;
      routes.set(svc.name, route);
      // A preview group is reached through its service (header) or its own hosts, never as a catch-all.
      if (svc.previewOf === undefined || svc.hosts.length > 0) entries.push({ svc, route });
    }
    for (const r of routes.values()) r.preview = null;
    for (const svc of s.services) {
      if (svc.previewOf === undefined) continue;
      const main = routes.get(svc.previewOf);
      if (main !== undefined) main.preview = routes.get(svc.name) ?? null;
    }
    for (const u of fresh) if (u.routable) u.startRamp();
    for (const [id, u] of this.upstreams) {
      if (!next.has(id)) this.retire(u);
    }
    const old = this.routes;
    this.upstreams = next;
    this.routes = routes;
    this.table = new RouteTable(entries);
    this.appliedVersion = s.version;
    this.applied = true;
    this.logger.info(
      { version: s.version, services: s.services.length, instances: next.size },
      'proxy: routing snapshot applied',
    );
    // Requests held by a paused service go again once it is not paused (or gone).
    for (const [name, r] of old) {
      if (r.held.size === 0) continue;
      const now = routes.get(name);
      if (now !== undefined && now.mode === Mode.Pause) continue;
      this.releaseHeld(r);
    }
    if (persist && this.opts.snapshotCacheFile !== undefined) this.persist(JSON.stringify(s));
    this.upstreamChanged();
  }

  report(): ProxyReport {
    const instances = [];
    for (const u of this.upstreams.values()) instances.push(u.status());
    const services = [];
    for (const r of this.routes.values()) {
      let requests = 0;
      for (let c = 0; c < 5; c++) requests += r.servedByClass[c]! + r.localByClass[c]!;
      const counts = Array.from(r.servedLatency.counts, (n, i) => n + r.localLatency.counts[i]!);
      services.push({
        name: r.name,
        requests,
        failed: r.servedByClass[4]! + r.localByClass[4]!,
        latency: {
          le: LATENCY_BUCKETS,
          counts,
          sumSeconds: (r.servedLatency.sumMs + r.localLatency.sumMs) / 1000,
          count: r.servedLatency.count + r.localLatency.count,
        },
      });
    }
    return { proxyId: this.proxyId, appliedVersion: this.appliedVersion, instances, services };
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

  /**
   * Re-reads every certificate and key. New connections get the new ones; established connections
   * keep theirs (nothing is dropped). A file that does not load keeps the previous certificate.
   */
  reloadTls(): void {
    if (this.opts.tls === undefined) return;
    this.loadTls();
    const pem = this.defaultPem();
    if (pem !== null) (this.server as unknown as { setSecureContext(o: object): void }).setSecureContext(pem);
    this.tlsReloads++;
    this.logger.info({ certificates: this.opts.tls.certificates.length }, 'proxy: TLS certificates reloaded');
  }

  /** Prometheus text exposition of the proxy's metrics. */
  metrics(): string {
    const x = new Exposition();
    const inst: [Route, Upstream][] = [];
    for (const r of this.routes.values()) for (const u of r.instances) inst.push([r, u]);
    const lbl = (r: Route, u: Upstream) => `service="${esc(r.name)}",instance="${esc(u.id)}"`;

    x.family('nines_proxy_requests_total', 'counter', 'Answers by service, instance and status class.');
    for (const [r, u] of inst) {
      for (let c = 0; c < 5; c++) {
        x.sample('nines_proxy_requests_total', `${lbl(r, u)},class="${CLASS_LABELS[c]}"`, u.byClass[c]!);
      }
    }
    for (const r of this.routes.values()) {
      for (let c = 0; c < 5; c++) {
        const v = r.localByClass[c]!;
        if (v > 0 || c === 4) {
          x.sample(
            'nines_proxy_requests_total',
            `service="${esc(r.name)}",instance="",class="${CLASS_LABELS[c]}"`,
            v,
          );
        }
      }
    }
    x.family(
      'nines_proxy_request_duration_seconds',
      'histogram',
      'Time from request to the end of the answer, by service and instance (instance "": answered by the proxy).',
    );
    for (const [r, u] of inst) x.histogram('nines_proxy_request_duration_seconds', lbl(r, u), u.latency);
    for (const r of this.routes.values()) {
      x.histogram(
        'nines_proxy_request_duration_seconds',
        `service="${esc(r.name)}",instance=""`,
        r.localLatency,
      );
    }
    x.family('nines_proxy_upstream_connect_errors_total', 'counter', 'Failed connections to an instance.');
    for (const [r, u] of inst)
      x.sample('nines_proxy_upstream_connect_errors_total', lbl(r, u), u.connectErrors);
    x.family('nines_proxy_ejections_total', 'counter', 'Passive ejections of an instance.');
    for (const [r, u] of inst) x.sample('nines_proxy_ejections_total', lbl(r, u), u.ejectionsTotal);
    x.family(
      'nines_proxy_upstream_active_requests',
      'gauge',
      'In flight to an instance (WebSockets included).',
    );
    for (const [r, u] of inst) x.sample('nines_proxy_upstream_active_requests', lbl(r, u), u.inflight);
    x.family('nines_proxy_upstream_websockets', 'gauge', 'Open WebSockets to an instance.');
    for (const [r, u] of inst) x.sample('nines_proxy_upstream_websockets', lbl(r, u), u.websockets);
    x.family('nines_proxy_upstream_up', 'gauge', '1 when the instance is healthy and not ejected.');
    for (const [r, u] of inst) x.sample('nines_proxy_upstream_up', lbl(r, u), u.up ? 1 : 0);
    x.family('nines_proxy_upstream_ejected', 'gauge', '1 while the instance is passively ejected.');
    for (const [r, u] of inst)
      x.sample('nines_proxy_upstream_ejected', lbl(r, u), u.ejectedUntil !== 0 ? 1 : 0);
    x.family(
      'nines_proxy_upstream_state',
      'gauge',
      'Routing state of the instance from the snapshot (1 = current).',
    );
    for (const [r, u] of inst) {
      for (const st of ['ready', 'draining', 'maintenance']) {
        x.sample('nines_proxy_upstream_state', `${lbl(r, u)},state="${st}"`, u.state === st ? 1 : 0);
      }
    }
    x.family('nines_proxy_upstream_weight', 'gauge', 'Configured balancing weight of the instance.');
    for (const [r, u] of inst) x.sample('nines_proxy_upstream_weight', lbl(r, u), u.weight);
    x.family('nines_proxy_retries_total', 'counter', 'Requests retried on another instance.');
    for (const r of this.routes.values())
      x.sample('nines_proxy_retries_total', `service="${esc(r.name)}"`, r.retries);
    x.family('nines_proxy_retries_denied_total', 'counter', 'Retries refused by the retry budget.');
    for (const r of this.routes.values()) {
      x.sample('nines_proxy_retries_denied_total', `service="${esc(r.name)}"`, r.retriesDenied);
    }
    x.family('nines_proxy_service_active_requests', 'gauge', 'Requests in flight through the service.');
    for (const r of this.routes.values()) {
      x.sample('nines_proxy_service_active_requests', `service="${esc(r.name)}"`, r.active);
    }
    x.family('nines_proxy_service_held_requests', 'gauge', 'Requests held while the service is paused.');
    for (const r of this.routes.values()) {
      x.sample('nines_proxy_service_held_requests', `service="${esc(r.name)}"`, r.held.size);
    }
    x.family('nines_proxy_service_mode', 'gauge', 'Mode of the service (1 = current).');
    for (const r of this.routes.values()) {
      for (let m = 0; m < MODE_NAMES.length; m++) {
        x.sample(
          'nines_proxy_service_mode',
          `service="${esc(r.name)}",mode="${MODE_NAMES[m]}"`,
          r.mode === m ? 1 : 0,
        );
      }
    }
    x.family('nines_proxy_service_panic', 'gauge', '1 while the service routes fail-open (too few healthy).');
    for (const r of this.routes.values())
      x.sample('nines_proxy_service_panic', `service="${esc(r.name)}"`, r.panic ? 1 : 0);
    x.family('nines_proxy_service_panics_total', 'counter', 'Times the service entered panic.');
    for (const r of this.routes.values())
      x.sample('nines_proxy_service_panics_total', `service="${esc(r.name)}"`, r.panics);
    x.family('nines_proxy_no_route_total', 'counter', 'Requests that matched no service (404).');
    x.sample('nines_proxy_no_route_total', '', this.rejectedNoRoute);
    x.family('nines_proxy_client_connections', 'gauge', 'Open client connections.');
    x.sample('nines_proxy_client_connections', '', this.clientConnections);
    x.family(
      'nines_proxy_client_handoffs_total',
      'counter',
      'Client connections handed from the fast HTTP/1.1 path to node http (a body, Expect, Upgrade, HTTP/1.0, an invalid request).',
    );
    x.sample('nines_proxy_client_handoffs_total', '', this.h1?.handoffs ?? 0);
    x.family('nines_proxy_snapshot_version', 'gauge', 'Version of the applied routing snapshot.');
    x.sample('nines_proxy_snapshot_version', '', this.appliedVersion);
    x.family('nines_proxy_tls_reloads_total', 'counter', 'TLS certificate reloads.');
    x.sample('nines_proxy_tls_reloads_total', '', this.tlsReloads);
    return x.text();
  }

  // ---- UpstreamOwner ----------------------------------------------------------------------------

  upstreamChanged(): void {
    if (this.reportScheduled) return;
    this.reportScheduled = true;
    setImmediate(() => this.emitReport());
  }

  // ---- the request path ------------------------------------------------------------------------

  private handle(req: ProxyRequest, res: ProxyResponse): void {
    const startedAt = performance.now();
    const url = req.url!;
    if (url.charCodeAt(1) === 95 /* _ */ && url === this.healthPath) {
      res.writeHead(200, [
        'content-type',
        'application/json',
        'content-length',
        '15',
        'cache-control',
        'no-store',
      ]);
      res.end(HEALTH_BODY);
      return;
    }
    const client = (req.socket as ClientSocket)[kClient] ?? this.clientInfo(req.socket as ClientSocket);
    const trusted = client.trusted;
    // One pass over the raw headers: copy what goes upstream, note what routing needs.
    const raw = req.rawHeaders;
    const headers: string[] = [];
    let host = '';
    let xff: string | undefined;
    let xfh: string | undefined;
    let xfp: string | undefined;
    let fwd: string | undefined;
    let requestId: string | undefined;
    let connection: string | undefined;
    let contentLength = -1;
    let hasBody = false;
    let preview = false;
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
        case 9:
          if (eqi(name, 'forwarded')) {
            if (trusted) fwd = fwd === undefined ? value : `${fwd}, ${value}`;
            continue;
          }
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
          if (value !== '0' && eqi(name, 'content-length')) {
            contentLength = Number(value);
            if (contentLength > 0) hasBody = true;
          }
          break;
        case 15:
          if (eqi(name, 'x-forwarded-for')) {
            if (trusted) xff = xff === undefined ? value : `${xff}, ${value}`;
            continue;
          }
          if (eqi(name, 'x-nines-preview')) {
            preview = true;
            continue;
          }
          break;
        case 16:
          if (eqi(name, 'x-forwarded-host')) {
            if (trusted && xfh === undefined) xfh = value;
            continue;
          }
          break;
        case 17:
          if (eqi(name, 'transfer-encoding')) {
            hasBody = true;
            continue;
          }
          if (eqi(name, 'x-forwarded-proto')) {
            if (trusted && xfp === undefined) xfp = value;
            continue;
          }
          break;
      }
      if (isProxyHeader(name)) continue;
      headers.push(name, value);
    }
    if (connection !== undefined) dropConnectionTokens(headers, connection);
    const ip = client.ip;
    const forwarded = `for=${client.node};host="${host.includes('"') || host.includes('\\') ? host.replace(/["\\]/g, '') : host}";proto=${this.scheme}`;
    headers.push(
      'x-forwarded-for',
      xff === undefined ? ip : `${xff}, ${ip}`,
      'x-forwarded-proto',
      xfp ?? this.scheme,
      'forwarded',
      fwd === undefined ? forwarded : `${fwd}, ${forwarded}`,
    );
    if (xfh !== undefined || host !== '') headers.push('x-forwarded-host', xfh ?? host);
    if (requestId === undefined) {
      requestId = `${this.idPrefix}-${(++this.idSeq).toString(36)}`;
      headers.push('x-request-id', requestId);
    }

    let route = this.table.match(host, url);
    if (preview && route !== null && route.preview !== null) route = route.preview;
    if (route === null) {
      this.rejectedNoRoute++;
      this.reject(req, res, 'NINES_E_NO_ROUTE', requestId, null, startedAt);
      return;
    }
    const method = req.method!;
    if (route.mode !== Mode.Live && this.applyMode(route, req, res, method, requestId, startedAt)) return;
    if (this.maxBodyBytes > 0 && contentLength > this.maxBodyBytes) {
      res.shouldKeepAlive = false; // the body is not read
      this.reject(req, res, 'NINES_E_PAYLOAD_TOO_LARGE', requestId, route, startedAt);
      return;
    }
    const upstream = route.pick(null);
    if (upstream === null || upstream.pool === null) {
      this.reject(req, res, 'NINES_E_NO_HEALTHY_UPSTREAM', requestId, route, startedAt);
      return;
    }
    if (this.closing) res.shouldKeepAlive = false;
    new Forward(
      this,
      req,
      res,
      route,
      upstream,
      method,
      url,
      headers,
      host,
      requestId,
      hasBody,
      !hasBody && IDEMPOTENT.has(method),
      startedAt,
    ).start();
  }

  /** A service not in `live` mode: answers or holds the request (true), or lets it pass (false). */
  private applyMode(
    route: Route,
    req: ProxyRequest,
    res: ProxyResponse,
    method: string,
    requestId: string,
    startedAt: number,
  ): boolean {
    switch (route.mode) {
      case Mode.ReadOnly:
        if (SAFE.has(method)) return false;
        if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) {
          res.shouldKeepAlive = false; // the body is not read
        }
        sendModeError(req, res, 'NINES_E_READ_ONLY', requestId, route.retryAfter, null, null);
        this.local(route, req, res, 'NINES_E_READ_ONLY', requestId, startedAt);
        return true;
      case Mode.Maintenance:
        if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) {
          res.shouldKeepAlive = false;
        }
        sendModeError(
          req,
          res,
          'NINES_E_MAINTENANCE',
          requestId,
          route.retryAfter,
          route.maintenanceMessage,
          route.maintenanceHtml,
        );
        this.local(route, req, res, 'NINES_E_MAINTENANCE', requestId, startedAt);
        return true;
      case Mode.Pause: {
        const held: Held = {
          req,
          res,
          timer: setTimeout(() => this.pauseExpired(route, held, requestId, startedAt), route.pauseTimeoutMs),
        };
        route.held.add(held);
        res.once('close', () => {
          if (route.held.delete(held)) clearTimeout(held.timer);
        });
        return true;
      }
      default:
        return false;
    }
  }

  private pauseExpired(route: Route, held: Held, requestId: string, startedAt: number): void {
    if (!route.held.delete(held)) return;
    const { req, res } = held;
    if (res.destroyed || res.headersSent) return;
    res.shouldKeepAlive = false;
    sendModeError(req, res, 'NINES_E_PAUSED', requestId, route.retryAfter, null, null);
    this.local(route, req, res, 'NINES_E_PAUSED', requestId, startedAt);
  }

  private releaseHeld(route: Route): void {
    const held = [...route.held];
    route.held.clear();
    this.logger.info({ service: route.name, requests: held.length }, 'proxy: releasing held requests');
    for (const h of held) {
      clearTimeout(h.timer);
      if (!h.res.destroyed && !h.res.headersSent) this.handle(h.req, h.res);
    }
  }

  private reject(
    req: ProxyRequest,
    res: ProxyResponse,
    code: ProxyErrorCode,
    requestId: string,
    route: Route | null,
    startedAt: number,
  ): void {
    if (this.closing) res.shouldKeepAlive = false;
    sendError(res, code, requestId);
    this.local(route, req, res, code, requestId, startedAt);
  }

  /** Accounting and access log of an answer the proxy gave itself. */
  private local(
    route: Route | null,
    req: ProxyRequest,
    res: ProxyResponse,
    code: ProxyErrorCode,
    requestId: string,
    startedAt: number,
  ): void {
    const ms = performance.now() - startedAt;
    if (route !== null) {
      route.localByClass[classIndex(errorStatus(code))]!++;
      route.localLatency.observe(ms);
    }
    if (this.onDone !== null) {
      this.accessLogger.info(
        {
          reqId: requestId,
          method: req.method,
          url: req.url,
          host: req.headers.host,
          client: req.socket.remoteAddress,
          status: res.statusCode,
          service: route?.name,
          code,
          ms: round(ms),
        },
        'access',
      );
    }
  }

  private logAccess(f: Forward): void {
    const req = f.req;
    const ip = (req.socket as ClientSocket)[kClient]?.ip ?? req.socket.remoteAddress;
    if (this.accessDest !== null) {
      this.accessDest.write(this.accessLine(f, ip));
      return;
    }
    this.accessLogger.info(
      {
        reqId: f.requestId,
        method: req.method,
        url: req.url,
        host: f.host === '' ? undefined : f.host,
        client: ip,
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

  /**
   * The line pino would write for logAccess (same fields, same order), built by hand: the generic
   * serializer walked the object key by key and was most of the access log's cost per request.
   */
  private accessLine(f: Forward, ip: string | undefined): string {
    const failure = f.failure === -1 ? '' : `,"failure":${f.failure}`;
    return `{"level":30,"time":${Date.now()},"proxy":${this.proxyIdJson},"reqId":${JSON.stringify(f.requestId)},"method":${JSON.stringify(f.method)},"url":${JSON.stringify(f.path)}${f.host === '' ? '' : `,"host":${JSON.stringify(f.host)}`}${ip === undefined ? '' : `,"client":${JSON.stringify(ip)}`},"status":${f.statusCode},"service":${JSON.stringify(f.route.name)},"instance":${JSON.stringify(f.upstream.id)},"attempts":${f.attempts},"ms":${round(performance.now() - f.startedAt)}${failure},"msg":"access"}\n`;
  }

  // ---- WebSockets (and any Upgrade) -------------------------------------------------------------

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const raw = req.rawHeaders;
    const sock = req.socket as ClientSocket;
    const trusted = (sock[kClient] ?? this.clientInfo(sock)).trusted;
    let host = '';
    let xff: string | undefined;
    let requestId: string | undefined;
    let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const lower = name.toLowerCase();
      const value = raw[i + 1]!;
      if (lower === 'host') host = value;
      else if (lower === 'x-request-id') requestId = value;
      else if (lower === 'x-forwarded-for') {
        if (trusted) xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      } else if (
        lower === 'connection' ||
        lower === 'keep-alive' ||
        lower === 'te' ||
        lower === 'trailer' ||
        lower === 'transfer-encoding' ||
        lower === 'forwarded' ||
        lower === 'x-forwarded-proto' ||
        lower === 'x-forwarded-host' ||
        isProxyHeader(name)
      ) {
        continue;
      }
      lines += `${name}: ${value}\r\n`;
    }
    const ip = sock.remoteAddress ?? '';
    if (requestId === undefined) {
      requestId = `${this.idPrefix}-${(++this.idSeq).toString(36)}`;
      lines += `x-request-id: ${requestId}\r\n`;
    }
    lines +=
      `Connection: Upgrade\r\nx-forwarded-for: ${xff === undefined ? ip : `${xff}, ${ip}`}\r\n` +
      `x-forwarded-proto: ${this.scheme === 'https' ? 'wss' : 'ws'}\r\nx-forwarded-host: ${host}\r\n\r\n`;
    const route = this.table.match(host, req.url!);
    let code: ProxyErrorCode | null = null;
    let upstream: Upstream | null = null;
    if (route === null) code = 'NINES_E_NO_ROUTE';
    else if (this.closing) code = 'NINES_E_NO_HEALTHY_UPSTREAM';
    else if (route.mode === Mode.Maintenance) code = 'NINES_E_MAINTENANCE';
    else if (route.mode === Mode.Pause) code = 'NINES_E_PAUSED';
    else if (route.mode === Mode.ReadOnly && !SAFE.has(req.method!)) code = 'NINES_E_READ_ONLY';
    else {
      upstream = route.pick(null);
      if (upstream === null) code = 'NINES_E_NO_HEALTHY_UPSTREAM';
    }
    if (code !== null || route === null || upstream === null) {
      socket.on('error', () => {});
      socket.end(rawError(code ?? 'NINES_E_NO_HEALTHY_UPSTREAM', requestId));
      return;
    }
    const reqHead =
      head.length === 0 ? Buffer.from(lines, 'latin1') : Buffer.concat([Buffer.from(lines, 'latin1'), head]);
    new WsTunnel(this, route, upstream, socket, reqHead, requestId).start();
    if (this.onDone !== null) {
      this.accessLogger.info(
        {
          reqId: requestId,
          method: req.method,
          url: req.url,
          host,
          service: route.name,
          instance: upstream.id,
          upgrade: true,
        },
        'access',
      );
    }
  }

  // ---- admin ------------------------------------------------------------------------------------

  private handleAdmin(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      const body = this.metrics();
      res.writeHead(200, {
        'content-type': 'text/plain; version=0.0.4; charset=utf-8',
        'cache-control': 'no-store',
      });
      res.end(body);
      return;
    }
    if (req.method === 'GET' && (path === '/health' || path === this.healthPath)) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(HEALTH_BODY);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"NINES_E_NOT_FOUND","message":"No such route"}}');
  }

  // ---- TLS --------------------------------------------------------------------------------------

  private loadTls(): void {
    const certs = this.opts.tls?.certificates ?? [];
    const exact = new Map<string, SecureContext>();
    const wild: [string, SecureContext][] = [];
    let dflt: SecureContext | null = null;
    for (const c of certs) {
      let cert: Buffer;
      let key: Buffer;
      let ctx: SecureContext;
      try {
        cert = readFileSync(c.certFile);
        key = readFileSync(c.keyFile);
        ctx = createSecureContext({ cert, key });
      } catch (err) {
        this.logger.error(
          { err, certFile: c.certFile },
          'proxy: TLS certificate did not load; keeping the previous one',
        );
        const names = c.hosts ?? [];
        for (const n of names) {
          const prev = this.contextFor(n.replace(/^\*\./, 'x.'));
          if (prev !== null)
            n.startsWith('*.')
              ? wild.push([n.slice(1).toLowerCase(), prev])
              : exact.set(n.toLowerCase(), prev);
        }
        if (dflt === null && this.tlsDefault !== null) dflt = this.tlsDefault;
        continue;
      }
      const names = c.hosts ?? dnsNames(cert);
      for (const n of names) {
        const l = n.toLowerCase();
        if (l.startsWith('*.')) wild.push([l.slice(1), ctx]);
        else if (!exact.has(l)) exact.set(l, ctx);
      }
      if (dflt === null) {
        dflt = ctx;
        this.tlsDefaultPem = { cert, key };
      }
    }
    wild.sort((a, b) => b[0].length - a[0].length);
    this.tlsContexts = exact;
    this.tlsWildcards = wild;
    this.tlsDefault = dflt;
  }

  private tlsDefaultPem: { cert: Buffer; key: Buffer } | null = null;

  private defaultPem(): { cert: Buffer; key: Buffer } | null {
    return this.tlsDefaultPem;
  }

  private contextFor(servername: string): SecureContext | null {
    const name = servername.toLowerCase();
    const exact = this.tlsContexts.get(name);
    if (exact !== undefined) return exact;
    for (const [suffix, ctx] of this.tlsWildcards) {
      if (name.endsWith(suffix) && name.length > suffix.length) return ctx;
    }
    return this.tlsDefault;
  }

  private watchTls(): void {
    const files = new Set<string>();
    for (const c of this.opts.tls?.certificates ?? []) files.add(c.certFile).add(c.keyFile);
    for (const f of files) {
      watchFile(f, { interval: 1000, persistent: false }, (cur, prev) => {
        if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size) return;
        if (this.tlsReloadTimer !== null) clearTimeout(this.tlsReloadTimer);
        // Cert and key are usually replaced one after the other: wait for both.
        this.tlsReloadTimer = setTimeout(() => {
          this.tlsReloadTimer = null;
          if (this.closed === null) this.reloadTls();
        }, 200);
      });
      this.tlsWatched.push(f);
    }
  }

  // ---- state -----------------------------------------------------------------------------------

  private clientInfo(socket: ClientSocket): ClientInfo {
    const ip = socket.remoteAddress ?? '';
    const info: ClientInfo = {
      ip,
      node: ip.includes(':') ? `"[${ip}]"` : ip,
      trusted: this.isTrusted(ip),
    };
    socket[kClient] = info;
    return info;
  }

  private isTrusted(ip: string | undefined): boolean {
    if (this.trust === null || ip === undefined) return false;
    if (isIPv4(ip)) return this.trust.check(ip, 'ipv4');
    if (ip.startsWith('::ffff:') && isIPv4(ip.slice(7))) return this.trust.check(ip.slice(7), 'ipv4');
    return isIPv6(ip) && this.trust.check(ip, 'ipv6');
  }

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
    for (const f of this.tlsWatched) unwatchFile(f);
    if (this.tlsReloadTimer !== null) clearTimeout(this.tlsReloadTimer);
    for (const r of this.routes.values()) {
      for (const h of r.held) {
        clearTimeout(h.timer);
        h.res.destroy();
      }
      r.held.clear();
    }
    const server = this.server;
    const admin = this.admin;
    if (admin?.listening) {
      await new Promise<void>((resolve) => {
        admin.close(() => resolve());
        admin.closeAllConnections();
      });
    }
    if (server.listening) {
      // Stop accepting without http.Server#close, which also closes idle keep-alive connections at once.
      const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
      const graceMs = this.opts.shutdownGraceMs ?? 5000;
      const idle = setTimeout(
        () => {
          server.closeIdleConnections();
          this.h1?.closeIdle();
        },
        Math.min(this.opts.closeIdleAfterMs ?? 1000, graceMs),
      );
      const grace = setTimeout(() => {
        server.closeAllConnections();
        this.h1?.closeAll();
      }, graceMs);
      // WebSockets are not HTTP connections the server tracks: close them with the instances below.
      const all = [...this.upstreams.values(), ...this.retired];
      for (const u of all) if (u.tunnels !== null) for (const t of [...u.tunnels]) t.drainAfter(0);
      // Connections that become idle after their last response are closed too (Connection: close).
      await closed;
      clearTimeout(idle);
      clearTimeout(grace);
      server.close(() => {}); // clears the server's connection-checking interval
      this.h1?.stop();
    }
    const all = [...this.upstreams.values(), ...this.retired];
    await Promise.all(all.map((u) => u.destroy()));
    this.retired.clear();
    if (this.cacheWriting !== null) await this.cacheWriting;
    this.accessDest?.close();
    this.listeners = [];
    this.logger.info({ proxyId: this.proxyId }, 'proxy: closed');
  }
}

function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function buildTrust(nets: string[]): BlockList | null {
  if (nets.length === 0) return null;
  const list = new BlockList();
  for (const n of nets) {
    const [addr, bits] = n.split('/') as [string, string | undefined];
    const type = isIPv6(addr) ? 'ipv6' : 'ipv4';
    if (!isIPv4(addr) && !isIPv6(addr))
      throw new Error(`proxy: trustedNetworks: not an address or CIDR: ${n}`);
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

function dnsNames(pem: Buffer): string[] {
  try {
    const san = new X509Certificate(pem).subjectAltName ?? '';
    return san
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => s.slice(4));
  } catch {
    return [];
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
