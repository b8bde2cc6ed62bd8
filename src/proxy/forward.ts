import type { IncomingMessage } from 'node:http';
import { ClientCode, type Exchange, eqi, type UpstreamConn } from './client.js';
import { type ProxyErrorCode, sendError } from './errors.js';
import type { ProxyRequest, ProxyResponse } from './h1.js';
import { classIndex } from './metrics.js';
import type { Route } from './routing.js';
import type { Upstream } from './upstream.js';

/** What a Forward needs from its proxy. */
export interface ForwardOwner {
  /** Set while the proxy shuts down: responses carry `Connection: close`. */
  readonly closing: boolean;
  /** Called once per request when it ends, only if access logging is on. */
  readonly onDone: ((f: Forward) => void) | null;
  /** Whole exchange deadline (0: none): then 504, or a cut connection once the answer started. */
  readonly totalTimeoutMs: number;
  /** Largest request body (0: no limit); a chunked body over it is cut with 413. */
  readonly maxBodyBytes: number;
}

const kForward = Symbol('nines.forward');
type ProxiedResponse = ProxyResponse & { [kForward]?: Forward };
type ProxiedRequest = IncomingMessage & { [kForward]?: Forward };

class ClientGoneError extends Error {
  readonly code = 'NINES_CLIENT_GONE';
}
/** One shared instance: aborting for a vanished client is routine, not worth a stack trace each. */
const CLIENT_GONE = new ClientGoneError('client closed the connection');

class BadResponseError extends Error {
  readonly code = 'NINES_BAD_UPSTREAM_RESPONSE';
}

class LimitError extends Error {
  readonly code = 'NINES_LIMIT';
}
class UpstreamLostError extends Error {
  readonly code = 'NINES_UPSTREAM_LOST';
}
/** The instance went down (health checks, ejection) while this request waited for its answer. */
const UPSTREAM_LOST = new UpstreamLostError('instance went down before answering');
/**
 * Extra attempts, beyond `retry.attempts`, for a connect failure (nothing was sent): as HAProxy's
 * `retries` + `option redispatch`. Several instances lost together (a host, a zone) must not fail a
 * request because its one retry met the next dead instance. A reset is different (the app may have
 * seen the request): `retry.attempts` bounds it. The retry budget bounds both.
 */
const CONNECT_REDISPATCH = 2;
const BODY_TOO_LARGE = new LimitError('request body too large');
const TOTAL_TIMEOUT = new LimitError('total request timeout');

export { eqi } from './client.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus `Proxy-*`; compared without allocating in the common case. */
export function isHopByHop(name: string): boolean {
  switch (name.length) {
    case 2:
      return eqi(name, 'te');
    case 7:
      return eqi(name, 'trailer') || eqi(name, 'upgrade');
    case 10:
      return eqi(name, 'connection') || eqi(name, 'keep-alive');
    case 17:
      return eqi(name, 'transfer-encoding');
    default:
      return isProxyHeader(name);
  }
}

export function isProxyHeader(name: string): boolean {
  return (
    name.length > 6 &&
    (name.charCodeAt(0) | 32) === 112 /* p */ &&
    name.charCodeAt(5) === 45 /* - */ &&
    name.slice(0, 6).toLowerCase() === 'proxy-'
  );
}

/** Why an upstream exchange failed; indexes failCodes. */
export const FailKind = { Connect: 0, Reset: 1, Timeout: 2, BadRequest: 3, TooLarge: 4 } as const;
export type FailKind = (typeof FailKind)[keyof typeof FailKind];

const failCodes: readonly ProxyErrorCode[] = [
  'NINES_E_UPSTREAM_CONNECT',
  'NINES_E_UPSTREAM_RESET',
  'NINES_E_UPSTREAM_TIMEOUT',
  'NINES_E_BAD_REQUEST',
  'NINES_E_PAYLOAD_TOO_LARGE',
];

/**
 * One proxied request: the exchange our upstream client (`client.ts`) runs, and its state. Listeners
 * on the client response are shared module functions that find their Forward through a symbol, so a
 * request allocates this object and its header array, and no closures.
 */
export class Forward implements Exchange {
  readonly owner: ForwardOwner;
  readonly req: ProxyRequest;
  readonly res: ProxiedResponse;
  readonly route: Route;
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  readonly body: IncomingMessage | null;
  readonly headersTimeoutMs = 0;
  readonly requestId: string;
  /** The Host the client asked for (access log). */
  readonly host: string;
  readonly hasBody: boolean;
  /** Idempotent method and no body: may be retried after a reset before any response byte. */
  readonly retryable: boolean;
  readonly startedAt: number;
  upstream: Upstream;
  attempts = 1;
  statusCode = 0;
  /** The upstream exchange failed for this reason (set before an error response). */
  failure: FailKind | -1 = -1;

