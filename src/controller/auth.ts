import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { NinesError } from '../core/errors.js';
import { NonceCache, type ParsedAuthorization, parseAuthorization, SCHEME, verify } from '../core/signing.js';
import type { NonceStore } from './store/nonces.js';
import type { HostRecord, Store, TokenRecord, TokenRole } from './store/types.js';

/**
 * Who is calling. People and proxies use bearer tokens (only their sha256 is stored; the admin token
 * is written once to a 0600 file). Roles: `admin` does everything, `read` only reads, `node` is the
 * shared token of the embedded platform and of proxies, `join` only registers a host. A registered
 * host signs every request with its own key (`core/signing.ts`) and may act only for itself.
 */
export interface Principal {
  role: TokenRole;
  name: string;
  /** Set when the request was signed by a host. */
  hostId?: string;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newToken(role: TokenRole): string {
  return `nines_${role}_${randomBytes(24).toString('base64url')}`;
}

export async function createToken(
  store: Store,
  role: TokenRole,
  name: string,
  expiresAt: number | null = null,
): Promise<{ token: string; record: TokenRecord }> {
  const token = newToken(role);
  const record: TokenRecord = {
    id: `t-${randomBytes(4).toString('hex')}`,
    hash: hashToken(token),
    role,
    name,
    createdAt: Date.now(),
    revokedAt: null,
    expiresAt,
  };
  await store.insertToken(record);
  return { token, record };
}

/** A signed request that passed the cheap checks; its signature is verified once the body is read. */
export interface PendingSignature {
  auth: ParsedAuthorization;
  host: HostRecord;
}

export class Authenticator {
  private readonly store: Store;
  private readonly nonces: NonceCache;
  readonly windowMs: number;
  private readonly now: () => number;

  /** Several controllers on one database: nonces are also recorded there (store/nonces.ts). */
  private readonly shared: NonceStore | null;
  private lastPrune = 0;
  /**
   * Host records of signed requests, so a thousand agents' polls and reports do not each read their
   * host. Only with one controller on its store (no shared nonces): every change to a host's key or
   * revocation then goes through this controller's API, which calls `forgetHost` after writing it.
   * With several controllers another one may revoke a host, so each request reads it.
   */
  private readonly hosts: Map<string, HostRecord> | null;
  /** Bumped by `forgetHost`: a read that started before a forget must not refill the cache. */
  private forgets = 0;

  constructor(store: Store, opts: { windowMs?: number; now?: () => number; sharedNonces?: NonceStore } = {}) {
    this.store = store;
    this.windowMs = opts.windowMs ?? 300_000;
    this.now = opts.now ?? Date.now;
    this.nonces = new NonceCache(this.windowMs);
    this.shared = opts.sharedNonces ?? null;
    this.hosts = this.shared === null ? new Map() : null;
  }

  /** After a host's key or revocation changed: the next signed request reads it from the store. */
  forgetHost(hostId: string): void {
    this.forgets++;
    this.hosts?.delete(hostId);
  }

  private async host(hostId: string): Promise<HostRecord | undefined> {
    const cached = this.hosts?.get(hostId);
    if (cached) return cached;
    const before = this.forgets;
    const host = await this.store.getHost(hostId);
    // Unknown ids are not kept (garbage cannot fill the cache); a forget meanwhile may mean this
    // record is already stale.
    if (host && this.hosts && this.forgets === before) this.hosts.set(hostId, host);
    return host;
  }

