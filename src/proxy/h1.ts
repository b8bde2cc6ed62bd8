import { type IncomingHttpHeaders, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { eqi } from './client.js';
import { rawError } from './errors.js';

/**
 * What the proxy's request path reads of a request. node's `IncomingMessage` has it, and so does
 * `H1Exchange` (the fast path below).
 */
export interface ProxyRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  /** Flat name/value list as received (latin1). */
  readonly rawHeaders: string[];
  /** Lower-cased names; built on first use by the fast path. */
  readonly headers: IncomingHttpHeaders;
  readonly socket: Socket;
}

/** What the proxy's request path does with a response; node's `ServerResponse` has it, so does `H1Exchange`. */
export interface ProxyResponse {
  statusCode: number;
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  shouldKeepAlive: boolean;
  writeHead(statusCode: number, headers: string[]): unknown;
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer): unknown;
  destroy(): unknown;
  on(event: 'close' | 'drain', listener: () => void): unknown;
  once(event: 'close', listener: () => void): unknown;
}

export interface H1Options {
  /** A request head must be complete this long after its first byte (or the connection's start): 408. */
  headersTimeoutMs: number;
  /** Idle keep-alive connections are closed after this; 0: never. */
  keepAliveTimeoutMs: number;
  /** Request line + headers; larger: 431. */
  maxHeaderBytes: number;
  /** How often timeouts are checked (node's `connectionsCheckingInterval`). */
  checkIntervalMs: number;
}

