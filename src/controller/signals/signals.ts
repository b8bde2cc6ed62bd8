import type { ProxyServiceCounters } from '../../core/protocol.js';
import type { HostSignals } from '../../core/signals.js';
import { type DerivedSample, deriveHost } from './derive.js';

/**
 * The signals the alert evaluator, `/metrics` and the reports read: host signals from agent reports,
 * instance health and restarts, per-service request/5xx counts from proxy reports, and whatever other
 * sources register (black-box checks). Latest values plus a bounded in-memory history; nothing here
 * is durable (after a controller restart the fleet reports again within seconds). See
 * docs/signals.md for the signal names.
 */

export type SignalLabels = Readonly<Record<string, string>>;

export interface SignalSample {
  signal: string;
  labels: SignalLabels;
  value: number;
  /** When the value was observed (epoch ms). */
  at: number;
}

export interface SignalSeries {
  signal: string;
  labels: SignalLabels;
  /** Oldest first. */
  points: { at: number; value: number }[];
}

/** Current samples of another part of the controller (e.g. the check states). */
export type SignalSource = (now: number) => SignalSample[];

export interface InstanceSignalInput {
  id: string;
  service: string;
  state: string;
  healthy: boolean;
  restarts: number;
}

export interface SignalsOptions {
  now?: () => number;
  /** History kept per series (default 1 h). */
  historyMs?: number;
  /** At most one history point per series per this many ms (default 30 s). */
  historyStepMs?: number;
  /** Per-service request counts kept (default 6 h: the longest page window of the burn-rate table). */
  serviceHistoryMs?: number;
  /** A host that has not reported for this long is down (default 15 s, as the fleet's). */
  hostDownAfterMs?: number;
}

interface HostEntry {
  hostId: string;
  name: string;
  zone: string;
  lastReportAt: number;
  latest?: HostSignals;
  derived: DerivedSample[];
  instances: InstanceSignalInput[];
}

export interface CounterPoint {
  at: number;
  requests: number;
  failed: number;
  /** Cumulative latency bucket counts (monotonic, over every proxy). */
  latency?: number[];
}

/**
 * The q-quantile (0–1) of a histogram with upper bounds `le` and per-bucket counts (one more for +Inf),
 * interpolating linearly inside the bucket as Prometheus' histogram_quantile does; answers in the +Inf
 * bucket give the highest finite bound. Undefined with no observations.
 */
export function histogramQuantile(
  le: readonly number[],
  counts: readonly number[],
  q: number,
): number | undefined {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return undefined;
  const rank = q * total;
  let cum = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (cum + c >= rank && c > 0) {
      if (i >= le.length) return le[le.length - 1];
      const lo = i === 0 ? 0 : (le[i - 1] ?? 0);
      const hi = le[i] ?? lo;
      return lo + (hi - lo) * ((rank - cum) / c);
    }
    cum += c;
  }
  return le[le.length - 1];
}

interface ServiceEntry {
  /** Per proxy: the last cumulative counters it reported (to turn them into increases). */
  perProxy: Map<string, { requests: number; failed: number }>;
  /** Monotonic totals over every proxy. */
  requests: number;
  failed: number;
  points: CounterPoint[];
  /** Latency histogram: bucket bounds, per-proxy last cumulative counts, monotonic totals. */
  le?: number[];
  perProxyLatency: Map<string, number[]>;
  latency?: number[];
}

const SERVICE_POINT_EVERY_MS = 5_000;

/** `a` has every label of `selector` with the same value. */
export function labelsMatch(labels: SignalLabels, selector: SignalLabels | undefined): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

function seriesKey(signal: string, labels: SignalLabels): string {
  return `${signal}{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',')}}`;
}

export class Signals {
  private readonly now: () => number;
  private readonly historyMs: number;
  private readonly historyStepMs: number;
  private readonly serviceHistoryMs: number;
  readonly hostDownAfterMs: number;
  private readonly hosts = new Map<string, HostEntry>();
  private readonly services = new Map<string, ServiceEntry>();
  private readonly history = new Map<string, SignalSeries>();
  private readonly sources = new Map<string, SignalSource>();

  constructor(o: SignalsOptions = {}) {
    this.now = o.now ?? Date.now;
    this.historyMs = o.historyMs ?? 3_600_000;
    this.historyStepMs = o.historyStepMs ?? 30_000;
    this.serviceHistoryMs = o.serviceHistoryMs ?? 6 * 3_600_000;
    this.hostDownAfterMs = o.hostDownAfterMs ?? 15_000;
  }

  // ---- feeds --------------------------------------------------------------------------------------