  /**
   * Before the body is read: a bearer token is checked completely; a signed request is checked for
   * form, a known host with a key, not revoked, and the window. The signature and the nonce follow in
   * `verifySigned` (the body hash needs the body; a nonce is only remembered for a valid signature, so
   * garbage cannot fill the cache).
   */
  async authenticate(
    header: string | undefined,
  ): Promise<{ principal: Principal; pending?: PendingSignature }> {
    if (!header) throw new NinesError('NINES_E_AUTH_REQUIRED', 'missing authorization: Bearer <token>');
    if (header.startsWith(`${SCHEME} `)) {
      const auth = parseAuthorization(header);
      if (!auth)
        throw new NinesError('NINES_E_SIGNATURE_INVALID', `malformed ${SCHEME} authorization header`);
      const host = await this.host(auth.hostId);
      if (!host?.key) throw new NinesError('NINES_E_SIGNATURE_INVALID', `unknown host ${auth.hostId}`);
      if (host.revokedAt !== null)
        throw new NinesError('NINES_E_HOST_REVOKED', `host ${host.name} was revoked`);
      if (Math.abs(this.now() - auth.timestamp) > this.windowMs) {
        throw new NinesError(
          'NINES_E_SIGNATURE_EXPIRED',
          `signed at ${new Date(auth.timestamp).toISOString()}, outside ±${this.windowMs / 1000} s of the controller's clock`,
        );
      }
      return {
        principal: { role: 'node', name: `host ${host.name}`, hostId: host.id },
        pending: { auth, host },
      };
    }
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m?.[1])
      throw new NinesError('NINES_E_AUTH_REQUIRED', 'authorization header must be "Bearer <token>"');
    const hash = hashToken(m[1]);
    // Not cached: revocation and expiry must take effect at once, and this is one indexed lookup.
    const rec = await this.store.findTokenByHash(hash);
    if (!rec || !safeEqual(rec.hash, hash)) throw new NinesError('NINES_E_AUTH_INVALID', 'unknown token');
    if (rec.revokedAt !== null) throw new NinesError('NINES_E_AUTH_INVALID', 'this token was revoked');
    if (rec.expiresAt !== null && rec.expiresAt < this.now()) {
      throw new NinesError(
        'NINES_E_AUTH_INVALID',
        `this token expired at ${new Date(rec.expiresAt).toISOString()}`,
      );
    }
    return { principal: { role: rec.role, name: rec.name } };
  }

  /** After the body is read: the signature over it, then the nonce. */
  async verifySigned(p: PendingSignature, method: string, url: string, bodySha256: string): Promise<void> {
    const now = this.now();
    const verdict = verify(p.host.key ?? '', p.auth, method, url, bodySha256, now, this.windowMs);
    if (verdict === 'expired')
      throw new NinesError('NINES_E_SIGNATURE_EXPIRED', 'signed request outside the window');
    if (verdict !== 'ok') {
      // A kept record with an old key (a re-registration whose forgetHost was missed) must not lock
      // the host out: the next request reads it again.
      if (verdict === 'bad-signature' && this.hosts?.get(p.host.id) === p.host) this.hosts.delete(p.host.id);
      throw new NinesError('NINES_E_SIGNATURE_INVALID', `signature of host ${p.host.name} does not verify`);
    }
    const replay = () =>
      new NinesError('NINES_E_REPLAY', `nonce ${p.auth.nonce} of host ${p.host.name} was already used`);
    if (!this.nonces.remember(p.host.id, p.auth.nonce, p.auth.timestamp, now)) throw replay();
    if (this.shared !== null) {
      if (now - this.lastPrune > 60_000) {
        this.lastPrune = now;
        // Expired nonces can never be replayed (the window refuses them): forgetting them is housekeeping.
        void this.shared.prune(now - this.windowMs).catch(() => {});
      }
      if (!(await this.shared.remember(p.host.id, p.auth.nonce, p.auth.timestamp + this.windowMs))) {
        throw replay();
      }
    }
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** What each role may call. */
export function allowed(p: Principal, method: string, url: string): boolean {
  if (p.role === 'admin') return true;
  const isProtocol = url.startsWith('/v1/agent/') || url.startsWith('/v1/proxy/');
  const isArtifact = method === 'GET' && /^\/v1\/services\/[^/]+\/releases\/[^/]+\/artifact/.test(url);
  if (p.role === 'join') {
    return method === 'POST' && (url === '/v1/agent/register' || url === '/v1/proxy/register');
  }
  // A proxy own token: its part of the protocol only (registering again takes a join token).
  if (p.role === 'proxy') return url.startsWith('/v1/proxy/') && !url.startsWith('/v1/proxy/register');
  // A Prometheus scraper token: /metrics and nothing else.
  if (p.role === 'metrics')
    return (method === 'GET' || method === 'HEAD') && url.split('?')[0] === '/metrics';
  if (p.role === 'node') return isProtocol || isArtifact;
  return (method === 'GET' || method === 'HEAD') && !isProtocol;
}
