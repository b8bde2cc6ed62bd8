import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { rawError } from './errors.js';
import type { Route } from './routing.js';
import type { Tunnel, Upstream } from './upstream.js';

export interface TunnelOwner {
  readonly logger: Logger;
  readonly connectTimeoutMs: number;
}

/** Close frame, status 1001 Going Away, server → client (unmasked). */
const CLOSE_TO_CLIENT = Buffer.from([0x88, 0x02, 0x03, 0xe9]);

/** The same frame client → server: must be masked. */
function closeToUpstream(): Buffer {
  const mask = randomBytes(4);
  return Buffer.from([0x88, 0x82, mask[0]!, mask[1]!, mask[2]!, mask[3]!, 0x03 ^ mask[0]!, 0xe9 ^ mask[1]!]);
}

/**
 * Tracks WebSocket frame boundaries in one direction without copying payloads, so a close frame can
 * be injected between frames (control frames may interleave with a fragmented message, RFC 6455 §5.4).
 */
export class FrameCursor {
  private remaining = 0;
  private readonly hdr = Buffer.alloc(14);
  private hdrLen = 0;
  private hdrNeed = 2;

  get atBoundary(): boolean {
    return this.remaining === 0 && this.hdrLen === 0;
  }

  /**
   * Advances over `chunk`. With `stop`, returns the offset of the first frame boundary (0 if already at
   * one) or -1 if none occurs in the chunk; without, returns chunk.length.
   */
  feed(chunk: Buffer, stop: boolean): number {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (stop && this.atBoundary) return pos;
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, len - pos);
        this.remaining -= take;
        pos += take;
        continue;
      }
      this.hdr[this.hdrLen++] = chunk[pos++]!;
      if (this.hdrLen === 2) {
        const b1 = this.hdr[1]!;
        const l7 = b1 & 0x7f;
        this.hdrNeed = 2 + (b1 & 0x80 ? 4 : 0) + (l7 === 126 ? 2 : l7 === 127 ? 8 : 0);
      }
      if (this.hdrLen >= 2 && this.hdrLen === this.hdrNeed) {
        const l7 = this.hdr[1]! & 0x7f;
        let n = l7;
        if (l7 === 126) n = this.hdr.readUInt16BE(2);
        else if (l7 === 127) n = this.hdr.readUInt32BE(2) * 2 ** 32 + this.hdr.readUInt32BE(6);
        this.remaining = n;
        this.hdrLen = 0;
        this.hdrNeed = 2;
      }
    }
    if (stop) return this.atBoundary ? len : -1;
    return len;
  }
}

/**
 * One proxied WebSocket (or any Upgrade): a TCP connection to the instance, the handshake passed
 * through, then bytes both ways with frame boundaries tracked. It counts as in flight on its instance;
 * when the instance drains, after the service's WebSocket drain timeout, it sends close frames 1001 to
 * both sides at a frame boundary and ends both connections.
 */
export class WsTunnel implements Tunnel {
  private readonly owner: TunnelOwner;
  private readonly route: Route;
  private upstream: Upstream;
  private readonly client: Duplex;
  private readonly requestHead: Buffer;
  private sock: Socket | null = null;
  private handshake: Buffer | null = Buffer.alloc(0);
  /** The upstream did not switch protocols: bytes pass through untouched. */
  private raw = false;
  private readonly c2u = new FrameCursor();
  private readonly u2c = new FrameCursor();
  private connected = false;
  private attempts = 0;
  private ended = false;
  private goingAway = false;
  private sentToClient = false;
  private sentToUpstream = false;
  private drainTimer: NodeJS.Timeout | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private readonly requestId: string;

  constructor(
    owner: TunnelOwner,
    route: Route,
    upstream: Upstream,
    client: Duplex,
    requestHead: Buffer,
    requestId: string,
  ) {
    this.owner = owner;
    this.route = route;
    this.upstream = upstream;
    this.client = client;
    this.requestHead = requestHead;
    this.requestId = requestId;
  }

  start(): void {
    this.upstream.addTunnel(this);
    this.client.on('error', () => this.destroy());
    this.client.on('close', () => this.destroy());
    this.client.on('end', () => this.sock?.end());
    this.client.on('data', (c: Buffer) => this.fromClient(c));
    this.client.pause();
    this.connect();
  }

  drainAfter(ms: number): void {
    if (this.drainTimer !== null || this.ended) return;
    this.drainTimer = setTimeout(() => this.goAway(), ms);
    this.drainTimer.unref();
  }