  /** The upstream connection running the exchange: a failure is no longer a connect failure. */
  private conn: UpstreamConn | null = null;
  private connected = false;
  /** Response headers went to the client: never retry, never answer with an error body. */
  private responded = false;
  private done = false;
  private clientGone = false;
  private listeningDrain = false;
  private badResponse = false;
  /** Counted in route.activeRetries. */
  private retrying = false;
  private limit: LimitError | null = null;
  /** Aborted because its instance went down: re-sent elsewhere outside the retry budget. */
  private lost = false;
  private bodyBytes = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    owner: ForwardOwner,
    req: ProxyRequest,
    res: ProxyResponse,
    route: Route,
    upstream: Upstream,
    method: string,
    path: string,
    headers: string[],
    host: string,
    requestId: string,
    hasBody: boolean,
    retryable: boolean,
    startedAt: number,
  ) {
    this.owner = owner;
    this.req = req;
    this.res = res;
    this.route = route;
    this.upstream = upstream;
    this.method = method;
    this.path = path;
    this.headers = headers;
    this.host = host;
    // Only node's server hands over requests with a body (the fast path, h1.ts, has none).
    this.body = hasBody ? (req as IncomingMessage) : null;
    this.requestId = requestId;
    this.hasBody = hasBody;
    this.retryable = retryable;
    this.startedAt = startedAt;
  }

  start(): void {
    this.res[kForward] = this;
    this.res.on('close', onResClose);
    this.route.active++;
    const owner = this.owner;
    if (owner.totalTimeoutMs > 0) this.timer = setTimeout(onTotalTimeout, owner.totalTimeoutMs, this);
    this.upstream.inflight++;
    this.upstream.track(this);
    this.upstream.pool!.dispatch(this);
  }

  /**
   * @internal its instance went down (a host or zone lost: health checks time out, connects fail)
   * before any answer. An idempotent body-less request is aborted and sent to another instance; one
   * waiting for a dead host would otherwise hang until the headers timeout. (Still connecting: the
   * connect timeout moves it.)
   */
  abandon(): void {
    if (this.done || this.responded || !this.retryable || this.conn === null || this.limit !== null) return;
    this.lost = true;
    this.conn.abort(UPSTREAM_LOST);
  }

  // ---- Exchange (called by the upstream connection) ---------------------------------------------

  onConnect(conn: UpstreamConn): void {
    this.connected = true;
    this.conn = conn;
    if (this.clientGone) conn.abort(CLIENT_GONE);
    else if (this.limit !== null) conn.abort(this.limit);
    else if (
      this.hasBody &&
      this.owner.maxBodyBytes > 0 &&
      this.req.headers['content-length'] === undefined
    ) {
      // Counted from here, in the same tick the connection starts reading the body: no chunk is missed.
      const body = this.body as ProxiedRequest;
      body[kForward] = this;
      body.on('data', onReqData);
    }
  }

  onHeaders(statusCode: number, rawHeaders: string[], conn: UpstreamConn): boolean {
    if (this.clientGone) return false;
    const upstream = this.upstream;
    // Answered: no longer waiting on the instance (its 5xx may eject it right here).
    upstream.untrack(this);
    upstream.answered(statusCode);
    const out: string[] = [];
    let hasId = false;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!;
      if (isHopByHop(name)) continue;
      if (name.length === 12 && eqi(name, 'x-request-id')) hasId = true;
      out.push(name, rawHeaders[i + 1]!);
    }
    if (!hasId) out.push('x-request-id', this.requestId);
    const res = this.res;
    // Shutting down, or the instance drains: the client's keep-alive connection is closed after this.
    if (this.owner.closing || upstream.state !== 'ready' || upstream.removed) res.shouldKeepAlive = false;
    try {
      res.writeHead(statusCode, out);
    } catch (err) {
      // An upstream header node refuses to write (invalid characters): answer 502 instead.
      this.badResponse = true;
      conn.abort(new BadResponseError(String(err)));
      return false;
    }
    this.responded = true;
    this.statusCode = statusCode;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    if (!this.listeningDrain) {
      this.listeningDrain = true;
      this.res.on('drain', onResDrain);
    }
    return false;
  }

  onComplete(last: Buffer | null): void {
    this.conn = null;
    this.upstream.untrack(this);
    this.upstream.release();
    if (last === null) this.res.end();
    else this.res.end(last);
    this.finish();
  }

  onError(err: Error): void {
    this.conn = null;
    const failed = this.upstream;
    failed.untrack(this);
    failed.release();
    const lost = this.lost;
    this.lost = false;
    if (this.clientGone || this.res.destroyed) {
      this.finish();
      return;
    }
    if (this.responded) {
      // Mid-body failure: the only honest signal left is to cut the client's connection.
      this.res.destroy();
      this.finish();
      return;
    }
    const code = (err as { code?: string }).code;
    let kind: FailKind;
    if (this.limit !== null) {
      kind = this.limit === BODY_TOO_LARGE ? FailKind.TooLarge : FailKind.Timeout;
      if (kind === FailKind.TooLarge) this.res.shouldKeepAlive = false;
    } else if (this.badResponse) kind = FailKind.Reset;
    else if (code === ClientCode.HeadersTimeout) kind = FailKind.Timeout;
    else if (!this.connected) {
      kind = FailKind.Connect;
      if (code !== ClientCode.PoolClosed) failed.connectFailed(err);
    } else {
      kind = FailKind.Reset;
      failed.pool?.dropIdle();
    }

    // A connect failure sent nothing, so any body-less request may go elsewhere; a reset may have
    // reached the app, so only idempotent body-less ones do.
    // (A request with a body is never retried: some of it may have been streamed already.)
    if (
      !this.badResponse &&
      ((kind === FailKind.Connect && !this.hasBody) || (kind === FailKind.Reset && this.retryable)) &&
      // A request whose instance died is not a retry storm: the budget guards against re-sending
      // what overloaded instances failed, not against moving off a dead one (still once at most).
      (lost
        ? this.attempts <= this.route.retryAttempts
        : this.route.mayRetry(this.attempts, kind === FailKind.Connect ? CONNECT_REDISPATCH : 0))
    ) {
      const next = this.route.pick(failed);
      if (next !== null && next.pool !== null) {
        this.attempts++;
        this.route.retries++;
        if (!this.retrying) {
          this.retrying = true;
          this.route.activeRetries++;
        }
        this.upstream = next;
        this.connected = false;
        next.inflight++;
        next.track(this);
        next.pool!.dispatch(this, true);
        return;
      }
    }
    this.failure = kind;
    sendError(this.res, failCodes[kind]!, this.requestId);
    this.statusCode = this.res.statusCode;
    this.finish();
  }

  /** @internal client response closed. */
  clientClosed(): void {
    if (this.done) return;
    this.clientGone = true;
    if (this.conn !== null) this.conn.abort(CLIENT_GONE);
  }

  /** @internal client response drained. */
  resume(): void {
    if (this.conn !== null) this.conn.resume();
  }

  /** @internal a request body chunk (only counted for chunked bodies under a size limit). */
  bodyChunk(n: number): void {
    this.bodyBytes += n;
    if (this.bodyBytes > this.owner.maxBodyBytes && this.limit === null && !this.done) {
      this.body?.off('data', onReqData);
      this.cut(BODY_TOO_LARGE);
    }
  }

  /** @internal the total timeout fired. */
  timedOut(): void {
    this.timer = null;
    if (!this.done && this.limit === null) this.cut(TOTAL_TIMEOUT);
  }

  private cut(reason: LimitError): void {
    this.limit = reason;
    if (this.conn !== null) this.conn.abort(reason);
  }

  private finish(): void {
    this.done = true;
    const route = this.route;
    route.active--;
    if (this.retrying) route.activeRetries--;
    if (this.timer !== null) clearTimeout(this.timer);
    const status = this.statusCode;
    if (status !== 0) {
      const u = this.upstream;
      const c = classIndex(status);
      u.byClass[c]!++;
      route.servedByClass[c]!++;
      const ms = performance.now() - this.startedAt;
      u.latency.observe(ms);
      route.servedLatency.observe(ms);
    }
    if (this.owner.onDone !== null) this.owner.onDone(this);
  }
}

function onReqData(this: ProxiedRequest, chunk: Buffer): void {
  this[kForward]?.bodyChunk(chunk.length);
}

function onTotalTimeout(f: Forward): void {
  f.timedOut();
}

function onResClose(this: ProxiedResponse): void {
  this[kForward]?.clientClosed();
}

function onResDrain(this: ProxiedResponse): void {
  this[kForward]?.resume();
}