  /** An agent report: instance states always, host signals when it carried them. */
  agentReport(
    host: { id: string; name: string; zone: string },
    instances: InstanceSignalInput[],
    signals?: HostSignals,
  ): void {
    const now = this.now();
    let e = this.hosts.get(host.id);
    if (!e) {
      e = { hostId: host.id, name: host.name, zone: host.zone, lastReportAt: now, derived: [], instances };
      this.hosts.set(host.id, e);
    }
    e.name = host.name;
    e.zone = host.zone;
    e.lastReportAt = now;
    e.instances = instances;
    if (signals) {
      e.derived = deriveHost(signals, e.latest);
      e.latest = signals;
      const hl = { host: host.id, hostname: host.name };
      for (const d of e.derived) this.record(d.signal, { ...hl, ...d.labels }, d.value, now);
    }
  }

  /** A proxy report: cumulative counters per service since that proxy started. */
  proxyReport(proxyId: string, services: readonly ProxyServiceCounters[]): void {
    const now = this.now();
    for (const s of services) {
      let e = this.services.get(s.name);
      if (!e) {
        e = {
          perProxy: new Map(),
          requests: 0,
          failed: 0,
          points: [{ at: now, requests: 0, failed: 0 }],
          perProxyLatency: new Map(),
        };
        this.services.set(s.name, e);
      }
      const last = e.perProxy.get(proxyId);
      // A proxy that restarted counts from 0 again: its new count is all increase.
      const dr = last && s.requests >= last.requests ? s.requests - last.requests : last ? s.requests : 0;
      const df = last && s.failed >= last.failed ? s.failed - last.failed : last ? s.failed : 0;
      e.perProxy.set(proxyId, { requests: s.requests, failed: s.failed });
      e.requests += dr;
      e.failed += df;
      if (s.latency && s.latency.counts.length === s.latency.le.length + 1) {
        if (!e.le || e.le.join() !== s.latency.le.join()) {
          // New bucket layout (a proxy upgrade): start the service's histogram over.
          e.le = [...s.latency.le];
          e.latency = new Array(s.latency.counts.length).fill(0);
          e.perProxyLatency.clear();
          for (const p of e.points) delete p.latency;
        }
        const lastLat = e.perProxyLatency.get(proxyId);
        const restarted = lastLat !== undefined && s.latency.counts.some((c, i) => c < (lastLat[i] ?? 0));
        const total = e.latency ?? [];
        s.latency.counts.forEach((c, i) => {
          total[i] = (total[i] ?? 0) + (lastLat && !restarted ? c - (lastLat[i] ?? 0) : lastLat ? c : 0);
        });
        e.latency = total;
        e.perProxyLatency.set(proxyId, [...s.latency.counts]);
      }
      const tail = e.points[e.points.length - 1];
      // The first point stays as it was (the zero the service's counts start from); the newest is
      // updated in place until it is SERVICE_POINT_EVERY_MS past the one before it (measured from that
      // one: the tail's own time moves with every report, so a fleet reporting every second would
      // otherwise never start a new point and every window would reach back to the first).
      const before = e.points[e.points.length - 2];
      if (!tail || !before || now - before.at > SERVICE_POINT_EVERY_MS) {
        e.points.push({
          at: now,
          requests: e.requests,
          failed: e.failed,
          ...(e.latency ? { latency: [...e.latency] } : {}),
        });
        const cutoff = now - this.serviceHistoryMs;
        while (e.points.length > 2 && (e.points[0]?.at ?? now) < cutoff) e.points.shift();
      } else {
        tail.requests = e.requests;
        tail.failed = e.failed;
        if (e.latency) tail.latency = [...e.latency];
        tail.at = now;
      }
    }
  }

  addSource(name: string, source: SignalSource): void {
    this.sources.set(name, source);
  }

  /** Records a point of a series (sources may call this to get history for their own samples). */
  record(signal: string, labels: SignalLabels, value: number, at = this.now()): void {
    const key = seriesKey(signal, labels);
    let s = this.history.get(key);
    if (!s) {
      s = { signal, labels, points: [] };
      this.history.set(key, s);
    }
    // One point per historyStepMs per series (the latest value wins): 1,000 hosts × 30 series stay
    // at a few MB rather than growing with the report rate.
    const last = s.points[s.points.length - 1];
    if (last && s.points.length > 1 && at - (s.points[s.points.length - 2]?.at ?? 0) < this.historyStepMs) {
      last.at = at;
      last.value = value;
    } else s.points.push({ at, value });
    const cutoff = at - this.historyMs;
    let drop = 0;
    while (drop < s.points.length && (s.points[drop]?.at ?? at) < cutoff) drop++;
    if (drop > 0) s.points.splice(0, drop);
  }

  // ---- queries (the interface the alert evaluator uses) -------------------------------------------

  /** Every current sample, optionally only of one signal and matching a label selector. */
  query(signal?: string, selector?: SignalLabels): SignalSample[] {
    return this.current().filter(
      (s) => (signal === undefined || s.signal === signal) && labelsMatch(s.labels, selector),
    );
  }

