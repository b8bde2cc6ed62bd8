import type { AlertingConfig, ChannelConfig } from '../../core/alerting-config.js';
import { WEEKDAYS } from '../../core/alerting-config.js';
import type { RetryDeps, RetryPolicy } from './channels/delivery.js';
import { emailChannel } from './channels/email.js';
import { pagerDutyChannel } from './channels/pagerduty.js';
import { slackChannel } from './channels/slack.js';
import type { Channel } from './channels/types.js';
import { webhookChannel } from './channels/webhook.js';
import type { EscalationPolicy, Schedule } from './escalation.js';
import { type GroupingOptions, type InhibitRule, type MaintenanceWindow, parseMatcher } from './grouping.js';
import type { AlertRule } from './lifecycle.js';

/** A rule with where its notifications go. */
export interface RoutedRule extends AlertRule {
  channels: readonly string[];
  escalation?: string;
}

/** The alerting config in the shapes the pure core works with. */
export interface AlertingModel {
  rules: RoutedRule[];
  slos: {
    service: string;
    objective: number;
    page: readonly string[];
    ticket: readonly string[];
    escalation?: string;
  }[];
  channels: Map<string, Channel>;
  schedules: Map<string, Schedule>;
  policies: Map<string, EscalationPolicy>;
  /** user → channel names (how a person is reached). */
  users: Map<string, readonly string[]>;
  maintenance: MaintenanceWindow[];
  inhibit: InhibitRule[];
  grouping: GroupingOptions;
  ackLinkTtlMs: number;
  deployGraceMs: number;
  publicUrl?: string;
}

function retryPolicy(
  r: { maxAttempts: number; baseDelay: number; maxDelay: number; maxRetryAfter: number } | undefined,
): RetryPolicy | undefined {
  return (
    r && {
      maxAttempts: r.maxAttempts,
      baseDelayMs: r.baseDelay,
      maxDelayMs: r.maxDelay,
      maxRetryAfterMs: r.maxRetryAfter,
    }
  );
}

export function buildChannel(name: string, c: ChannelConfig, deps: RetryDeps = {}): Channel {
  const retry = retryPolicy(c.retry);
  const common = { name, timeoutMs: c.timeout, ...(retry ? { retry } : {}) };
  switch (c.kind) {
    case 'webhook':
      return webhookChannel({ ...common, url: c.url, ...(c.secret ? { secret: c.secret } : {}) }, deps);
    case 'slack':
      return slackChannel({ ...common, url: c.url }, deps);
    case 'pagerduty':
      return pagerDutyChannel(
        { ...common, routingKey: c.routingKey, ...(c.url ? { url: c.url } : {}) },
        deps,
      );
    case 'email':
      return emailChannel(
        {
          ...common,
          host: c.host,
          port: c.port,
          secure: c.secure,
          requireTLS: c.requireTLS,
          ...(c.auth ? { auth: c.auth } : {}),
          from: c.from,
          to: c.to,
        },
        deps,
      );
  }
}

/**
 * The host-down inhibition every config gets: a firing alert of a rule on `host_up` hides the alerts of
 * the same host from every other rule (its instances' alerts are the symptom, not the cause).
 */
export function hostDownInhibitions(rules: readonly AlertRule[]): InhibitRule[] {
  return rules
    .filter((r) => r.signal === 'host_up')
    .map((r) => ({
      source: [{ name: 'alertname', op: '=', value: r.id }],
      target: [{ name: 'alertname', op: '!=', value: r.id }],
      equal: ['host'],
    }));
}

export function modelFromConfig(c: AlertingConfig, deps: RetryDeps = {}): AlertingModel {
  const defaults = c.alerting.notify;
  const rules: RoutedRule[] = Object.entries(c.alerts).map(([id, r]) => {
    const escalation = r.escalation ?? c.alerting.escalation;
    return {
      id,
      signal: r.signal,
      selector: r.where,
      op: r.condition.op,
      threshold: r.condition.threshold,
      forMs: r.for,
      severity: r.severity,
      labels: r.labels,
      ...(r.summary ? { summary: r.summary } : {}),
      channels: r.notify ?? defaults,
      ...(escalation ? { escalation } : {}),
    };
  });
  const slos = Object.entries(c.slos).map(([service, s]) => {
    const escalation = s.escalation ?? c.alerting.escalation;
    const page = s.page ?? defaults;
    return {
      service,
      objective: s.objective,
      page,
      ticket: s.ticket ?? page,
      ...(escalation ? { escalation } : {}),
    };
  });
  const channels = new Map(
    Object.entries(c.channels).map(([n, ch]) => [n, buildChannel(n, ch, deps)] as const),
  );
  const schedules = new Map<string, Schedule>(
    Object.entries(c.schedules).map(([id, s]) => [
      id,
      {
        id,
        rotations: s.rotations.map((r) => ({
          users: r.users,
          handoffAt: Date.parse(r.handoff),
          shiftMs: r.shift,
          ...(r.until ? { until: Date.parse(r.until) } : {}),
        })),
        overrides: s.overrides.map((o) => ({
          user: o.user,
          start: Date.parse(o.start),
          end: Date.parse(o.end),
        })),
      },
    ]),
  );
  const policies = new Map<string, EscalationPolicy>(
    Object.entries(c.escalations).map(([id, p]) => [
      id,
      {
        id,
        repeat: p.repeat,
        levels: p.levels.map((l) => ({ targets: l.notify, escalateAfterMs: l.after })),
      },
    ]),
  );
  const maintenance: MaintenanceWindow[] = Object.entries(c.maintenance).map(([id, w]) => ({
    id,
    matchers: w.matchers.map(parseMatcher),
    schedule:
      w.weekly !== undefined
        ? {
            kind: 'weekly',
            days: w.weekly.days.map((d) => WEEKDAYS.indexOf(d)),
            start: w.weekly.at,
            durationMs: w.weekly.duration,
          }
        : { kind: 'once', startsAt: Date.parse(w.start ?? ''), endsAt: Date.parse(w.end ?? '') },
  }));
  const inhibit: InhibitRule[] = [
    ...hostDownInhibitions(rules),
    ...c.alerting.inhibit.map((i) => ({
      source: i.source.map(parseMatcher),
      target: i.target.map(parseMatcher),
      equal: i.equal,
    })),
  ];
  return {
    rules,
    slos,
    channels,
    schedules,
    policies,
    users: new Map(Object.entries(c.alerting.users).map(([u, v]) => [u, v.notify] as const)),
    maintenance,
    inhibit,
    grouping: {
      groupBy: c.alerting.groupBy,
      groupWaitMs: c.alerting.groupWait,
      groupIntervalMs: c.alerting.groupInterval,
      repeatIntervalMs: c.alerting.repeatInterval,
    },
    ackLinkTtlMs: c.alerting.ackLinkTtl,
    deployGraceMs: c.alerting.deployGrace,
    ...(c.alerting.publicUrl ? { publicUrl: c.alerting.publicUrl } : {}),
  };
}
