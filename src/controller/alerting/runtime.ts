import type { Logger } from 'pino';
import { type AlertingConfig, alertingConfigSchema } from '../../core/alerting-config.js';
import { NinesError } from '../../core/errors.js';
import type { Store } from '../store/types.js';
import { type Counts, DEFAULT_BURN_WINDOWS, evaluateBurnRates } from './burnrate.js';
import { ackToken, ackUrl } from './channels/ack.js';
import { backoffDelay, DEFAULT_RETRY, deliveryKey, type RetryDeps } from './channels/delivery.js';
import type { DeliveryResult, Notification } from './channels/types.js';
import { escalationDue } from './escalation.js';
import { type AlertingModel, modelFromConfig, type RoutedRule } from './from-config.js';
import {
  type ActiveAlert,
  type AlertGroup,
  deploySilence,
  groupAlerts,
  groupDue,
  groupKey,
  markNotified,
  type Silence,
  suppression,
} from './grouping.js';
import { type Evaluation, evaluateRule, ruleSelects, type Sample } from './lifecycle.js';
import type { RequestSignals, SignalSource } from './sources.js';
import type { AlertStore, StoredAlert } from './store.js';
import { HOUR, MINUTE, type Millis, type Severity } from './types.js';

export interface AlertRuntimeDeps {
  alerts: AlertStore;
  store: Store;
  sources: readonly SignalSource[];
  /** The request counters SLO burn rates are computed from. */
  requests?: RequestSignals;
  /** This controller's id in the delivery log. */
  controllerId: string;
  /** The HMAC key of acknowledge links (shared by all controllers: it lives in the store). */
  ackSecret: () => string;
  /** Where people reach the controller (ack links), unless the config's alerting.publicUrl says. */
  baseUrl: () => string;
  logger: Logger;
  now?: () => Millis;
  retryDeps?: RetryDeps;
  /** How long a claim holds before another controller may take the delivery over. */
  leaseMs?: Millis;
  /** Deliveries (each with its own retries) before giving up. */
  maxDeliveries?: number;
  /**
   * After evaluation (re)starts — a new leader, a restarted controller — a series with no sample yet
   * does not resolve its alert for this long (default 30 s): check states, host and instance reports
   * need a round to arrive, and "no data yet" is not a recovery (it paged firing → resolved → firing
   * across a takeover). A rule that was removed still resolves its alerts at once.
   */
  warmupMs?: Millis;
}

const EMPTY: AlertingConfig = alertingConfigSchema.parse({});
const SLO_RULE = 'slo_burn';

/** Suppression as one string for the alert row: `silence:ID`, `maintenance:ID`, `inhibited:KEY`. */
function suppressionText(s: ReturnType<typeof suppression>): string | null {
  if (s === undefined) return null;
  return s.kind === 'inhibited' ? `inhibited:${s.by}` : `${s.kind}:${s.ids.join(',')}`;
}

function fill(template: string, labels: Readonly<Record<string, string>>, value: number | undefined): string {
  return template.replace(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g, (_m, k: string) =>
    k === 'value' ? (value === undefined ? '' : String(Math.round(value * 1e4) / 1e4)) : (labels[k] ?? ''),
  );
}

/**
 * One evaluation pass of the alerting pipeline (the scheduler calls `tick()`; tests call it with their
 * own clock): signals → rules → alert lifecycle (stored) → suppression (maintenance, silences incl. the
 * running deploys' own, inhibition) → grouped notifications and escalations, each delivery claimed in
 * the delivery log before it is sent, sent in the background, every attempt recorded.
 */
export class AlertRuntime {
  private readonly d: AlertRuntimeDeps;
  private readonly now: () => Millis;
  private model: AlertingModel = modelFromConfig(EMPTY);
  private modelAt = -1;
  /** When this controller began evaluating (its leadership term); see AlertRuntimeDeps.warmupMs. */
  private evaluatingSince: Millis | undefined;
  private readonly inflight = new Set<Promise<void>>();
  private readonly deployInstances = new Map<string, Set<string>>();
  /** `dedupKey@firedAt` of resolved episodes → whether their firing was sent (stable once resolved). */
  private readonly firingSent = new Map<string, boolean>();
  private lastPrune = 0;

