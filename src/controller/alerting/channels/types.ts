import type { Labels, Millis, Severity } from '../types.js';

/** What is sent: one alert transition (or an acknowledgement) of one alert. */
export interface Notification {
  dedupKey: string;
  /** `acknowledged` is sent when someone acks (PagerDuty `acknowledge`; others say so in text). */
  transition: 'firing' | 'resolved' | 'acknowledged';
  ruleId: string;
  summary: string;
  severity: Severity;
  labels: Labels;
  annotations?: Labels;
  /** When the alert started firing (epoch ms). */
  startsAt: Millis;
  /** When it resolved, for `resolved`. */
  endsAt?: Millis;
  /** The signal's value at the transition. */
  value?: number;
  /** The affected system (PagerDuty `payload.source`); defaults to labels.instance / host / service. */
  source?: string;
  /** A signed acknowledge link (see ack.ts). */
  ackUrl?: string;
  /** A link to the alert in the dashboard. */
  url?: string;
  /** Time of the transition (epoch ms). */
  timestamp: Millis;
}

export interface Attempt {
  /** Attempt number, 1-based. */
  n: number;
  startedAt: Millis;
  durationMs: number;
  /** HTTP status, or SMTP response code for email. */
  status?: number;
  error?: string;
  /** Delay before the next attempt (ms), if one follows. */
  retryInMs?: number;
}

export interface DeliveryResult {
  ok: boolean;
  channel: string;
  attempts: Attempt[];
  /** Why it gave up, when !ok. */
  error?: string;
}

export interface Channel {
  /** `webhook`, `slack`, `pagerduty`, `email`. */
  readonly kind: string;
  /** The configured channel's name (unique in nines.yaml). */
  readonly name: string;
  send(n: Notification): Promise<DeliveryResult>;
}

export function notificationSource(n: Notification): string {
  return n.source ?? n.labels.instance ?? n.labels.host ?? n.labels.service ?? 'nines';
}

export function stateWord(n: Notification): string {
  return n.transition === 'firing' ? 'FIRING' : n.transition === 'resolved' ? 'RESOLVED' : 'ACKNOWLEDGED';
}
