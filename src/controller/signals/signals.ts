import {
  LATENCY_BOUNDS_MS,
  type ProxyInstanceStatus,
  type ProxyServiceCounters,
} from '../../core/protocol.js';
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
  /** The release the instance runs (per-release request signals). */
  release?: string;
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
  /** Per proxy (or proxy and instance): the last cumulative counters it reported (to turn them into increases). */
  perProxy: Map<string, { requests: number; failed: number; at: number }>;
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

/** The per-instance latency buckets proxies report, in seconds. */
const RELEASE_LE: readonly number[] = LATENCY_BOUNDS_MS.map((ms) => ms / 1000);

function newEntry(now: number): ServiceEntry {
  return {
    perProxy: new Map(),
    requests: 0,
    failed: 0,
    points: [{ at: now, requests: 0, failed: 0 }],
    perProxyLatency: new Map(),
  };
}

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
  /** `service\nrelease` → the release's counters, from the proxies' per-instance counters. */
  private readonly releases = new Map<string, ServiceEntry>();
  private owners: Map<string, { service: string; release: string }> | undefined;
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
    this.owners = undefined;
    if (signals) {
      e.derived = deriveHost(signals, e.latest);
      e.latest = signals;
      const hl = { host: host.id, hostname: host.name };
      for (const d of e.derived) this.record(d.signal, { ...hl, ...d.labels }, d.value, now);
    }
  }

  /**
   * A proxy report: cumulative counters per service since that proxy started and, with `instances`,
   * per instance while the proxy knows it; instance counters are summed per release of the instance's
   * service (the release from the agents' reports; an instance no agent reported yet waits).
   */
  proxyReport(
    proxyId: string,
    services: readonly ProxyServiceCounters[],
    instances: readonly ProxyInstanceStatus[] = [],
  ): void {
    const now = this.now();
    for (const s of services) {
      let e = this.services.get(s.name);
      if (!e) {
        e = newEntry(now);
        this.services.set(s.name, e);
      }
      this.fold(e, proxyId, s.requests, s.failed, s.latency, now);
    }
    const owners = instances.length > 0 ? this.instanceOwners() : undefined;
    for (const i of instances) {
      const owner = owners?.get(i.id);
      if (owner === undefined || i.requests === undefined) continue;
      const key = `${owner.service}\n${owner.release}`;
      let e = this.releases.get(key);
      if (!e) {
        e = newEntry(now);
        this.releases.set(key, e);
      }
      const latency =
        i.latency && i.latency.length === LATENCY_BOUNDS_MS.length + 1
          ? { le: RELEASE_LE, counts: i.latency }
          : undefined;
      this.fold(e, `${proxyId}\n${i.id}`, i.requests, i.failed ?? 0, latency, now);
    }
  }

  /** Instance → service and release, from the agents' latest reports (rebuilt after one arrived). */
  private instanceOwners(): Map<string, { service: string; release: string }> {
    if (this.owners === undefined) {
      this.owners = new Map();
      for (const h of this.hosts.values())
        for (const i of h.instances)
          if (i.release !== undefined) this.owners.set(i.id, { service: i.service, release: i.release });
    }
    return this.owners;
  }

  /** Folds one source's cumulative counters (a proxy, or a proxy's view of an instance) into `e`. */
  private fold(
    e: ServiceEntry,
    source: string,
    requests: number,
    failed: number,
    latency: { le: readonly number[]; counts: readonly number[] } | undefined,
    now: number,
  ): void {
    const last = e.perProxy.get(source);
    // A source that restarted counts from 0 again: its new counts are all increase (either counter
    // going down means both started over).
    const reset = last !== undefined && (requests < last.requests || failed < last.failed);
    const dr = !last ? 0 : reset ? requests : requests - last.requests;
    const df = !last ? 0 : reset ? failed : failed - last.failed;
    e.perProxy.set(source, { requests, failed, at: now });
    e.requests += dr;
    e.failed += df;
    if (latency && latency.counts.length === latency.le.length + 1) {
      if (!e.le || e.le.join() !== latency.le.join()) {
        // New bucket layout (a proxy upgrade): start the histogram over.
        e.le = [...latency.le];
        e.latency = new Array(latency.counts.length).fill(0);
        e.perProxyLatency.clear();
        for (const p of e.points) delete p.latency;
      }
      const lastLat = e.perProxyLatency.get(source);
      const restarted = lastLat !== undefined && latency.counts.some((c, i) => c < (lastLat[i] ?? 0));
      const total = e.latency ?? [];
      latency.counts.forEach((c, i) => {
        total[i] = (total[i] ?? 0) + (lastLat && !restarted ? c - (lastLat[i] ?? 0) : lastLat ? c : 0);
      });
      e.latency = total;
      e.perProxyLatency.set(source, [...latency.counts]);
    }
    const tail = e.points[e.points.length - 1];
    // The first point stays as it was (the zero the counts start from); the newest is updated in place
    // until it is SERVICE_POINT_EVERY_MS past the one before it (measured from that one: the tail's own
    // time moves with every report, so a fleet reporting every second would otherwise never start a new
    // point and every window would reach back to the first).
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
      // Sources gone quiet (an instance stopped, a proxy left) are forgotten with the history.
      for (const [k, v] of e.perProxy)
        if (v.at < cutoff) {
          e.perProxy.delete(k);
          e.perProxyLatency.delete(k);
        }
    } else {
      tail.requests = e.requests;
      tail.failed = e.failed;
      if (e.latency) tail.latency = [...e.latency];
      tail.at = now;
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
    return this.countsOf(this.services.get(service), windowMs);
  }

  /** The same for one release of a service (its instances' answers, every proxy). */
  releaseCounts(
    service: string,
    release: string,
    windowMs: number,
  ): { requests: number; failed: number; coveredMs: number } | undefined {
    return this.countsOf(this.releases.get(`${service}\n${release}`), windowMs);
  }

  private countsOf(
    e: ServiceEntry | undefined,
    windowMs: number,
  ): { requests: number; failed: number; coveredMs: number } | undefined {
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
    return this.quantileOf(this.services.get(service), q, windowMs);
  }

  /** The same for one release (the proxies' per-instance histograms of its instances). */
  releaseLatencyQuantile(service: string, release: string, q: number, windowMs: number): number | undefined {
    return this.quantileOf(this.releases.get(`${service}\n${release}`), q, windowMs);
  }

  private quantileOf(e: ServiceEntry | undefined, q: number, windowMs: number): number | undefined {
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

  /** Every (service, release) with request counters, sorted. */
  releaseKeys(): { service: string; release: string }[] {
    return [...this.releases.keys()].sort().map((k) => {
      const [service = '', release = ''] = k.split('\n');
      return { service, release };
    });
  }

  /** Cumulative requests and 5xx answers of a release since this controller started. */
  releaseTotals(service: string, release: string): { requests: number; failed: number } | undefined {
    const e = this.releases.get(`${service}\n${release}`);
    return e ? { requests: e.requests, failed: e.failed } : undefined;
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

  /** `<prefix>_requests_per_second` (1 min), `_error_ratio` (5 min), `_latency_p50/p90/p99_seconds` (5 min). */
  private rateSamples(
    out: SignalSample[],
    prefix: 'service' | 'service_release',
    l: SignalLabels,
    e: ServiceEntry | undefined,
    now: number,
  ): void {
    const m1 = this.countsOf(e, 60_000);
    const m5 = this.countsOf(e, 300_000);
    if (m1 && m1.coveredMs > 0) {
      out.push({
        signal: `${prefix}_requests_per_second`,
        labels: l,
        value: m1.requests / (m1.coveredMs / 1000),
        at: now,
      });
    }
    if (m5 && m5.requests > 0) {
      out.push({ signal: `${prefix}_error_ratio`, labels: l, value: m5.failed / m5.requests, at: now });
    }
    for (const [q, name] of [
      [0.5, 'latency_p50_seconds'],
      [0.9, 'latency_p90_seconds'],
      [0.99, 'latency_p99_seconds'],
    ] as const) {
      const v = this.quantileOf(e, q, 300_000);
      if (v !== undefined) out.push({ signal: `${prefix}_${name}`, labels: l, value: v, at: now });
    }
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
    for (const name of this.services.keys())
      this.rateSamples(out, 'service', { service: name }, this.services.get(name), now);
    const quiet = now - this.serviceHistoryMs;
    for (const [key, e] of this.releases) {
      // A release nobody has served for the whole history (replaced, rolled back) is dropped.
      if ((e.points[e.points.length - 1]?.at ?? 0) < quiet) {
        this.releases.delete(key);
        continue;
      }
      const [service = '', release = ''] = key.split('\n');
      this.rateSamples(out, 'service_release', { service, release }, e, now);
    }
    for (const source of this.sources.values()) out.push(...source(now));
    return out;
  }
}