  constructor(deps: AlertRuntimeDeps) {
    this.d = deps;
    this.now = deps.now ?? Date.now;
  }

  get current(): AlertingModel {
    return this.model;
  }

  /** Reloads the model when `nines up` stored a new config (any controller may have taken it). */
  async refreshModel(): Promise<AlertingModel> {
    const c = await this.d.alerts.getConfig();
    if (c !== undefined && c.updatedAt !== this.modelAt) {
      this.model = modelFromConfig(alertingConfigSchema.parse(c.config), this.d.retryDeps);
      this.modelAt = c.updatedAt;
    }
    return this.model;
  }

  /** Waits for the deliveries in flight (shutdown, tests). */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private rulesOf(m: AlertingModel): RoutedRule[] {
    const slo: RoutedRule[] = [];
    for (const s of m.slos)
      for (const w of DEFAULT_BURN_WINDOWS)
        slo.push({
          id: SLO_RULE,
          signal: `slo_burn:${w.name}`,
          selector: { service: s.service },
          op: '>=',
          threshold: w.factor,
          forMs: 0,
          severity: w.severity === 'page' ? 'critical' : 'warning',
          summary: `{{service}} burns its ${(s.objective * 100).toPrecision(4)}% error budget at {{value}}× (${w.name}: ≥ ${w.factor}× over ${w.longMs / HOUR} h and ${w.shortMs / MINUTE} min)`,
          channels: w.severity === 'page' ? s.page : s.ticket,
          ...(s.escalation !== undefined && w.severity === 'page' ? { escalation: s.escalation } : {}),
        });
    return [...m.rules, ...slo];
  }

  private async sloSamples(m: AlertingModel, now: Millis): Promise<Sample[]> {
    const req = this.d.requests;
    if (req === undefined) return [];
    const out: Sample[] = [];
    for (const s of m.slos) {
      // The counts come from the store (async); the burn-rate arithmetic stays a pure function.
      const counts = new Map<Millis, Counts>();
      for (const w of DEFAULT_BURN_WINDOWS)
        for (const ms of [w.longMs, w.shortMs])
          if (!counts.has(ms)) counts.set(ms, await req.countsOver(s.service, ms, now));
      const burns = evaluateBurnRates(s.objective, (ms) => counts.get(ms) ?? { good: 0, total: 0 });
      for (const b of burns)
        out.push({
          signal: `slo_burn:${b.window.name}`,
          labels: { service: s.service, window: b.window.name },
          // Both windows must burn: the smaller of the two crosses the factor only when both do.
          value: Math.min(b.longBurn, b.shortBurn),
        });
    }
    return out;
  }

  private ruleFor(
    rules: readonly RoutedRule[],
    a: Pick<StoredAlert, 'ruleId' | 'labels'>,
  ): RoutedRule | undefined {
    return rules.find(
      (r) => r.id === a.ruleId && (r.id !== SLO_RULE || r.signal === `slo_burn:${a.labels.window ?? ''}`),
    );
  }

  /** Evaluation (re)starts now (AlertScheduler.start: this controller became the leader). */
  begin(): void {
    this.evaluatingSince = this.now();
  }

