import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Millis } from '../types.js';

/**
 * Signed acknowledge links: `v1.<base64url(dedupKey)>.<expires unix s>.<base64url(HMAC-SHA256)>`,
 * the HMAC over `v1.<dedupKey>.<expires>` with the controller's ack secret. Self-contained: the API
 * route needs no lookup to verify; it then acknowledges the alert with that dedup key.
 */
export function ackToken(secret: string, dedupKey: string, expiresAt: Millis): string {
  const exp = Math.floor(expiresAt / 1000);
  const sig = createHmac('sha256', secret).update(`v1.${dedupKey}.${exp}`).digest('base64url');
  return `v1.${Buffer.from(dedupKey).toString('base64url')}.${exp}.${sig}`;
}

export type AckVerification =
  | { ok: true; dedupKey: string; expiresAt: Millis }
  | { ok: false; code: 'NINES_E_ACK_INVALID' | 'NINES_E_ACK_EXPIRED'; reason: string };

export function verifyAckToken(secret: string, token: string, now: Millis): AckVerification {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== 'v1')
    return { ok: false, code: 'NINES_E_ACK_INVALID', reason: 'malformed token' };
  const [, k = '', e = '', sig = ''] = parts;
  const dedupKey = Buffer.from(k, 'base64url').toString('utf8');
  if (!/^\d+$/.test(e) || dedupKey === '')
    return { ok: false, code: 'NINES_E_ACK_INVALID', reason: 'malformed token' };
  const expected = createHmac('sha256', secret).update(`v1.${dedupKey}.${e}`).digest();
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, code: 'NINES_E_ACK_INVALID', reason: 'signature does not verify' };
  const expiresAt = Number(e) * 1000;
  if (now >= expiresAt) return { ok: false, code: 'NINES_E_ACK_EXPIRED', reason: 'link expired' };
  return { ok: true, dedupKey, expiresAt };
}

/** `<base>/v1/alerts/ack?token=…` — the route the integrator adds (see docs/alerting.md). */
export function ackUrl(baseUrl: string, token: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/v1/alerts/ack?token=${encodeURIComponent(token)}`;
}
