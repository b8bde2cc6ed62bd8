import type { IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';

/**
 * One request/response exchange on an upstream connection. The proxy's `Forward` and the health
 * check implement this; the connection calls it back with no closures allocated per request.
 */
export interface Exchange {
  readonly method: string;
  readonly path: string;
  /** Flat name/value list, already free of hop-by-hop headers. */
  readonly headers: string[];
  /** Streamed upstream (content-length as given, else chunked); null: no body. */
  readonly body: IncomingMessage | null;
  /** Time to the end of the response head once the request was written (0: the pool's default). */
  readonly headersTimeoutMs: number;
  /** The exchange has a connected socket: from now on a failure is not a connect failure. */
  onConnect(conn: UpstreamConn): void;
  /** Response head (1xx excluded). Return false to stop the exchange (after calling conn.abort). */
  onHeaders(statusCode: number, rawHeaders: string[], conn: UpstreamConn): boolean;
  /** A body chunk; false asks for backpressure (call conn.resume() to continue). */
  onData(chunk: Buffer): boolean;
  /** The response ended; `last` is the final body chunk when it came in the same read as the end. */
  onComplete(last: Buffer | null): void;
  onError(err: Error): void;
}

export class ClientError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** Error codes of the client (Forward maps them to a failure kind). */
export const ClientCode = {
  ConnectTimeout: 'NINES_UPSTREAM_CONNECT_TIMEOUT',
  HeadersTimeout: 'NINES_UPSTREAM_HEADERS_TIMEOUT',
  BodyTimeout: 'NINES_UPSTREAM_BODY_TIMEOUT',
  /** The instance closed the connection (before the response, or mid-body). */
  Closed: 'NINES_UPSTREAM_CLOSED',
  /** The pool was closed or destroyed before the request could go out. */
  PoolClosed: 'NINES_UPSTREAM_POOL_CLOSED',
  BadResponse: 'NINES_BAD_UPSTREAM_RESPONSE',
  /** The client's request body ended early (client gone). */
  RequestAborted: 'NINES_REQUEST_ABORTED',
} as const;

const POOL_CLOSED = new ClientError(ClientCode.PoolClosed, 'upstream pool closed');
const CONNECT_TIMEOUT = new ClientError(ClientCode.ConnectTimeout, 'upstream connect timeout');
const HEADERS_TIMEOUT = new ClientError(ClientCode.HeadersTimeout, 'upstream headers timeout');
const BODY_TIMEOUT = new ClientError(ClientCode.BodyTimeout, 'upstream body timeout');
const CLOSED = new ClientError(ClientCode.Closed, 'upstream closed the connection');
const REQUEST_ABORTED = new ClientError(ClientCode.RequestAborted, 'request body aborted');

export interface PoolOptions {
  host: string;
  port: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  /** Longest silence inside a response body; 0: none. */
  bodyTimeoutMs: number;
  /** Idle keep-alive connections are closed after this (shortened by the server's Keep-Alive hint). */
  keepAliveMs?: number;
}

/**
 * Every upstream read lands here (one event loop thread: a read is handled before the next one). 64 KiB
 * is what libuv suggests per read.
 */
const READ_SCRATCH = Buffer.allocUnsafe(65_536);

/** Largest response head accepted. */
const MAX_HEAD = 65_536;
const CRLF2 = Buffer.from('\r\n\r\n');

enum Phase {
  Connecting,
  /** Connected, no exchange: in the pool's idle list. */
  Idle,
  /** Request written (or being written), waiting for the response head. */
  Head,
  Body,
  Closed,
}

enum BodyKind {
  None,
  Length,
  Chunked,
  UntilClose,
}

enum Chunk {
  Size,
  /** Inside a size line after the hex digits (extensions). */
  SizeExt,
  Data,
  DataCr,
  DataLf,
  Trailer,
}

/**
 * Case-insensitive equality of a header name with `lower` (lower-case letters and `-` only), without
 * allocating a lower-cased copy. `c | 32` maps only A-Z onto a-z here (and CR onto `-`, which a parsed
 * header name cannot contain).
 */
export function eqi(name: string, lower: string): boolean {
  const len = lower.length;
  if (name.length !== len) return false;
  for (let i = 0; i < len; i++) {
    const c = name.charCodeAt(i);
    const l = lower.charCodeAt(i);
    if (c !== l && (c | 32) !== l) return false;
  }
  return true;
}

/** A non-negative decimal integer, or -1. */
function parseLength(v: string): number {
  const len = v.length;
  if (len === 0 || len > 15) return -1;
  let n = 0;
  for (let i = 0; i < len; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

const kConn = Symbol('nines.upstreamConn');
type BodyStream = IncomingMessage & { [kConn]?: UpstreamConn | null };

/**
 * A keep-alive pool of HTTP/1.1 connections to one instance (no pipelining, no connection limit):
 * the minimal client the proxy needs, on plain `net` sockets. A request goes out in one write (head,
 * and the body as it streams), the response head is parsed in one pass, bodies (content-length,
 * chunked, until-close) are handed on without copies.
 */
export class UpstreamPool {
  readonly opts: PoolOptions;
  private readonly host: string;
  /** Idle connections, most recently used last (reused first: its server-side timer is freshest). */
  private readonly idle: UpstreamConn[] = [];
  private readonly conns = new Set<UpstreamConn>();
  private keepAliveMs: number;
  private lastHint = '';
  private sweepTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private closeResolve: (() => void) | null = null;
  private closePromise: Promise<void> | null = null;

  constructor(opts: PoolOptions) {
    this.opts = opts;
    this.keepAliveMs = opts.keepAliveMs ?? 4000;
    const h = opts.host.startsWith('[') ? opts.host.slice(1, -1) : opts.host;
    this.host = h.includes(':') ? `[${h}]:${opts.port}` : `${h}:${opts.port}`;
  }

  /** Host header value for requests that came without one. */
  get hostHeader(): string {
    return this.host;
  }

  get size(): number {
    return this.conns.size;
  }

  /**
   * Runs `ex` on an idle connection, or a new one. `fresh` skips the idle ones: a retry must not meet
   * a stale keep-alive connection to a process that died with the one it failed on (a host, a zone);
   * a new connection to a dead process fails as a connect failure, which may go elsewhere again.
   */
  dispatch(ex: Exchange, fresh = false): void {
    if (this.closed) {
      ex.onError(POOL_CLOSED);
      return;
    }
    const conn = fresh ? undefined : this.idle.pop();
    if (conn !== undefined) conn.run(ex);
    else {
      const c = new UpstreamConn(this, ex);
      this.conns.add(c);
    }
  }

  /** Closes the idle connections: after a reset they are suspect (the process may be gone). */
  dropIdle(): void {
    for (const c of this.idle.splice(0)) c.destroy();
  }

  /** No new requests; running ones finish, then every connection is closed. */
  close(): Promise<void> {
    if (this.closePromise !== null) return this.closePromise;
    this.closed = true;
    this.closePromise = new Promise<void>((resolve) => {
      this.closeResolve = resolve;
    });
    for (const c of this.idle.splice(0)) c.destroy();
    this.checkClosed();
    return this.closePromise;
  }

  /** Closes every connection now; running exchanges fail. */
  destroy(): Promise<void> {
    const p = this.close();
    for (const c of [...this.conns]) c.destroy(POOL_CLOSED);
    return p;
  }

  /** @internal a connection finished its exchange and may be reused. */
  release(c: UpstreamConn): void {
    if (this.closed) {
      c.destroy();
      return;
    }
    this.idle.push(c);
    if (this.sweepTimer === null) {
      this.sweepTimer = setInterval(sweep, Math.max(100, this.keepAliveMs >> 2), this);
      this.sweepTimer.unref();
    }
  }

  /** @internal the server announced `Keep-Alive: timeout=N`: close idle ones a second earlier. */
  hint(value: string): void {
    if (value === this.lastHint) return;
    this.lastHint = value;
    const m = /timeout=(\d+)/i.exec(value);
    if (m === null) return;
    const ms = Math.max(500, Number(m[1]) * 1000 - 1000);
    if (ms >= this.keepAliveMs) return;
    this.keepAliveMs = ms;
    if (this.sweepTimer !== null) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  /** @internal */
  removed(c: UpstreamConn): void {
    this.conns.delete(c);
    const i = this.idle.indexOf(c);
    if (i !== -1) this.idle.splice(i, 1);
    if (this.closed) this.checkClosed();
  }

  /** @internal closes connections idle for longer than the keep-alive time. */
  sweep(): void {
    const idle = this.idle;
    if (idle.length === 0) {
      if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
      this.sweepTimer = null;
      return;
    }
    const limit = performance.now() - this.keepAliveMs;
    // Oldest first: stop at the first one still fresh.
    let n = 0;
    while (n < idle.length && idle[n]!.idleSince < limit) n++;
    if (n > 0) for (const c of idle.splice(0, n)) c.destroy();
  }

  private checkClosed(): void {
    if (this.conns.size !== 0 || this.closeResolve === null) return;
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    const r = this.closeResolve;
    this.closeResolve = null;
    r();
  }
}

function sweep(p: UpstreamPool): void {
  p.sweep();
}

/** One connection to an instance and the exchange running on it. */
export class UpstreamConn {
  private readonly pool: UpstreamPool;
  private readonly socket: Socket;
  private ex: Exchange | null;
  private phase = Phase.Connecting;
  idleSince = 0;
  /** Reusable after the current exchange (HTTP/1.1, no `Connection: close`, body fully sent). */
  private reusable = true;
  private isHead = false;
  /** Partial response head. */
  private pending: Buffer | null = null;
  private body = BodyKind.None;
  private remaining = 0;
  private chunk = Chunk.Size;
  private chunkSize = 0;
  /** Trailer section: bytes of the current trailer line. */
  private trailerLine = 0;
  /** Request body still streaming up (from `upBody`). */
  private sending = false;
  private upBody: BodyStream | null = null;
  private chunkedUp = false;
  /** Inside a read callback: the data is READ_SCRATCH, overwritten by the next read. */
  private scratch = false;
  private paused = false;
  /** Deadline (performance.now) of the current phase, 0: none; `timer` fires at or before it. */
  private deadline = 0;
  private deadlineErr: ClientError = CONNECT_TIMEOUT;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;

  constructor(pool: UpstreamPool, ex: Exchange) {
    this.pool = pool;
    this.ex = ex;
    const o = pool.opts;
    const host = o.host.startsWith('[') ? o.host.slice(1, -1) : o.host;
    // Reads land in one scratch buffer (`onread`), not a new Buffer pushed through a Readable per
    // read; what outlives the callback (body bytes, a partial head) is copied out.
    const s = netConnect({
      host,
      port: o.port,
      noDelay: true,
      onread: { buffer: READ_SCRATCH, callback: (n: number, buf: Uint8Array) => this.onRead(n, buf) },
    });
    this.socket = s;
    s.on('connect', () => this.onSocketConnect());
    s.on('end', () => this.onSocketEnd());
    s.on('error', (err: Error) => this.fail(err));
    s.on('close', () => this.onSocketClose());
    s.on('drain', () => this.onSocketDrain());
    this.setDeadline(o.connectTimeoutMs, CONNECT_TIMEOUT);
  }

  /** Starts an exchange on this (idle, connected) connection. */
  run(ex: Exchange): void {
    this.ex = ex;
    this.start(ex);
  }

  /** Fails the running exchange with `err` (it gets onError) and closes the connection. */
  abort(err: Error): void {
    const ex = this.ex;
    this.ex = null;
    this.destroy();
    if (ex !== null) ex.onError(err);
  }

  /** Continue after onData returned false. */
  resume(): void {
    if (this.paused) {
      this.paused = false;
      if (this.phase !== Phase.Closed) this.socket.resume();
    }
  }

  /** Closes the connection; a running exchange gets `err` when given. */
  destroy(err?: Error): void {
    if (this.phase !== Phase.Closed) {
      this.phase = Phase.Closed;
      this.clearTimer();
      this.detachBody();
      this.socket.destroy();
      this.pool.removed(this);
    }
    if (err !== undefined && this.ex !== null) {
      const ex = this.ex;
      this.ex = null;
      ex.onError(err);
    }
  }

  // ---- request ----------------------------------------------------------------------------------

  private onSocketConnect(): void {
    const ex = this.ex;
    if (ex === null || this.phase !== Phase.Connecting) return;
    this.start(ex);
  }

  private start(ex: Exchange): void {
    this.phase = Phase.Head;
    this.reusable = true;
    this.isHead = ex.method === 'HEAD';
    ex.onConnect(this);
    if (this.ex !== ex) return; // aborted in onConnect
    const h = ex.headers;
    let head = `${ex.method} ${ex.path} HTTP/1.1\r\n`;
    let hasHost = false;
    let hasLength = false;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i]!;
      if (name.length === 4 && eqi(name, 'host')) hasHost = true;
      else if (name.length === 14 && eqi(name, 'content-length')) hasLength = true;
      head += `${name}: ${h[i + 1]}\r\n`;
    }
    if (!hasHost) head += `host: ${this.pool.hostHeader}\r\n`;
    const body = ex.body;
    this.sending = false;
    this.chunkedUp = false;
    if (body !== null) {
      this.sending = true;
      if (!hasLength) {
        this.chunkedUp = true;
        head += 'transfer-encoding: chunked\r\n';
      }
    }
    head += '\r\n';
    const timeout = ex.headersTimeoutMs > 0 ? ex.headersTimeoutMs : this.pool.opts.headersTimeoutMs;
    this.setDeadline(timeout, HEADERS_TIMEOUT);
    this.socket.write(head, 'latin1');
    if (body !== null) this.sendBody(body);
  }

  private sendBody(body: BodyStream): void {
    if (body.readableEnded) {
      // Already consumed (e.g. a retry would need it again): never happens for bodies, which are not retried.
      this.endBody();
      return;
    }
    this.upBody = body;
    body[kConn] = this;
    body.on('data', onBodyData);
    body.on('end', onBodyEnd);
    body.on('close', onBodyClose);
  }

  /** @internal */
  bodyData(chunk: Buffer): void {
    if (!this.sending) return;
    const s = this.socket;
    let ok: boolean;
    if (this.chunkedUp) {
      if (chunk.length === 0) return;
      s.cork();
      s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      s.write(chunk);
      ok = s.write('\r\n', 'latin1');
      s.uncork();
    } else ok = s.write(chunk);
    if (!ok) this.upBody?.pause();
  }

  /** @internal */
  endBody(): void {
    if (!this.sending) return;
    this.detachBody();
    if (this.chunkedUp) this.socket.write('0\r\n\r\n', 'latin1');
  }

  /** @internal the client's request closed before its body ended. */
  bodyClosed(): void {
    if (!this.sending) return;
    if (this.upBody?.readableEnded) {
      this.endBody();
      return;
    }
    this.abort(REQUEST_ABORTED);
  }

  private detachBody(): void {
    if (!this.sending) return;
    this.sending = false;
    const body = this.upBody;
    this.upBody = null;
    if (body !== null) {
      body[kConn] = null;
      body.off('data', onBodyData);
      body.off('end', onBodyEnd);
      body.off('close', onBodyClose);
      if (body.isPaused()) body.resume();
    }
  }

  private onSocketDrain(): void {
    if (this.sending) this.upBody?.resume();
  }

  // ---- response ---------------------------------------------------------------------------------

  private onRead(n: number, buf: Uint8Array): boolean {
    this.scratch = true;
    this.onSocketData(Buffer.from(buf.buffer, buf.byteOffset, n));
    this.scratch = false;
    return true;
  }

  /** Bytes that outlive the read callback: copied out of the scratch buffer. */
  private own(b: Buffer): Buffer {
    return this.scratch ? Buffer.from(b) : b;
  }

  private onSocketData(data: Buffer): void {
    if (this.phase === Phase.Head) {
      if (this.pending !== null) {
        data = Buffer.concat([this.pending, data]);
        this.pending = null;
        this.scratch = false;
      }
      this.parseHead(data);
    } else if (this.phase === Phase.Body) {
      if (this.deadline !== 0) this.deadline = performance.now() + this.pool.opts.bodyTimeoutMs;
      this.onBody(data, 0);
    } else if (this.phase === Phase.Idle) {
      // Bytes with no request: the server is confused; never reuse this connection.
      this.destroy();
    }
  }

  private parseHead(data: Buffer): void {
    let start = 0;
    for (;;) {
      const end = data.indexOf(CRLF2, start);
      if (end === -1) {
        if (data.length - start > MAX_HEAD) {
          this.abort(new ClientError(ClientCode.BadResponse, 'upstream response head too large'));
          return;
        }
        this.pending = this.own(start === 0 ? data : data.subarray(start));
        return;
      }
      const text = data.toString('latin1', start, end);
      const next = end + 4;
      const r = this.headLines(text);
      if (r === -1) return; // aborted
      if (r === 1) {
        // 1xx: not forwarded; the real head follows.
        start = next;
        continue;
      }
      if (this.phase !== Phase.Body) return; // finished without a body, or aborted
      if (next < data.length) this.onBody(data, next);
      return;
    }
  }

  /** Parses one response head; returns 1 for a 1xx head, 0 when handled, -1 when aborted. */
  private headLines(text: string): number {
    const ex = this.ex;
    if (ex === null) {
      this.destroy();
      return -1;
    }
    // "HTTP/1.1 200 OK"
    if (text.length < 12 || !text.startsWith('HTTP/1.') || text.charCodeAt(12) > 32) {
      this.abort(new ClientError(ClientCode.BadResponse, 'malformed upstream status line'));
      return -1;
    }
    const status =
      (text.charCodeAt(9) - 48) * 100 + (text.charCodeAt(10) - 48) * 10 + (text.charCodeAt(11) - 48);
    if (!(status >= 100 && status <= 999)) {
      this.abort(new ClientError(ClientCode.BadResponse, 'malformed upstream status line'));
      return -1;
    }
    if (status < 200 && status !== 101) return 1;
    const http10 = text.charCodeAt(7) === 48;
    let keepAlive = !http10;
    let length = -1;
    let chunked = false;
    const raw: string[] = [];
    let pos = text.indexOf('\r\n');
    while (pos !== -1) {
      const ls = pos + 2;
      const le0 = text.indexOf('\r\n', ls);
      const le = le0 === -1 ? text.length : le0;
      const colon = text.indexOf(':', ls);
      if (colon === -1 || colon > le || colon === ls) {
        this.abort(new ClientError(ClientCode.BadResponse, 'malformed upstream header'));
        return -1;
      }
      const name = text.slice(ls, colon);
      let vs = colon + 1;
      while (vs < le && (text.charCodeAt(vs) === 32 || text.charCodeAt(vs) === 9)) vs++;
      let ve = le;
      while (ve > vs && (text.charCodeAt(ve - 1) === 32 || text.charCodeAt(ve - 1) === 9)) ve--;
      const value = text.slice(vs, ve);
      switch (name.length) {
        case 10:
          if (eqi(name, 'connection')) {
            if (value === 'keep-alive') break;
            const v = value.toLowerCase();
            if (v.includes('close')) keepAlive = false;
            else if (v.includes('keep-alive')) keepAlive = true;
          } else if (eqi(name, 'keep-alive')) this.pool.hint(value);
          break;
        case 14:
          if (eqi(name, 'content-length')) {
            const n = parseLength(value);
            if (n === -1 || (length !== -1 && length !== n)) {
              this.abort(new ClientError(ClientCode.BadResponse, 'bad upstream content-length'));
              return -1;
            }
            length = n;
          }
          break;
        case 17:
          if (eqi(name, 'transfer-encoding')) {
            const v = value.toLowerCase();
            if (v.endsWith('chunked')) chunked = true;
            else keepAlive = false; // another coding last: the body ends with the connection
          }
          break;
      }
      raw.push(name, value);
      pos = le0;
    }
    if (!keepAlive) this.reusable = false;
    if (status === 101) {
      // No upgrade is ever requested through this client.
      this.abort(new ClientError(ClientCode.BadResponse, 'unexpected 101 from upstream'));
      return -1;
    }
    if (this.isHead || status === 204 || status === 304) this.body = BodyKind.None;
    else if (chunked) {
      this.body = BodyKind.Chunked;
      this.chunk = Chunk.Size;
      this.chunkSize = 0;
    } else if (length >= 0) {
      this.body = length === 0 ? BodyKind.None : BodyKind.Length;
      this.remaining = length;
    } else {
      this.body = BodyKind.UntilClose;
      this.reusable = false;
    }
    const bodyMs = this.pool.opts.bodyTimeoutMs;
    if (this.body === BodyKind.None) this.phase = Phase.Body;
    else {
      this.phase = Phase.Body;
      if (bodyMs > 0) this.setDeadline(bodyMs, BODY_TIMEOUT);
      else this.deadline = 0;
    }
    if (!ex.onHeaders(status, raw, this) || this.ex !== ex) {
      if (this.ex === ex) this.abort(CLOSED);
      return -1;
    }
    if (this.body === BodyKind.None) this.complete(null);
    return 0;
  }

  /** Body bytes from `data[from..]`. */
  private onBody(data: Buffer, from: number): void {
    const ex = this.ex;
    if (ex === null) return;
    switch (this.body) {
      case BodyKind.Length: {
        const avail = data.length - from;
        if (avail < this.remaining) {
          this.remaining -= avail;
          this.deliver(ex, from === 0 ? data : data.subarray(from));
          return;
        }
        const end = from + this.remaining;
        this.remaining = 0;
        if (end < data.length) this.reusable = false; // bytes past the response: not trustworthy
        this.complete(this.own(from === 0 && end === data.length ? data : data.subarray(from, end)));
        return;
      }
      case BodyKind.UntilClose:
        this.deliver(ex, from === 0 ? data : data.subarray(from));
        return;
      case BodyKind.Chunked:
        this.chunked(ex, data, from);
        return;
      default:
        if (from < data.length) this.reusable = false;
    }
  }

  private deliver(ex: Exchange, chunk: Buffer): void {
    if (!ex.onData(this.own(chunk)) && this.ex === ex && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private chunked(ex: Exchange, data: Buffer, pos: number): void {
    const len = data.length;
    while (pos < len) {
      if (this.ex !== ex) return;
      switch (this.chunk) {
        case Chunk.Size: {
          const c = data[pos]!;
          const d = hexDigit(c);
          if (d !== -1) {
            this.chunkSize = this.chunkSize * 16 + d;
            if (this.chunkSize > Number.MAX_SAFE_INTEGER / 32) {
              this.badChunk();
              return;
            }
            pos++;
          } else if (c === 13 /* \r */ || c === 59 /* ; */ || c === 32 || c === 9) {
            this.chunk = Chunk.SizeExt;
          } else {
            this.badChunk();
            return;
          }
          break;
        }
        case Chunk.SizeExt: {
          const lf = data.indexOf(10, pos);
          if (lf === -1) {
            pos = len;
            break;
          }
          pos = lf + 1;
          if (this.chunkSize === 0) {
            this.chunk = Chunk.Trailer;
            this.trailerLine = 0;
          } else {
            this.chunk = Chunk.Data;
            this.remaining = this.chunkSize;
          }
          this.chunkSize = 0;
          break;
        }
        case Chunk.Data: {
          const take = Math.min(this.remaining, len - pos);
          this.remaining -= take;
          const part = take === len && pos === 0 ? data : data.subarray(pos, pos + take);
          pos += take;
          if (this.remaining === 0) this.chunk = Chunk.DataCr;
          this.deliver(ex, part);
          break;
        }
        case Chunk.DataCr:
          if (data[pos] !== 13) {
            this.badChunk();
            return;
          }
          pos++;
          this.chunk = Chunk.DataLf;
          break;
        case Chunk.DataLf:
          if (data[pos] !== 10) {
            this.badChunk();
            return;
          }
          pos++;
          this.chunk = Chunk.Size;
          break;
        case Chunk.Trailer: {
          // Trailer lines until an empty one; trailers are not forwarded.
          const c = data[pos++]!;
          if (c === 10) {
            if (this.trailerLine === 0) {
              if (pos < len) this.reusable = false;
              this.complete(null);
              return;
            }
            this.trailerLine = 0;
          } else if (c !== 13) this.trailerLine++;
          break;
        }
      }
    }
  }

  private badChunk(): void {
    this.abort(new ClientError(ClientCode.BadResponse, 'malformed chunked upstream body'));
  }

  private complete(last: Buffer | null): void {
    const ex = this.ex!;
    this.ex = null;
    this.deadline = 0;
    this.pending = null;
    if (this.sending) {
      // The answer came before the whole request body: the connection is out of sync.
      this.reusable = false;
      this.detachBody();
    }
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    if (this.reusable) {
      this.phase = Phase.Idle;
      this.idleSince = performance.now();
      this.pool.release(this);
    } else this.destroy();
    ex.onComplete(last);
  }

  private onSocketEnd(): void {
    if (this.phase === Phase.Body && this.body === BodyKind.UntilClose && this.ex !== null) {
      this.reusable = false;
      this.complete(null);
      return;
    }
    this.destroy(CLOSED);
  }

  private fail(err: Error): void {
    this.destroy(err);
  }

  private onSocketClose(): void {
    if (this.phase === Phase.Body && this.body === BodyKind.UntilClose && this.ex !== null) {
      this.reusable = false;
      this.complete(null);
      return;
    }
    this.destroy(CLOSED);
  }

  // ---- timeouts: one timer per connection, re-armed lazily ---------------------------------------

  private setDeadline(ms: number, err: ClientError): void {
    const at = performance.now() + ms;
    this.deadline = at;
    this.deadlineErr = err;
    if (this.timer === null) {
      this.timer = setTimeout(onConnTimer, ms, this);
      this.timerAt = at;
    } else if (this.timerAt > at + 1) {
      clearTimeout(this.timer);
      this.timer = setTimeout(onConnTimer, ms, this);
      this.timerAt = at;
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.deadline = 0;
  }

  /** @internal */
  onTimer(): void {
    this.timer = null;
    if (this.deadline === 0 || this.phase === Phase.Closed || this.phase === Phase.Idle) return;
    const left = this.deadline - performance.now();
    if (left > 1) {
      this.timer = setTimeout(onConnTimer, left, this);
      this.timerAt = this.deadline;
      return;
    }
    this.destroy(this.deadlineErr);
  }
}

function onConnTimer(c: UpstreamConn): void {
  c.onTimer();
}

function onBodyData(this: BodyStream, chunk: Buffer): void {
  this[kConn]?.bodyData(chunk);
}

function onBodyEnd(this: BodyStream): void {
  this[kConn]?.endBody();
}

function onBodyClose(this: BodyStream): void {
  this[kConn]?.bodyClosed();
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 32;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

const CHECK_TIMEOUT = new ClientError(ClientCode.HeadersTimeout, 'health check timeout');

/** An active HTTP health check through the instance's pool: GET path, 2xx/3xx within timeoutMs. */
export class HealthCheck implements Exchange {
  readonly method = 'GET';
  readonly path: string;
  readonly headers: string[] = [];
  readonly body = null;
  readonly headersTimeoutMs: number;
  private readonly pool: UpstreamPool;
  private conn: UpstreamConn | null = null;
  private status = 0;
  private settled = false;
  private resolve: ((ok: boolean) => void) | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(pool: UpstreamPool, path: string, timeoutMs: number) {
    this.pool = pool;
    this.path = path;
    this.headersTimeoutMs = timeoutMs;
  }

  run(): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(onCheckTimeout, this.headersTimeoutMs, this);
      this.pool.dispatch(this);
    });
  }

  /** @internal */
  timedOut(): void {
    this.timer = null;
    if (this.conn !== null) this.conn.abort(CHECK_TIMEOUT);
    else this.settle(false);
  }

  onConnect(conn: UpstreamConn): void {
    this.conn = conn;
    if (this.settled) conn.abort(CHECK_TIMEOUT);
  }

  onHeaders(statusCode: number): boolean {
    this.status = statusCode;
    return true;
  }

  onData(): boolean {
    return true;
  }

  onComplete(): void {
    this.conn = null;
    this.settle(this.status >= 200 && this.status < 400);
  }

  onError(): void {
    this.conn = null;
    this.settle(false);
  }

  private settle(ok: boolean): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.settled) return;
    this.settled = true;
    this.resolve?.(ok);
  }
}

function onCheckTimeout(c: HealthCheck): void {
  c.timedOut();
}
