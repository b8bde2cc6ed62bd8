import { DEFAULT_RETRY, deliverWithRetry, type RetryDeps, type RetryPolicy } from './delivery.js';
import { postJson } from './http.js';
import { type Channel, type DeliveryResult, type Notification, notificationSource } from './types.js';

export const PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

export interface PagerDutyConfig {
  name: string;
  /** The 32-character integration key of an Events API v2 integration. */
  routingKey: string;
  url?: string;
  timeoutMs?: number;
  retry?: RetryPolicy;
}

export type PagerDutyEvent =
  | {
      routing_key: string;
      event_action: 'trigger';
      dedup_key: string;
      payload: {
        summary: string;
        source: string;
        severity: Notification['severity'];
        timestamp: string;
        component?: string;
        group?: string;
        class: string;
        custom_details: Record<string, unknown>;
      };
      client: 'nines';
      client_url?: string;
      links?: { href: string; text: string }[];
    }
  | { routing_key: string; event_action: 'acknowledge' | 'resolve'; dedup_key: string };

/**
 * Events API v2 (developer.pagerduty.com, "Send an Alert Event"): firing → `trigger` with the payload;
 * acknowledged → `acknowledge`, resolved → `resolve`, both with only routing_key, dedup_key, event_action.
 * summary is capped at PagerDuty's 1024 characters.
 */
export function pagerDutyEvent(routingKey: string, n: Notification): PagerDutyEvent {
  if (n.transition !== 'firing')
    return {
      routing_key: routingKey,
      event_action: n.transition === 'resolved' ? 'resolve' : 'acknowledge',
      dedup_key: n.dedupKey,
    };
  const ev: PagerDutyEvent = {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: n.dedupKey,
    payload: {
      summary: n.summary.slice(0, 1024),
      source: notificationSource(n),
      severity: n.severity,
      timestamp: new Date(n.timestamp).toISOString(),
      class: n.ruleId,
      custom_details: {
        labels: { ...n.labels },
        ...(n.annotations === undefined ? {} : { annotations: { ...n.annotations } }),
        ...(n.value === undefined ? {} : { value: n.value }),
        firing_since: new Date(n.startsAt).toISOString(),
      },
    },
    client: 'nines',
  };
  if (n.labels.service !== undefined) ev.payload.component = n.labels.service;
  if (n.labels.env !== undefined) ev.payload.group = n.labels.env;
  if (n.url !== undefined) {
    ev.client_url = n.url;
    ev.links = [{ href: n.url, text: 'Open in nines' }];
  }
  return ev;
}

export function pagerDutyChannel(cfg: PagerDutyConfig, deps: RetryDeps = {}): Channel {
  const url = cfg.url ?? PAGERDUTY_EVENTS_URL;
  return {
    kind: 'pagerduty',
    name: cfg.name,
    send(n: Notification): Promise<DeliveryResult> {
      const body = JSON.stringify(pagerDutyEvent(cfg.routingKey, n));
      return deliverWithRetry(
        cfg.name,
        () => postJson(url, body, { timeoutMs: cfg.timeoutMs ?? 10_000 }),
        cfg.retry ?? DEFAULT_RETRY,
        deps,
      );
    },
  };
}