  async tick(): Promise<void> {
    const now = this.now();
    this.evaluatingSince ??= now;
    const warming = now - this.evaluatingSince < (this.d.warmupMs ?? 30_000);
    const m = await this.refreshModel();
    const rules = this.rulesOf(m);
    const stored = new Map((await this.d.alerts.listAlerts()).map((a) => [a.dedupKey, a]));
    // Request counters are folded in every tick, so SLO windows are complete once an SLO is set.
    await this.d.requests?.sample(now);
    // Nothing configured and nothing left to resolve: no work (and no deploy silences to write).
    if (rules.length === 0 && stored.size === 0) return;
    const samples: Sample[] = [];
    for (const s of this.d.sources) {
      try {
        samples.push(...(await s.collect(now)));
      } catch (err) {
        this.d.logger.warn({ err, source: s.name }, 'signal source failed; its alerts keep their state');
      }
    }
    samples.push(...(await this.sloSamples(m, now)));
    const seen = new Set<string>();

    const apply = async (rule: RoutedRule, ev: Evaluation, value: number | undefined) => {
      seen.add(ev.dedupKey);
      const prev = stored.get(ev.dedupKey);
      if (prev === undefined && ev.state === 'inactive') return; // nothing to remember
      const next: StoredAlert = {
        ...ev.next,
        dedupKey: ev.dedupKey,
        ruleId: rule.id,
        labels: ev.labels,
        severity: rule.severity,
        summary: fill(
          rule.summary ?? `${rule.id}: ${rule.signal} is {{value}} (${rule.op} ${rule.threshold})`,
          ev.labels,
          value ?? ev.next.lastValue,
        ),
        suppressed: prev?.suppressed ?? null,
        updatedAt: prev?.updatedAt ?? now,
      };
      if (ev.transition !== undefined) next.updatedAt = now;
      const changed =
        prev === undefined ||
        ev.transition !== undefined ||
        prev.lastValue !== next.lastValue ||
        prev.summary !== next.summary;
      if (!changed) {
        stored.set(ev.dedupKey, next);
        return;
      }
      if (!(await this.d.alerts.casAlert(next, prev))) {
        // Someone else changed it since this tick read it (an ack, another controller): theirs stands.
        const fresh = await this.d.alerts.getAlert(ev.dedupKey);
        if (fresh) stored.set(ev.dedupKey, fresh);
        else stored.delete(ev.dedupKey);
        return;
      }
      stored.set(ev.dedupKey, next);
      if (ev.transition !== undefined)
        await this.d.alerts.appendEvent(ev.dedupKey, now, ev.transition, null, {
          value: next.lastValue ?? null,
        });
    };

    for (const rule of rules)
      for (const sample of samples)
        if (ruleSelects(rule, sample)) {
          const key = evaluateRule(rule, sample, undefined, now).dedupKey;
          await apply(rule, evaluateRule(rule, sample, stored.get(key), now), sample.value);
        }
    // Series that went away (instance removed, rule deleted): no data, so pending ends and firing resolves.
    for (const a of [...stored.values()]) {
      if (seen.has(a.dedupKey) || (a.state !== 'firing' && a.state !== 'pending')) continue;
      if (warming && this.ruleFor(rules, a) !== undefined) continue;
      const rule: RoutedRule = this.ruleFor(rules, a) ?? {
        id: a.ruleId,
        signal: '(removed)',
        op: '>',
        threshold: 0,
        forMs: 0,
        severity: a.severity,
        channels: [],
      };
      await apply(
        rule,
        evaluateRule(rule, { signal: rule.signal, labels: a.labels, value: undefined }, a, now),
        undefined,
      );
    }

    // Suppression, recomputed every tick (silences end, hosts come back).
    const silences = await this.refreshDeploySilences(m, now);
    const all = [...stored.values()];
    const active: ActiveAlert[] = all.map((a) => ({
      dedupKey: a.dedupKey,
      labels: a.labels,
      state: a.state,
    }));
    for (const a of all) {
      const why =
        a.state === 'firing' || a.state === 'pending'
          ? suppressionText(
              suppression(
                a,
                { silences, maintenance: m.maintenance, inhibitRules: m.inhibit, alerts: active },
                now,
              ),
            )
          : a.suppressed;
      if (why !== a.suppressed) {
        a.suppressed = why;
        await this.d.alerts.setSuppressed(a.dedupKey, why);
      }
    }

    if (now - this.lastPrune >= MINUTE) {
      this.lastPrune = now;
      await this.d.alerts.pruneAlerts(now, HOUR, 7 * 24 * HOUR);
      if (this.firingSent.size > 10_000) this.firingSent.clear();
    }
    await this.notifyGroups(m, rules, all, now);
    await this.escalate(m, rules, all, now);
    await this.retryFailed(m, rules, now);
  }

  /** Each running deploy silences the instances it starts or stops, for its duration plus the grace. */
  private async refreshDeploySilences(m: AlertingModel, now: Millis): Promise<Silence[]> {
    const active = await this.d.store.listActiveDeploys();
    for (const dep of active) {
      const ids = this.deployInstances.get(dep.id) ?? new Set<string>();
      for (const i of await this.d.store.listInstances({ service: dep.service }))
        if (i.deployId === dep.id || i.route === 'draining' || i.desired === 'stopped') ids.add(i.id);
      this.deployInstances.set(dep.id, ids);
      await this.d.alerts.addSilence(
        deploySilence({
          deployId: dep.id,
          service: dep.service,
          instances: [...ids].sort(),
          startsAt: dep.startedAt ?? dep.createdAt,
          endsAt: now,
          graceMs: m.deployGraceMs,
        }),
        now,
      );
    }
    const live = new Set(active.map((d) => d.id));
    for (const id of this.deployInstances.keys()) if (!live.has(id)) this.deployInstances.delete(id);
    return this.d.alerts.listSilences(now);
  }