const CRLF2 = Buffer.from('\r\n\r\n');
const kConn = Symbol('nines.h1conn');
type H1Socket = Socket & { [kConn]?: H1Conn };
/** An answer up to this size ends up in one buffer with its head (a copy), larger ones in a writev. */
const COALESCE_MAX = 16_384;
/** Pipelined bytes buffered while a response is in flight before the socket is paused. */
const PENDING_LIMIT = 65_536;
const TIMEOUT_408 = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';
/** RFC 9110 §5.6.2 tchar. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) TCHAR[c] = 1;

/** `s[from..to)` is a token (a header name): the request parser's check, and node's on answers. */
function isToken(s: string, from: number, to: number): boolean {
  if (to <= from) return false;
  for (let k = from; k < to; k++) {
    const c = s.charCodeAt(k);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
}

/** `s[from..to)` is a valid header value: no control characters but tab, nothing past latin1. */
function isValue(s: string, from: number, to: number): boolean {
  for (let k = from; k < to; k++) {
    const c = s.charCodeAt(k);
    if ((c < 32 && c !== 9) || c === 127 || c > 255) return false;
  }
  return true;
}

class InvalidHeaderError extends Error {
  readonly code = 'ERR_INVALID_CHAR';
}

/**
 * The proxy's HTTP/1.1 server side for the common case, on the listening server's own sockets:
 * node's http server costs more per request (IncomingMessage, ServerResponse and their streams,
 * header objects, per-request timers) than all of the proxy's own work (profile in README.md).
 * A request that is not plain — a body, `Expect`, `Upgrade`, HTTP/1.0, anything unusual or invalid —
 * hands the connection over to node's http server (`handoff`), bytes included, so its behaviour there
 * is node's. Timeouts are checked by one sweep per `checkIntervalMs`, not per-request timers.
 */
export class H1Server {
  readonly opts: H1Options;
  readonly conns = new Set<H1Conn>();
  /** Connections handed over to node's http server. */
  handoffs = 0;
  /** The end of a keep-alive response head: `Connection` and node's `Keep-Alive` hint. */
  readonly keepAliveHeader: string;
  /** Coarse clock for timeouts, refreshed by the sweep (ms). */
  clock = Date.now();
  /** `Date` header value, refreshed by the sweep (at most `checkIntervalMs` old; node caches it a second). */
  date = new Date().toUTCString();
  private readonly handler: (ex: H1Exchange) => void;
  private readonly handoffTo: (socket: Socket) => void;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(opts: H1Options, handler: (ex: H1Exchange) => void, handoffTo: (socket: Socket) => void) {
    this.opts = opts;
    this.keepAliveHeader =
      opts.keepAliveTimeoutMs > 0
        ? `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(opts.keepAliveTimeoutMs / 1000)}\r\n\r\n`
        : 'Connection: keep-alive\r\n\r\n';
    this.handler = handler;
    this.handoffTo = handoffTo;
  }

  accept(socket: Socket): void {
    if (this.sweepTimer === null) {
      this.sweepTimer = setInterval(sweep, this.opts.checkIntervalMs, this);
      this.sweepTimer.unref();
      this.tick();
    }
    const conn = new H1Conn(this, socket);
    this.conns.add(conn);
  }

  /** @internal */
  dispatch(ex: H1Exchange): void {
    this.handler(ex);
  }

  /** @internal */
  handoff(socket: Socket): void {
    this.handoffs++;
    this.handoffTo(socket);
  }

  /** Closes the connections with nothing in flight (node's closeIdleConnections). */
  closeIdle(): void {
    for (const c of this.conns) if (c.current === null) c.socket.destroy();
  }

  closeAll(): void {
    for (const c of this.conns) c.socket.destroy();
  }

  stop(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  /** @internal */
  tick(): void {
    const now = Date.now();
    if (now - this.clock >= 1000 || this.sweepTimer === null) this.date = new Date(now).toUTCString();
    this.clock = now;
    const { headersTimeoutMs, keepAliveTimeoutMs } = this.opts;
    for (const c of this.conns) {
      if (c.current !== null) continue;
      if (c.headStartedAt !== 0) {
        if (now - c.headStartedAt > headersTimeoutMs) c.timeout();
      } else if (keepAliveTimeoutMs > 0 && now - c.lastActive > keepAliveTimeoutMs) c.socket.destroy();
    }
  }
}

function sweep(s: H1Server): void {
  s.tick();
}

/** One client connection on the fast path: one request at a time, pipelined ones buffered. */
class H1Conn {
  readonly server: H1Server;
  readonly socket: H1Socket;
  current: H1Exchange | null = null;
  /** Clock when the awaited request head started (0: no partial head pending). */
  headStartedAt: number;
  lastActive: number;
  private pending: Buffer | null = null;
  private parsing = false;
  private ended = false;
  private paused = false;
  private gone = false;

  constructor(server: H1Server, socket: Socket) {
    this.server = server;
    this.socket = socket as H1Socket;
    // As node: a new connection's first request head is due within the headers timeout.
    this.headStartedAt = server.clock;
    this.lastActive = server.clock;
    this.socket[kConn] = this;
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('drain', onSocketDrain);
    socket.on('close', onSocketClose);
    socket.on('error', onSocketError);
  }

  onData(chunk: Buffer): void {
    if (this.pending === null) this.pending = chunk;
    else this.pending = Buffer.concat([this.pending, chunk]);
    if (this.current !== null) {
      // Pipelined (or early) bytes: kept for after the response, within a bound.
      if (this.pending.length > PENDING_LIMIT && !this.paused) {
        this.paused = true;
        this.socket.pause();
      }
      return;
    }
    this.parse();
  }

  onEnd(): void {
    this.ended = true;
    // allowHalfOpen: the answer to a request in flight still goes out, then the connection ends.
    if (this.current === null) this.socket.end();
  }

  onClose(): void {
    this.gone = true;
    this.server.conns.delete(this);
    const ex = this.current;
    this.current = null;
    if (ex !== null && !ex.finished) ex.aborted();
  }

  /** The request head did not complete in time: 408, as node's http server. */
  timeout(): void {
    this.headStartedAt = 0;
    if (this.socket.writable) this.socket.end(TIMEOUT_408);
    else this.socket.destroy();
  }

  /** @internal the exchange's response ended. */
  done(ex: H1Exchange): void {
    this.current = null;
    this.lastActive = this.server.clock;
    if (!ex.shouldKeepAlive || this.ended) {
      this.socket.end();
      return;
    }
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    if (this.pending !== null) {
      this.headStartedAt = this.server.clock;
      // After the caller's own bookkeeping for this response (Forward.finish), not inside it.
      if (!this.parsing) process.nextTick(parseLater, this);
    }
  }

  parse(): void {
    if (this.parsing) return;
    this.parsing = true;
    const max = this.server.opts.maxHeaderBytes;
    while (this.current === null && this.pending !== null && !this.gone) {
      const buf = this.pending;
      const end = buf.indexOf(CRLF2);
      if (end === -1 || end + 4 > max) {
        if (end !== -1 || buf.length > max) {
          this.pending = null;
          this.socket.end(rawError('NINES_E_HEADERS_TOO_LARGE'));
        } else if (this.headStartedAt === 0) this.headStartedAt = this.server.clock;
        break;
      }
      const ex = parseHead(this, buf, end);
      if (ex === null) {
        this.handoff();
        break;
      }
      this.pending = end + 4 === buf.length ? null : buf.subarray(end + 4);
      this.headStartedAt = 0;
      this.current = ex;
      this.server.dispatch(ex);
    }
    this.parsing = false;
  }

  /** The rest of this connection goes to node's http server, starting with the bytes not yet handled. */
  private handoff(): void {
    this.gone = true;
    this.server.conns.delete(this);
    const s = this.socket;
    s.off('data', onSocketData);
    s.off('end', onSocketEnd);
    s.off('drain', onSocketDrain);
    s.off('close', onSocketClose);
    s.off('error', onSocketError);
    s[kConn] = undefined;
    const buf = this.pending;
    this.pending = null;
    if (buf !== null) s.unshift(buf);
    this.server.handoff(s);
    // Paused by us: node's 'data' listener only resumes a stream that was not paused explicitly.
    if (this.paused) s.resume();
  }
}

function parseLater(c: H1Conn): void {
  c.parse();
}

function onSocketData(this: H1Socket, chunk: Buffer): void {
  this[kConn]?.onData(chunk);
}
function onSocketEnd(this: H1Socket): void {
  this[kConn]?.onEnd();
}
function onSocketDrain(this: H1Socket): void {
  this[kConn]?.current?.drained();
}
function onSocketClose(this: H1Socket): void {
  this[kConn]?.onClose();
}
function onSocketError(): void {
  // 'close' follows; a client's reset is routine.
}

/**
 * Parses a request head (request line + headers, `end` = offset of the blank line) for the fast
 * path, or returns null when the request is not one it serves (node's server then takes it over,
 * including its error answers for invalid ones).
 */
function parseHead(conn: H1Conn, buf: Buffer, end: number): H1Exchange | null {
  const head = buf.toString('latin1', 0, end);
  const len = head.length;
  let lineEnd = head.indexOf('\r\n');
  if (lineEnd === -1) lineEnd = len;
  const sp1 = head.indexOf(' ');
  if (sp1 <= 0 || sp1 >= lineEnd) return null;
  for (let k = 0; k < sp1; k++) {
    const c = head.charCodeAt(k);
    if (c < 65 || c > 90) return null;
  }
  const sp2 = head.indexOf(' ', sp1 + 1);
  if (sp2 === -1 || sp2 >= lineEnd || head.charCodeAt(sp1 + 1) !== 47 /* / */) return null;
  for (let k = sp1 + 2; k < sp2; k++) {
    const c = head.charCodeAt(k);
    if (c <= 32 || c >= 127) return null;
  }
  if (lineEnd - sp2 !== 9 || !head.startsWith('HTTP/1.1', sp2 + 1)) return null;
  const raw: string[] = [];
  let keepAlive = true;
  let hasHost = false;
  let i = lineEnd + 2;
  while (i < len) {
    let j = head.indexOf('\r\n', i);
    if (j === -1) j = len;
    const colon = head.indexOf(':', i);
    if (colon === -1 || colon > j || !isToken(head, i, colon)) return null;
    let vs = colon + 1;
    let ve = j;
    while (vs < ve && (head.charCodeAt(vs) === 32 || head.charCodeAt(vs) === 9)) vs++;
    while (ve > vs && (head.charCodeAt(ve - 1) === 32 || head.charCodeAt(ve - 1) === 9)) ve--;
    if (!isValue(head, vs, ve)) return null;
    const name = head.slice(i, colon);
    const value = head.slice(vs, ve);
    switch (colon - i) {
      case 4:
        if (eqi(name, 'host')) {
          if (hasHost) return null;
          hasHost = true;
        }
        break;
      case 6:
        if (eqi(name, 'expect')) return null;
        break;
      case 7:
        if (eqi(name, 'upgrade')) return null;
        break;
      case 10:
        if (eqi(name, 'connection')) {
          const v = value.toLowerCase();
          if (v.includes('upgrade')) return null;
          if (v.includes('close')) keepAlive = false;
        }
        break;
      case 14:
        if (value !== '0' && eqi(name, 'content-length')) return null;
        break;
      case 17:
        if (eqi(name, 'transfer-encoding')) return null;
        break;
    }
    raw.push(name, value);
    i = j + 2;
  }
  if (!hasHost) return null;
  return new H1Exchange(conn, head.slice(0, sp1), head.slice(sp1 + 1, sp2), raw, keepAlive);
}

/**
 * One request on the fast path: the request (`ProxyRequest`) and its response (`ProxyResponse`) in
 * one object. The response head is written with the first body bytes (one `writev` for a small
 * answer); without a Content-Length it is chunked, or sized when the whole body comes with `end`.
 * 'close' listeners run only when the connection closes before the response ended (node's also run
 * after a completed one; the proxy's listeners have nothing to do then).
 */
export class H1Exchange implements ProxyRequest, ProxyResponse {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly socket: Socket;
  statusCode = 200;
  shouldKeepAlive: boolean;
  finished = false;
  private readonly conn: H1Conn;
  private lazyHeaders: IncomingHttpHeaders | null = null;
  private headWritten = false;
  /** The status line and headers, before framing and `Connection` (written with the first body bytes). */
  private head: string | null = null;
  private contentLength = -1;
  private hasDate = false;
  private bodyAllowed = true;
  private chunked = false;
  private destroyedFlag = false;
  private closeListeners: (() => void)[] | null = null;
  private drainListener: (() => void) | null = null;

  constructor(conn: H1Conn, method: string, url: string, rawHeaders: string[], keepAlive: boolean) {
    this.conn = conn;
    this.socket = conn.socket;
    this.method = method;
    this.url = url;
    this.rawHeaders = rawHeaders;
    this.shouldKeepAlive = keepAlive;
  }

  get headers(): IncomingHttpHeaders {
    if (this.lazyHeaders !== null) return this.lazyHeaders;
    const h: Record<string, string | string[]> = {};
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      const value = raw[i + 1]!;
      const prev = h[name];
      if (prev === undefined) h[name] = name === 'set-cookie' ? [value] : value;
      else if (Array.isArray(prev)) prev.push(value);
      else h[name] = `${prev}, ${value}`;
    }
    this.lazyHeaders = h as IncomingHttpHeaders;
    return this.lazyHeaders;
  }

  get headersSent(): boolean {
    return this.head !== null || this.headWritten;
  }

  get destroyed(): boolean {
    return this.destroyedFlag || this.socket.destroyed;
  }

  writeHead(statusCode: number, headers: string[]): this {
    if (this.headersSent) throw new Error('headers already sent');
    let s = `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode] ?? 'unknown'}\r\n`;
    let contentLength = -1;
    let hasDate = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      if (!isToken(name, 0, name.length)) {
        throw new InvalidHeaderError(`invalid header name ${JSON.stringify(name)}`);
      }
      if (!isValue(value, 0, value.length)) throw new InvalidHeaderError(`invalid value of header ${name}`);
      if (name.length === 14 && eqi(name, 'content-length')) contentLength = Number(value);
      else if (name.length === 4 && eqi(name, 'date')) hasDate = true;
      s += `${name}: ${value}\r\n`;
    }
    this.statusCode = statusCode;
    this.contentLength = contentLength;
    this.hasDate = hasDate;
    this.bodyAllowed =
      this.method !== 'HEAD' &&
      statusCode !== 204 &&
      statusCode !== 304 &&
      !(statusCode >= 100 && statusCode < 200);
    this.head = s;
    return this;
  }

  write(chunk: Buffer): boolean {
    if (this.finished || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode, []);
    const s = this.socket;
    if (this.head !== null) {
      s.cork();
      this.flushHead(-1);
      const ok = this.writeBody(chunk);
      s.uncork();
      return ok;
    }
    return this.writeBody(chunk);
  }

  end(chunk?: Buffer): this {
    if (this.finished) return this;
    this.finished = true;
    if (this.destroyed) return this;
    if (!this.headersSent) this.writeHead(this.statusCode, []);
    const s = this.socket;
    if (this.head !== null && (chunk === undefined || chunk.length <= COALESCE_MAX || !this.bodyAllowed)) {
      // The whole answer in one buffer: one write, cheaper than a writev of a string and a buffer
      // (measured: about 3 µs per request of the proxy's CPU).
      const head = this.headString(chunk === undefined || !this.bodyAllowed ? 0 : chunk.length);
      if (chunk === undefined || chunk.length === 0 || !this.bodyAllowed) s.write(head, 'latin1');
      else {
        const buf = Buffer.allocUnsafe(head.length + chunk.length);
        buf.write(head, 0, 'latin1');
        chunk.copy(buf, head.length);
        s.write(buf);
      }
    } else {
      s.cork();
      if (this.head !== null) this.flushHead(chunk === undefined ? 0 : chunk.length);
      if (chunk !== undefined && chunk.length > 0) this.writeBody(chunk);
      if (this.chunked) s.write('0\r\n\r\n', 'latin1');
      s.uncork();
    }
    this.closeListeners = null;
    this.drainListener = null;
    this.conn.done(this);
    return this;
  }

  destroy(): this {
    if (this.destroyedFlag) return this;
    this.destroyedFlag = true;
    this.socket.destroy();
    return this;
  }

  on(event: 'close' | 'drain', listener: () => void): this {
    if (event === 'drain') this.drainListener = listener;
    else if (!this.finished) {
      if (this.closeListeners === null) this.closeListeners = [listener];
      else this.closeListeners.push(listener);
    }
    return this;
  }

  once(event: 'close', listener: () => void): this {
    return this.on(event, listener);
  }

  /** @internal the connection closed before the response ended. */
  aborted(): void {
    this.destroyedFlag = true;
    const ls = this.closeListeners;
    this.closeListeners = null;
    if (ls !== null) for (const l of ls) l.call(this);
  }

  /** @internal the socket drained. */
  drained(): void {
    const l = this.drainListener;
    if (l !== null) l.call(this);
  }

  private flushHead(endLength: number): void {
    this.socket.write(this.headString(endLength), 'latin1');
  }

  /** The head with framing chosen: `endLength` ≥ 0 when the whole body is known (end). */
  private headString(endLength: number): string {
    let s = this.head!;
    this.head = null;
    this.headWritten = true;
    if (this.bodyAllowed && this.contentLength < 0) {
      if (endLength >= 0) s += `Content-Length: ${endLength}\r\n`;
      else {
        s += 'Transfer-Encoding: chunked\r\n';
        this.chunked = true;
      }
    }
    if (!this.hasDate) s += `Date: ${this.conn.server.date}\r\n`;
    s += this.shouldKeepAlive ? this.conn.server.keepAliveHeader : 'Connection: close\r\n\r\n';
    return s;
  }

  private writeBody(chunk: Buffer): boolean {
    if (!this.bodyAllowed || chunk.length === 0) return true;
    const s = this.socket;
    if (!this.chunked) return s.write(chunk);
    s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    s.write(chunk);
    return s.write('\r\n', 'latin1');
  }
}
