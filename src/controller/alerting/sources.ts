import type { Hub } from '../hub.js';
import type { Store } from '../store/types.js';
import type { Counts } from './burnrate.js';
import type { Sample } from './lifecycle.js';
import { MINUTE, type Millis } from './types.js';

/**
 * Where alert rules get their values. A source returns the latest sample of every series it knows at
 * `now`; rules select them by signal name and labels. Host metrics and black-box checks plug in as
 * further sources (same interface) without the scheduler changing.
 */
export interface SignalSource {
  readonly name: string;
  collect(now: Millis): Promise<Sample[]> | Sample[];
}

/** Signals every source of this file offers, for docs and `nines alerts --signals`. */
export const BUILTIN_SIGNALS: Readonly<Record<string, string>> = {
  host_up: '1 while the host’s agent reports, 0 after it missed the host-down interval (labels host, zone)',
  instance_healthy:
    '1 when the agent’s health probe passes, else 0 (labels service, instance, host, release)',
  instance_failed: '1 when the instance gave up restarting (state failed), else 0',
  instance_restarts_10m: 'restarts of the instance in the last 10 minutes',
  service_requests_5m: 'answers the proxies gave for the service in the last 5 minutes (label service)',
  service_error_ratio_5m: 'share of 5xx answers in the last 5 minutes (0 with no traffic)',
};

/** Host liveness and instance health/restarts from the store and the agents' latest reports. */
export class FleetSignals implements SignalSource {
  readonly name = 'fleet';
  private readonly restarts = new Map<string, { at: Millis; restarts: number }[]>();

  constructor(private readonly deps: { store: Store; hostDownAfterMs: number }) {}

  async collect(now: Millis): Promise<Sample[]> {
    const out: Sample[] = [];
    const hosts = await this.deps.store.listHosts();
    const byId = new Map(hosts.map((h) => [h.id, h]));
    for (const h of hosts) {
      if (h.revokedAt !== null) continue;
      out.push({
        signal: 'host_up',
        labels: { host: h.name, zone: h.zone },
        value: now - h.lastSeenAt <= this.deps.hostDownAfterMs ? 1 : 0,
      });
    }
    const seen = new Set<string>();
    for (const i of await this.deps.store.listInstances()) {
      if (i.desired !== 'running') continue;
      seen.add(i.id);
      const labels = {
        service: i.service,
        instance: i.id,
        host: byId.get(i.hostId)?.name ?? i.hostId,
        release: i.releaseVersion,
      };
      const o = i.observed;
      out.push({ signal: 'instance_healthy', labels, value: o === null ? undefined : o.healthy ? 1 : 0 });
      out.push({
        signal: 'instance_failed',
        labels,
        value: o === null ? undefined : o.state === 'failed' ? 1 : 0,
      });
      if (o !== null) {
        const hist = this.restarts.get(i.id) ?? [];
        hist.push({ at: now, restarts: o.restarts });
        while (hist.length > 1 && (hist[0]?.at ?? now) < now - 10 * MINUTE) hist.shift();
        this.restarts.set(i.id, hist);
        out.push({
          signal: 'instance_restarts_10m',
          labels,
          value: Math.max(0, o.restarts - (hist[0]?.restarts ?? o.restarts)),
        });
      }
    }
    for (const id of this.restarts.keys()) if (!seen.has(id)) this.restarts.delete(id);
    return out;
  }
}

/**
 * Request counts per service from the proxies' cumulative counters, turned into per-minute buckets
 * (deltas per proxy; a proxy restart that resets its counters counts from zero again). Kept in memory
 * for the longest SLO window (3 days = 4,320 buckets per service); after a controller restart the
 * windows fill up again.
 */
export class RequestSignals implements SignalSource {
  readonly name = 'requests';
  private readonly last = new Map<string, { requests: number; failed: number }>();
  /** service → minute (epoch ms / 60 000) → counts */
  private readonly buckets = new Map<string, Map<number, { total: number; bad: number }>>();
  private readonly keepMs: Millis;

  constructor(
    private readonly hub: Hub,
    opts: { keepMs?: Millis } = {},
  ) {
    this.keepMs = opts.keepMs ?? 3 * 24 * 60 * MINUTE;
  }

  /** Fold the proxies' latest counters in (called once per tick before collect/countsOver). */
  sample(now: Millis): void {
    const minute = Math.floor(now / MINUTE);
    for (const p of this.hub.proxies.values()) {
      for (const [service, c] of p.services) {
        const k = `${p.proxyId}\n${service}`;
        const prev = this.last.get(k);
        this.last.set(k, { requests: c.requests, failed: c.failed });
        if (prev === undefined) continue; // first sight: its total is history we have no time for
        const reset = c.requests < prev.requests || c.failed < prev.failed;
        this.add(
          service,
          minute,
          reset ? c.requests : c.requests - prev.requests,
          reset ? c.failed : c.failed - prev.failed,
        );
      }
    }
    const oldest = Math.floor((now - this.keepMs) / MINUTE);
    for (const m of this.buckets.values()) for (const k of m.keys()) if (k < oldest) m.delete(k);
  }

  /** Test and tool entry: count `total` answers, `bad` of them 5xx, in the minute of `at`. */
  add(service: string, minuteOrAt: number, total: number, bad: number): void {
    if (total <= 0 && bad <= 0) return;
    let m = this.buckets.get(service);
    if (m === undefined) {
      m = new Map();
      this.buckets.set(service, m);
    }
    const b = m.get(minuteOrAt) ?? { total: 0, bad: 0 };
    b.total += total;
    b.bad += bad;
    m.set(minuteOrAt, b);
  }

  /** good/total answers of the service over the last `windowMs` (whole minutes, current one included). */
  countsOver(service: string, windowMs: Millis, now: Millis): Counts {
    const m = this.buckets.get(service);
    if (m === undefined) return { good: 0, total: 0 };
    const to = Math.floor(now / MINUTE);
    const from = to - Math.max(1, Math.round(windowMs / MINUTE)) + 1;
    let total = 0;
    let bad = 0;
    for (const [k, b] of m) {
      if (k < from || k > to) continue;
      total += b.total;
      bad += b.bad;
    }
    return { good: total - bad, total };
  }

  services(): string[] {
    return [...this.buckets.keys()];
  }

  collect(now: Millis): Sample[] {
    const out: Sample[] = [];
    for (const service of this.services()) {
      const c = this.countsOver(service, 5 * MINUTE, now);
      out.push({ signal: 'service_requests_5m', labels: { service }, value: c.total });
      out.push({
        signal: 'service_error_ratio_5m',
        labels: { service },
        value: c.total === 0 ? 0 : (c.total - c.good) / c.total,
      });
    }
    return out;
  }
}