  destroy(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.drainTimer !== null) clearTimeout(this.drainTimer);
    if (this.killTimer !== null) clearTimeout(this.killTimer);
    this.client.destroy();
    this.sock?.destroy();
    this.upstream.removeTunnel(this);
  }

  private connect(): void {
    this.attempts++;
    const u = this.upstream;
    const host = u.address.startsWith('[') ? u.address.slice(1, -1) : u.address;
    const sock = netConnect({ host, port: u.port, noDelay: true });
    this.sock = sock;
    sock.setTimeout(this.owner.connectTimeoutMs);
    sock.once('timeout', () => {
      if (!this.connected) sock.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    });
    sock.once('connect', () => {
      this.connected = true;
      sock.setTimeout(0);
      sock.write(this.requestHead);
      this.client.resume();
    });
    sock.on('data', (c: Buffer) => this.fromUpstream(c));
    sock.on('end', () => this.client.end());
    sock.on('error', (err) => {
      if (this.connected || this.ended) return;
      this.connectFailed(sock, err);
    });
    sock.on('close', () => {
      if (this.connected && this.sock === sock) this.destroy();
    });
  }

  private connectFailed(sock: Socket, err: Error): void {
    const failed = this.upstream;
    failed.connectFailed(err);
    const next = this.attempts <= this.route.retryAttempts ? this.route.pick(failed) : null;
    if (next !== null) {
      failed.removeTunnel(this);
      this.upstream = next;
      next.addTunnel(this);
      this.sock = null;
      sock.destroy();
      this.connect();
      return;
    }
    this.owner.logger.warn({ instance: failed.id, err: err.message }, 'proxy: websocket connect failed');
    if (this.client.writable) this.client.end(rawError('NINES_E_UPSTREAM_CONNECT', this.requestId));
    this.sock = null;
    sock.destroy();
    setTimeout(() => this.destroy(), 100).unref();
  }

  private fromClient(c: Buffer): void {
    const sock = this.sock;
    if (sock === null || this.ended) return;
    if (this.raw || this.handshake !== null) {
      if (!sock.write(c)) this.backpressure(this.client, sock);
      return;
    }
    if (this.sentToUpstream) return; // nothing may follow our close frame
    if (this.goingAway) {
      const at = this.c2u.feed(c, true);
      if (at === -1) {
        sock.write(c);
        return;
      }
      if (at > 0) sock.write(c.subarray(0, at));
      this.sendCloseToUpstream();
      return;
    }
    this.c2u.feed(c, false);
    if (!sock.write(c)) this.backpressure(this.client, sock);
  }

  private fromUpstream(c: Buffer): void {
    if (this.ended) return;
    if (this.handshake !== null) {
      const buf = this.handshake.length === 0 ? c : Buffer.concat([this.handshake, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) {
        this.handshake = buf;
        if (buf.length > 65536) this.destroy();
        return;
      }
      this.handshake = null;
      const head = buf.subarray(0, end + 4);
      this.raw = !/^HTTP\/1\.[01] 101/.test(head.toString('latin1', 0, 16));
      this.client.write(head);
      const rest = buf.subarray(end + 4);
      if (rest.length > 0) this.fromUpstream(rest);
      if (!this.raw && this.goingAway) this.goAwayNow();
      return;
    }
    if (this.raw) {
      if (!this.client.write(c)) this.backpressure(this.sock!, this.client);
      return;
    }
    if (this.sentToClient) return;
    if (this.goingAway) {
      const at = this.u2c.feed(c, true);
      if (at === -1) {
        this.client.write(c);
        return;
      }
      if (at > 0) this.client.write(c.subarray(0, at));
      this.sendCloseToClient();
      return;
    }
    this.u2c.feed(c, false);
    if (!this.client.write(c)) this.backpressure(this.sock!, this.client);
  }

  private backpressure(from: Duplex, to: Duplex): void {
    from.pause();
    to.once('drain', () => from.resume());
  }

  /** Drain timeout: close frames 1001 to both sides at the next frame boundary, then end both. */
  private goAway(): void {
    this.drainTimer = null;
    if (this.ended || this.goingAway) return;
    this.goingAway = true;
    this.owner.logger.info(
      { instance: this.upstream.id, service: this.route.name },
      'proxy: websocket closed (1001) for drain',
    );
    this.killTimer = setTimeout(() => this.destroy(), 2000);
    this.killTimer.unref();
    if (this.raw || !this.connected) {
      this.destroy();
      return;
    }
    if (this.handshake === null) this.goAwayNow();
  }

  private goAwayNow(): void {
    if (this.u2c.atBoundary) this.sendCloseToClient();
    if (this.c2u.atBoundary) this.sendCloseToUpstream();
  }

  private sendCloseToClient(): void {
    if (this.sentToClient) return;
    this.sentToClient = true;
    this.client.write(CLOSE_TO_CLIENT);
    this.maybeEnd();
  }

  private sendCloseToUpstream(): void {
    if (this.sentToUpstream) return;
    this.sentToUpstream = true;
    this.sock?.write(closeToUpstream());
    this.maybeEnd();
  }

  private maybeEnd(): void {
    if (!this.sentToClient || !this.sentToUpstream) return;
    this.client.end();
    this.sock?.end();
  }
}