  /** The stored history of the series of `signal` matching `selector`, points at or after `sinceMs`. */
  range(signal: string, selector: SignalLabels | undefined, sinceMs: number): SignalSeries[] {
    const out: SignalSeries[] = [];
    for (const s of this.history.values()) {
      if (s.signal !== signal || !labelsMatch(s.labels, selector)) continue;
      out.push({ signal, labels: s.labels, points: s.points.filter((p) => p.at >= sinceMs) });
    }
    return out;
  }

  /**
   * Requests and 5xx answers of `service` over the last `windowMs` (summed over every proxy), for
   * error ratios and SLO burn rates. `coveredMs` says how much of the window the history spans.
   */
  serviceCounts(
    service: string,
    windowMs: number,
  ): { requests: number; failed: number; coveredMs: number } | undefined {
    const e = this.services.get(service);
    if (!e || e.points.length === 0) return undefined;
    const now = this.now();
    const from = now - windowMs;
    let base = e.points[0]!;
    for (const p of e.points) {
      if (p.at <= from) base = p;
      else break;
    }
    return {
      requests: e.requests - base.requests,
      failed: e.failed - base.failed,
      coveredMs: Math.min(windowMs, now - base.at),
    };
  }

  /** The q-quantile of the service's answer time over the last `windowMs`, in seconds (all proxies). */
  serviceLatencyQuantile(service: string, q: number, windowMs: number): number | undefined {
    const e = this.services.get(service);
    if (!e?.le || !e.latency) return undefined;
    const from = this.now() - windowMs;
    let base: CounterPoint | undefined;
    for (const p of e.points) {
      if (p.at <= from || !base) base = p;
      else break;
    }
    const before = base?.latency;
    const delta = e.latency.map((c, i) => c - (before?.[i] ?? 0));
    return histogramQuantile(e.le, delta, q);
  }

  /**
   * The service's cumulative counter points (oldest first, about one per 5 s, 6 h kept) and its latency
   * bucket bounds, for charts (`serviceRates` in ./rates.ts turns them into rates).
   */
  serviceHistory(service: string): { le: readonly number[] | undefined; points: readonly CounterPoint[] } {
    const e = this.services.get(service);
    return { le: e?.le, points: e?.points ?? [] };
  }

  /** The last host signals an agent sent (raw counters). */
  latestHost(hostId: string): HostSignals | undefined {
    return this.hosts.get(hostId)?.latest;
  }

  hostName(hostId: string): string | undefined {
    return this.hosts.get(hostId)?.name;
  }

  hostIds(): string[] {
    return [...this.hosts.keys()];
  }

  serviceNames(): string[] {
    return [...this.services.keys()];
  }

  /** Cumulative requests and 5xx answers of a service since this controller started. */
  serviceTotals(service: string): { requests: number; failed: number } | undefined {
    const e = this.services.get(service);
    return e ? { requests: e.requests, failed: e.failed } : undefined;
  }

  current(): SignalSample[] {
    const now = this.now();
    const out: SignalSample[] = [];
    for (const h of this.hosts.values()) {
      const hl = { host: h.hostId, hostname: h.name };
      const up = now - h.lastReportAt <= this.hostDownAfterMs ? 1 : 0;
      out.push({ signal: 'host_up', labels: { ...hl, zone: h.zone }, value: up, at: now });
      out.push({
        signal: 'host_report_age_seconds',
        labels: hl,
        value: (now - h.lastReportAt) / 1000,
        at: now,
      });
      const at = h.latest?.at ?? h.lastReportAt;
      for (const d of h.derived)
        out.push({ signal: d.signal, labels: { ...hl, ...d.labels }, value: d.value, at });
      for (const i of h.instances) {
        const il = { instance: i.id, service: i.service, host: h.hostId };
        out.push({ signal: 'instance_healthy', labels: il, value: i.healthy ? 1 : 0, at: h.lastReportAt });
        out.push({ signal: 'instance_restarts', labels: il, value: i.restarts, at: h.lastReportAt });
        out.push({
          signal: 'instance_running',
          labels: il,
          value: i.state === 'running' ? 1 : 0,
          at: h.lastReportAt,
        });
      }
    }
    for (const name of this.services.keys()) {
      const l = { service: name };
      const m1 = this.serviceCounts(name, 60_000);
      const m5 = this.serviceCounts(name, 300_000);
      if (m1 && m1.coveredMs > 0) {
        out.push({
          signal: 'service_requests_per_second',
          labels: l,
          value: m1.requests / (m1.coveredMs / 1000),
          at: now,
        });
      }
      if (m5 && m5.requests > 0) {
        out.push({ signal: 'service_error_ratio', labels: l, value: m5.failed / m5.requests, at: now });
      }
      for (const [q, signal] of [
        [0.5, 'service_latency_p50_seconds'],
        [0.9, 'service_latency_p90_seconds'],
        [0.99, 'service_latency_p99_seconds'],
      ] as const) {
        const v = this.serviceLatencyQuantile(name, q, 300_000);
        if (v !== undefined) out.push({ signal, labels: l, value: v, at: now });
      }
    }
    for (const source of this.sources.values()) out.push(...source(now));
    return out;
  }
}
