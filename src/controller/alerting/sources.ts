import type { Hub } from '../hub.js';
import type { Store } from '../store/types.js';
import type { Counts } from './burnrate.js';
import type { Sample } from './lifecycle.js';
import { DAY, HOUR, MINUTE, type Millis } from './types.js';

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
  'node_* / check_* / service_state …': 'every signal of the signals module (ModuleSignals)',
};

/** Host liveness and instance health/restarts from the store and the agents' latest reports. */
export class FleetSignals implements SignalSource {
  readonly name = 'fleet';
  private readonly restarts = new Map<string, { at: Millis; restarts: number }[]>();
  private startedAt: Millis | undefined;

  constructor(private readonly deps: { store: Store; hostDownAfterMs: number }) {}

  async collect(now: Millis): Promise<Sample[]> {
    const out: Sample[] = [];
    this.startedAt ??= now;
    // Right after this controller started, a stale lastSeenAt says the controller was away, not the
    // host: no data until the agents had a heartbeat interval's chance to report.
    const warmingUp = now - this.startedAt < this.deps.hostDownAfterMs;
    const hosts = await this.deps.store.listHosts();
    const byId = new Map(hosts.map((h) => [h.id, h]));
    for (const h of hosts) {
      if (h.revokedAt !== null) continue;
      out.push({
        signal: 'host_up',
        labels: { host: h.name, zone: h.zone },
        value: now - h.lastSeenAt <= this.deps.hostDownAfterMs ? 1 : warmingUp ? undefined : 0,
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

export interface RequestSignalsOptions {
  /** Pending counts are written to the store at most this often (default 10 s). */
  flushMs?: Millis;
  /** Rollups and retention run this often (default 10 min). */
  compactEveryMs?: Millis;
  /** Minute rows kept (default 3 days + 1 hour: the longest burn-rate window stays exact to the minute). */
  keepMinutesMs?: Millis;
  /** Hour rows kept (default 31 days: the 30-day SLO period and the 30 d report). */
  keepHoursMs?: Millis;
  /** Day rows kept (default 92 days: the 90 d report). */
  keepDaysMs?: Millis;
}

interface CachedSum {
  service: string;
  release: string;
  from: Millis;
  to: Millis;
  total: number;
  bad: number;
}

interface Pending {
  service: string;
  release: string;
  at: Millis;
  total: number;
  bad: number;
}

/**
 * Request counts per service (and per release) for SLOs, durable in the store (`slo_counts`,
 * alerting/slo-store.ts): the proxies' cumulative counters turned into per-minute increases (deltas per
 * proxy, and per proxy and instance for releases; a proxy restart that resets its counters counts from
 * zero again). Only the leader samples (the scheduler ticks there); increases collect in memory and
 * reach the store in one transaction every `flushMs`, and on leadership loss. A restarted controller or
 * a new leader reads the same windows back, less at most the last unflushed `flushMs`.
 *
 * Window sums are cached and slide: when the minute moves, the minutes that entered are added and those
 * that left are taken off (two small range sums instead of 4,320 rows for the 3-day window); a flush adds
 * what it wrote to the cached sums it falls into, so they stay equal to the store's (this leader is its
 * only writer); rollups and a new leadership start them over. Pending counts are added on top. Not
 * re-entrant: the scheduler's ticks never overlap.
 */
export class RequestSignals implements SignalSource {
  readonly name = 'requests';
  private readonly last = new Map<string, { requests: number; failed: number }>();
  private pending = new Map<string, Pending>();
  /** `service\nrelease\nwindow length` → the stored sum over [from, to), kept equal to the store's. */
  private readonly cache = new Map<string, CachedSum>();
  private releaseOf = new Map<string, { service: string; release: string }>();
  private learnedAt: Millis | undefined;
  private lastFlush: Millis | undefined;
  private lastCompact: Millis | undefined;
  private readonly o: Required<RequestSignalsOptions>;

  constructor(
    private readonly store: Store,
    private readonly hub?: Hub,
    opts: RequestSignalsOptions = {},
  ) {
    this.o = {
      flushMs: opts.flushMs ?? 10_000,
      compactEveryMs: opts.compactEveryMs ?? 10 * MINUTE,
      keepMinutesMs: opts.keepMinutesMs ?? 3 * DAY + HOUR,
      keepHoursMs: opts.keepHoursMs ?? 31 * DAY,
      keepDaysMs: opts.keepDaysMs ?? 92 * DAY,
    };
  }

  /**
   * Folds the proxies' latest counters in (once per tick, on the leader), then writes the pending
   * counts when `flushMs` has passed and compacts when `compactEveryMs` has.
   */
  async sample(now: Millis): Promise<void> {
    const at = now - (now % MINUTE);
    const seen = new Set<string>();
    for (const p of this.hub?.proxies.values() ?? []) {
      for (const [service, c] of p.services) {
        const key = `s\n${p.proxyId}\n${service}`;
        seen.add(key);
        this.fold(key, service, '', c, at);
      }
      for (const i of p.instances.values()) {
        if (i.requests === undefined) continue;
        let owner = this.releaseOf.get(i.id);
        // An instance the store did not know at the last look: look again, at most every 5 s.
        if (owner === undefined && (this.learnedAt === undefined || now - this.learnedAt >= 5_000)) {
          this.learnedAt = now;
          await this.learnInstances();
          owner = this.releaseOf.get(i.id);
        }
        if (owner === undefined) continue;
        const key = `i\n${p.proxyId}\n${i.id}`;
        seen.add(key);
        this.fold(key, owner.service, owner.release, { requests: i.requests, failed: i.failed ?? 0 }, at);
      }
    }
    // Baselines of sources no proxy reports any more (instances gone, proxies forgotten).
    for (const k of this.last.keys()) if (!seen.has(k)) this.last.delete(k);
    this.lastFlush ??= now;
    if (now - this.lastFlush >= this.o.flushMs) await this.flush(now);
    if (this.lastCompact === undefined || now - this.lastCompact >= this.o.compactEveryMs) {
      this.lastCompact = now;
      await this.compact(now);
    }
  }

  private fold(
    key: string,
    service: string,
    release: string,
    c: { requests: number; failed: number },
    at: Millis,
  ): void {
    const prev = this.last.get(key);
    this.last.set(key, { requests: c.requests, failed: c.failed });
    if (prev === undefined) return; // first sight: its total is history we have no time for
    const reset = c.requests < prev.requests || c.failed < prev.failed;
    this.record(
      service,
      release,
      at,
      reset ? c.requests : c.requests - prev.requests,
      reset ? c.failed : c.failed - prev.failed,
    );
  }

  private async learnInstances(): Promise<void> {
    const next = new Map<string, { service: string; release: string }>();
    for (const i of await this.store.listInstances())
      next.set(i.id, { service: i.service, release: i.releaseVersion });
    this.releaseOf = next;
  }

  /** Counts `total` answers, `bad` of them 5xx, in the minute starting at `at` (pending until flushed). */
  record(service: string, release: string, at: Millis, total: number, bad: number): void {
    if (total <= 0 && bad <= 0) return;
    const minute = at - (at % MINUTE);
    const k = `${service}\n${release}\n${minute}`;
    const b = this.pending.get(k);
    if (b) {
      b.total += total;
      b.bad += bad;
    } else this.pending.set(k, { service, release, at: minute, total, bad });
  }

  /** Test and tool entry: `minute` is epoch ms / 60 000; release '' is the service as a whole. */
  add(service: string, minute: number, total: number, bad: number, release = ''): void {
    this.record(service, release, minute * MINUTE, total, bad);
  }

  /** Writes every pending count in one transaction; on failure they stay pending for the next try. */
  async flush(now: Millis = Date.now()): Promise<number> {
    this.lastFlush = now;
    if (this.pending.size === 0) return 0;
    const batch = this.pending;
    this.pending = new Map();
    try {
      await this.store.sloCounts().add([...batch.values()]);
    } catch (err) {
      for (const [k, b] of batch) {
        const cur = this.pending.get(k);
        if (cur) {
          cur.total += b.total;
          cur.bad += b.bad;
        } else this.pending.set(k, b);
      }
      throw err;
    }
    const written = new Map<string, Pending[]>();
    for (const b of batch.values()) {
      const k = `${b.service}\n${b.release}`;
      const list = written.get(k);
      if (list) list.push(b);
      else written.set(k, [b]);
    }
    for (const c of this.cache.values())
      for (const b of written.get(`${c.service}\n${c.release}`) ?? [])
        if (b.at >= c.from && b.at < c.to) {
          c.total += b.total;
          c.bad += b.bad;
        }
    return batch.size;
  }

  /** Rollups (minutes → hours → days) and retention of the stored counts. */
  async compact(now: Millis): Promise<{ merged: number; deleted: number }> {
    const r = await this.store.sloCounts().compact({
      hoursBefore: now - this.o.keepMinutesMs,
      daysBefore: now - this.o.keepHoursMs,
      deleteBefore: now - this.o.keepDaysMs,
    });
    this.cache.clear();
    return r;
  }

  /** Forget baselines and cached sums: a controller that (again) becomes leader starts afresh. */
  reset(): void {
    this.last.clear();
    this.learnedAt = undefined;
    this.cache.clear();
    this.lastFlush = undefined;
  }

  /**
   * good/total answers of the service (or one release of it) over the last `windowMs`: whole minutes,
   * the current one included, from the store plus what is pending.
   */
  async countsOver(service: string, windowMs: Millis, now: Millis, release = ''): Promise<Counts> {
    const to = now - (now % MINUTE) + MINUTE;
    const from = to - Math.max(1, Math.round(windowMs / MINUTE)) * MINUTE;
    const key = `${service}\n${release}\n${to - from}`;
    const slo = this.store.sloCounts();
    let c = this.cache.get(key);
    if (c !== undefined && c.from <= from && c.to <= to && from - c.from < to - from) {
      // Slide: add the minutes that entered, take off those that left (both read before either is
      // applied, so a failed read leaves the entry as it was).
      const none = { total: 0, bad: 0 };
      const entered = c.to < to ? await slo.sum({ service, release, from: c.to, to }) : none;
      const left = c.from < from ? await slo.sum({ service, release, from: c.from, to: from }) : none;
      c.total += entered.total - left.total;
      c.bad += entered.bad - left.bad;
      c.from = from;
      c.to = to;
    } else if (c === undefined || c.from !== from || c.to !== to) {
      const sum = await slo.sum({ service, release, from, to });
      if (this.cache.size > 10_000) this.cache.clear();
      c = { service, release, from, to, total: sum.total, bad: sum.bad };
      this.cache.set(key, c);
    }
    let total = c.total;
    let bad = c.bad;
    for (const p of this.pending.values()) {
      if (p.service !== service || p.release !== release || p.at < from || p.at >= to) continue;
      total += p.total;
      bad += p.bad;
    }
    return { good: total - bad, total };
  }

  /** Services with counts in the last `windowMs` (stored or pending). */
  async services(now: Millis, windowMs: Millis = 5 * MINUTE): Promise<string[]> {
    const since = now - (now % MINUTE) - windowMs;
    const names = new Set<string>();
    for (const k of await this.store.sloCounts().keys(since)) if (k.release === '') names.add(k.service);
    for (const p of this.pending.values()) if (p.release === '' && p.at >= since) names.add(p.service);
    return [...names].sort();
  }

  async collect(now: Millis): Promise<Sample[]> {
    const out: Sample[] = [];
    for (const service of await this.services(now)) {
      const c = await this.countsOver(service, 5 * MINUTE, now);
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

/** The controller's signals module (host metrics, check states, service rates), as `current()` gives them. */
export interface SignalsModule {
  current(): readonly { signal: string; labels: Readonly<Record<string, string>>; value: number }[];
}

/**
 * Host metrics (`node_load1`, `node_filesystem_avail_ratio`, `node_cpu_utilization` …), black-box check
 * states (`check_up`, `check_state`, `check_cert_days_left` …), service states and rates from the
 * signals module. Series that FleetSignals already gives (from the store, deploy-aware) are left out,
 * and `host` is the host's name everywhere, so a host-down alert inhibits that host's metric alerts too.
 */
export class ModuleSignals implements SignalSource {
  readonly name = 'signals';

  constructor(
    private readonly signals: SignalsModule,
    private readonly skip: ReadonlySet<string> = new Set(['host_up', 'instance_healthy']),
  ) {}

  collect(): Sample[] {
    const out: Sample[] = [];
    for (const s of this.signals.current()) {
      if (this.skip.has(s.signal)) continue;
      const { hostname, ...rest } = s.labels;
      out.push({
        signal: s.signal,
        labels: hostname === undefined ? rest : { ...rest, host: hostname },
        value: s.value,
      });
    }
    return out;
  }
}