  private notification(
    m: AlertingModel,
    a: StoredAlert,
    transition: Notification['transition'],
    at: Millis,
    now: Millis,
  ): Notification {
    const n: Notification = {
      dedupKey: a.dedupKey,
      transition,
      ruleId: a.ruleId,
      summary: a.summary,
      severity: a.severity as Severity,
      labels: a.labels,
      startsAt: a.firedAt ?? at,
      timestamp: at,
    };
    if (transition === 'resolved' && a.resolvedAt !== undefined) n.endsAt = a.resolvedAt;
    if (a.lastValue !== undefined) n.value = a.lastValue;
    if (transition === 'firing')
      n.ackUrl = ackUrl(
        m.publicUrl ?? this.d.baseUrl(),
        ackToken(this.d.ackSecret(), a.dedupKey, now + m.ackLinkTtlMs),
      );
    return n;
  }

  /**
   * Claims `(alert, tag@at, channel)` in the delivery log and, if this controller won, sends in the
   * background. Returns whether it claimed.
   */
  private async deliver(
    m: AlertingModel,
    a: StoredAlert,
    tag: string,
    at: Millis,
    channelName: string,
    n: Notification,
  ): Promise<boolean> {
    const now = this.now();
    const key = deliveryKey(a.dedupKey, tag, at, channelName);
    const delivery = await this.d.alerts.claimDelivery(
      { key, dedupKey: a.dedupKey, transition: `${tag}@${at}`, channel: channelName },
      this.d.controllerId,
      now,
      this.d.leaseMs ?? 5 * MINUTE,
      this.d.maxDeliveries ?? 3,
    );
    if (delivery === undefined) return false;
    const channel = m.channels.get(channelName);
    const send = async () => {
      const result: DeliveryResult =
        channel === undefined
          ? {
              ok: false,
              channel: channelName,
              attempts: [],
              error: `no channel named "${channelName}" any more`,
            }
          : await channel.send(n).catch((err: Error) => ({
              ok: false,
              channel: channelName,
              attempts: [],
              error: err.message,
            }));
      if (!result.ok)
        this.d.logger.warn(
          { channel: channelName, alert: a.dedupKey, tag, error: result.error },
          'notification failed',
        );
      await this.d.alerts.finishDelivery(
        key,
        delivery,
        this.d.controllerId,
        result,
        this.now(),
        backoffDelay(delivery, { ...DEFAULT_RETRY, baseDelayMs: 30_000, maxDelayMs: 10 * MINUTE }),
      );
    };
    const p = send()
      .catch((err: unknown) => this.d.logger.error({ err }, 'recording a delivery failed'))
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    return true;
  }

