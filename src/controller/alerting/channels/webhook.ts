import { createHmac, timingSafeEqual } from 'node:crypto';
import { DEFAULT_RETRY, deliverWithRetry, type RetryDeps, type RetryPolicy } from './delivery.js';
import { postJson } from './http.js';
import type { Channel, DeliveryResult, Notification } from './types.js';

export interface WebhookConfig {
  name: string;
  url: string;
  /** HMAC-SHA256 key; when set, every request carries `x-nines-signature`. */
  secret?: string;
  timeoutMs?: number;
  retry?: RetryPolicy;
}

/** The JSON body of a webhook notification (version 1). */
export interface WebhookBody {
  version: '1';
  dedupKey: string;
  transition: Notification['transition'];
  rule: string;
  summary: string;
  severity: Notification['severity'];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string | null;
  value: number | null;
  ackUrl: string | null;
  url: string | null;
  timestamp: string;
}

export function webhookBody(n: Notification): WebhookBody {
  return {
    version: '1',
    dedupKey: n.dedupKey,
    transition: n.transition,
    rule: n.ruleId,
    summary: n.summary,
    severity: n.severity,
    labels: { ...n.labels },
    annotations: { ...(n.annotations ?? {}) },
    startsAt: new Date(n.startsAt).toISOString(),
    endsAt: n.endsAt === undefined ? null : new Date(n.endsAt).toISOString(),
    value: n.value ?? null,
    ackUrl: n.ackUrl ?? null,
    url: n.url ?? null,
    timestamp: new Date(n.timestamp).toISOString(),
  };
}

/** Stripe-style signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
export function signWebhook(secret: string, body: string, unixSeconds: number): string {
  const sig = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${sig}`;
}

/** For receivers (and tests): checks the header against the raw body, within `toleranceSec` of `nowSec`. */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined,
  body: string,
  nowSec: number,
  toleranceSec = 300,
): boolean {
  if (header === undefined) return false;
  const parts = new Map(
    header.split(',').map((p) => {
      const i = p.indexOf('=');
      return [p.slice(0, i).trim(), p.slice(i + 1).trim()] as const;
    }),
  );
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1');
  if (!Number.isInteger(t) || v1 === undefined || !/^[0-9a-f]{64}$/.test(v1)) return false;
  if (Math.abs(nowSec - t) > toleranceSec) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(v1, 'hex'));
}

export function webhookChannel(cfg: WebhookConfig, deps: RetryDeps = {}): Channel {
  return {
    kind: 'webhook',
    name: cfg.name,
    send(n: Notification): Promise<DeliveryResult> {
      const body = JSON.stringify(webhookBody(n));
      return deliverWithRetry(
        cfg.name,
        () => {
          // Signed per attempt: a retry carries a fresh timestamp.
          const headers: Record<string, string> = { 'x-nines-dedup-key': n.dedupKey };
          if (cfg.secret !== undefined)
            headers['x-nines-signature'] = signWebhook(
              cfg.secret,
              body,
              Math.floor((deps.now ?? Date.now)() / 1000),
            );
          return postJson(cfg.url, body, { headers, timeoutMs: cfg.timeoutMs ?? 10_000 });
        },
        cfg.retry ?? DEFAULT_RETRY,
        deps,
      );
    },
  };
}
