import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { NinesError } from '../core/errors.js';
import type { Store, TokenRecord, TokenRole } from './store/types.js';

/**
 * Bearer tokens. Only their sha256 is stored; the admin token is shown once, written to a 0600 file.
 * Roles: `admin` may do everything, `read` may only read, `node` is what agents and proxies use
 * (the protocol endpoints and artifact downloads). Signed per-host requests arrive with the fleet issue.
 */

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newToken(role: TokenRole): string {
  return `nines_${role}_${randomBytes(24).toString('base64url')}`;
}

export async function createToken(store: Store, role: TokenRole, name: string): Promise<string> {
  const token = newToken(role);
  await store.insertToken({
    id: `t-${randomBytes(4).toString('hex')}`,
    hash: hashToken(token),
    role,
    name,
    createdAt: Date.now(),
    revokedAt: null,
  });
  return token;
}

export class Authenticator {
  private readonly store: Store;
  private readonly cache = new Map<string, TokenRecord>();

  constructor(store: Store) {
    this.store = store;
  }

  /** Resolve an `authorization` header to a token record, or throw 401 with the reason. */
  async authenticate(header: string | undefined): Promise<TokenRecord> {
    if (!header) throw new NinesError('NINES_E_AUTH_REQUIRED', 'missing authorization: Bearer <token>');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m?.[1])
      throw new NinesError('NINES_E_AUTH_REQUIRED', 'authorization header must be "Bearer <token>"');
    const hash = hashToken(m[1]);
    let rec = this.cache.get(hash);
    if (!rec) {
      rec = await this.store.findTokenByHash(hash);
      if (rec) this.cache.set(hash, rec);
    }
    if (!rec || rec.revokedAt !== null || !safeEqual(rec.hash, hash)) {
      throw new NinesError('NINES_E_AUTH_INVALID', 'unknown or revoked token');
    }
    return rec;
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** What each role may call. Protocol routes are for nodes (and admins, for debugging). */
export function allowed(role: TokenRole, method: string, url: string): boolean {
  if (role === 'admin') return true;
  const isProtocol = url.startsWith('/v1/agent/') || url.startsWith('/v1/proxy/');
  const isArtifact = method === 'GET' && /^\/v1\/services\/[^/]+\/releases\/[^/]+\/artifact/.test(url);
  if (role === 'node') return isProtocol || isArtifact;
  return (method === 'GET' || method === 'HEAD') && !isProtocol;
}