  private async notifyGroups(
    m: AlertingModel,
    rules: readonly RoutedRule[],
    all: StoredAlert[],
    now: Millis,
  ) {
    // Candidates: firing and not suppressed; or resolved (within the hour) after its firing was sent.
    const byRoute = new Map<string, { channels: readonly string[]; alerts: StoredAlert[] }>();
    for (const a of all) {
      const rule = this.ruleFor(rules, a);
      const channels = rule?.channels ?? [];
      if (channels.length === 0) continue;
      let ok = a.state === 'firing' && a.suppressed === null;
      if (a.state === 'resolved' && a.resolvedAt !== undefined && now - a.resolvedAt < HOUR) {
        const tag = `firing@${a.firedAt}`;
        const memo = `${a.dedupKey}@${a.firedAt}`;
        let sent = this.firingSent.get(memo);
        if (sent === undefined) {
          sent = (await this.d.alerts.listDeliveries(a.dedupKey)).some((d) => d.transition === tag);
          this.firingSent.set(memo, sent);
        }
        ok = sent;
      }
      if (!ok) continue;
      // Severity is part of the route: a page never waits behind a lower-severity notification of the
      // same group (an SLO's ticket burn fires before its page burns; the page must not wait for the
      // group interval).
      const route = `${a.severity}|${[...channels].sort().join(',')}`;
      const r = byRoute.get(route) ?? { channels, alerts: [] };
      r.alerts.push(a);
      byRoute.set(route, r);
    }
    // The group wait runs during `for` (issue 6: alert within `for` + 5 s): a group's first
    // notification is due `groupWait` after its first alert went *pending*, so a rule whose `for` is at
    // least the group wait pages on the tick it fires. The burst is still collected: alerts of the same
    // group that went pending within the group wait of the first are waited for (at most `groupWait`
    // after the first fired, as before) and go out together.
    const wait = m.grouping.groupWaitMs;
    const pendingSince = new Map<string, Millis[]>();
    for (const a of all) {
      if (a.state !== 'pending' || a.activeSince === undefined) continue;
      const channels = this.ruleFor(rules, a)?.channels ?? [];
      if (channels.length === 0) continue;
      const key = `${groupKey(a.labels, m.grouping.groupBy)}:${a.severity}|${[...channels].sort().join(',')}`;
      pendingSince.set(key, [...(pendingSince.get(key) ?? []), a.activeSince]);
    }
    const states = await this.d.alerts.getGroups();
    const live = new Set<string>();
    for (const [route, r] of byRoute) {
      const index = new Map(r.alerts.map((a) => [a.dedupKey, a]));
      const groups: AlertGroup[] = groupAlerts(
        r.alerts.map((a) => ({
          dedupKey: a.dedupKey,
          labels: a.labels,
          state: a.state as 'firing' | 'resolved',
        })),
        m.grouping.groupBy,
      );
      for (const g of groups) {
        const key = `${groupKey(g.labels, m.grouping.groupBy)}:${route}`;
        live.add(key);
        const members = g.alerts.flatMap((ga) => index.get(ga.dedupKey) ?? []);
        let st = states.get(key);
        if (st === undefined) {
          const since = Math.min(now, ...members.map((a) => a.activeSince ?? a.firedAt ?? now));
          st = { firstSeenAt: since };
          await this.d.alerts.putGroup(key, st);
        }
        const due = groupDue(g, st, now, m.grouping);
        if (!due.notify) continue;
        if (st.lastNotifiedAt === undefined) {
          const firstFired = Math.min(now, ...members.map((a) => a.firedAt ?? now));
          const joining = (pendingSince.get(key) ?? []).some((t) => t <= st.firstSeenAt + wait);
          if (joining && now < firstFired + wait) continue;
        }
        for (const ga of g.alerts) {
          const a = index.get(ga.dedupKey);
          if (a === undefined) continue;
          const [tag, at] =
            a.state === 'resolved'
              ? ['resolved', a.resolvedAt ?? now]
              : due.reason === 'repeat'
                ? ['repeat', st.lastNotifiedAt ?? now]
                : ['firing', a.firedAt ?? now];
          const n = this.notification(m, a, a.state === 'resolved' ? 'resolved' : 'firing', at, now);
          for (const ch of r.channels) await this.deliver(m, a, tag, at, ch, n);
        }
        await this.d.alerts.putGroup(key, markNotified(g, st, now));
      }
    }
    for (const key of states.keys()) if (!live.has(key)) await this.d.alerts.deleteGroup(key);
  }

  private async escalate(m: AlertingModel, rules: readonly RoutedRule[], all: StoredAlert[], now: Millis) {
    for (const a of all) {
      if (a.state !== 'firing' || a.suppressed !== null || a.acknowledged || a.firedAt === undefined)
        continue;
      const policyId = this.ruleFor(rules, a)?.escalation;
      const policy = policyId === undefined ? undefined : m.policies.get(policyId);
      if (policy === undefined) continue;
      const plan = escalationDue(policy, { triggeredAt: a.firedAt }, now, m.schedules);
      if (plan.due.length === 0) continue;
      // An ack may have landed since this tick read the alert: page nobody after it.
      const fresh = await this.d.alerts.getAlert(a.dedupKey);
      if (fresh === undefined || fresh.state !== 'firing' || fresh.acknowledged) continue;
      for (const step of plan.due) {
        const channels = new Set(step.channels);
        for (const u of step.users) for (const c of m.users.get(u) ?? []) channels.add(c);
        const n = this.notification(m, a, 'firing', a.firedAt, now);
        n.annotations = {
          escalation: `${policy.id} level ${step.level + 1}, round ${step.round + 1}`,
          ...(step.users.length > 0 ? { oncall: step.users.join(', ') } : {}),
        };
        for (const ch of channels) await this.deliver(m, a, `escalation:${step.id}`, a.firedAt, ch, n);
      }
    }
  }

  /** Failed deliveries whose backoff ran out are sent again — unless the episode they belong to ended. */
  private async retryFailed(m: AlertingModel, _rules: readonly RoutedRule[], now: Millis) {
    for (const d of await this.d.alerts.retryableDeliveries(now, this.d.maxDeliveries ?? 3)) {
      const i = d.transition.lastIndexOf('@');
      const tag = d.transition.slice(0, i);
      const at = Number(d.transition.slice(i + 1));
      const a = await this.d.alerts.getAlert(d.dedupKey);
      const stillFiring = a !== undefined && a.state === 'firing' && a.firedAt !== undefined;
      const valid =
        a !== undefined &&
        (tag === 'resolved' ||
          tag === 'acknowledged' ||
          (stillFiring &&
            (tag === 'repeat' || a.firedAt === at) &&
            !(tag.startsWith('escalation:') && a.acknowledged)));
      if (!valid) {
        await this.d.alerts.dropDelivery(d.key, 'the alert moved on before the retry', now);
        continue;
      }
      const transition = tag === 'resolved' ? 'resolved' : tag === 'acknowledged' ? 'acknowledged' : 'firing';
      await this.deliver(m, a, tag, at, d.channel, this.notification(m, a, transition, at, now));
    }
  }

  /**
   * Acknowledge (CLI, API, signed link): stops escalation; the channels that were told it fired are told
   * it was acknowledged (PagerDuty `acknowledge`). Acknowledging an acknowledged alert changes nothing.
   */
  async acknowledge(dedupKey: string, by: string): Promise<StoredAlert> {
    const now = this.now();
    const won = await this.d.alerts.ackAlert(dedupKey, by, now);
    const a = await this.d.alerts.getAlert(dedupKey);
    if (a === undefined) throw new NinesError('NINES_E_ALERT_NOT_FOUND', `no alert ${dedupKey}`);
    if (!won) {
      if (a.state === 'firing' && a.acknowledged) return a;
      throw new NinesError(
        'NINES_E_INVALID_TRANSITION',
        `alert ${dedupKey} is ${a.state}: only a firing alert can be acknowledged`,
        { lifecycle: 'alert', from: a.state, to: 'acknowledged' },
      );
    }
    await this.d.alerts.appendEvent(dedupKey, now, 'acknowledged', by);
    const m = await this.refreshModel();
    const told = new Set(
      (await this.d.alerts.listDeliveries(dedupKey))
        .filter((d) => d.transition.startsWith('firing@') || d.transition.startsWith('escalation:'))
        .filter((d) => d.transition.endsWith(`@${a.firedAt}`))
        .map((d) => d.channel),
    );
    const n = this.notification(m, a, 'acknowledged', now, now);
    n.annotations = { acknowledgedBy: by };
    for (const ch of told) await this.deliver(m, a, 'acknowledged', now, ch, n);
    return a;
  }

  /** Send a test notification through one channel, now, and wait for the result (`nines channels test`). */
  async testChannel(name: string, by: string): Promise<DeliveryResult> {
    const m = await this.refreshModel();
    const ch = m.channels.get(name);
    if (ch === undefined)
      throw new NinesError(
        'NINES_E_CHANNEL_NOT_FOUND',
        `no channel named "${name}" (channels: ${[...m.channels.keys()].join(', ') || 'none — add them to nines.yaml'})`,
      );
    const now = this.now();
    return ch.send({
      dedupKey: `test-${now.toString(36)}`,
      transition: 'firing',
      ruleId: 'nines_channel_test',
      summary: `Test notification from nines (sent by ${by})`,
      severity: 'info',
      labels: { alertname: 'nines_channel_test', channel: name },
      startsAt: now,
      timestamp: now,
    });
  }
}
