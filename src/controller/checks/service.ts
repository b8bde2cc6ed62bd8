import type { Logger } from 'pino';
import type { AgentChecks, CheckConfig, CheckResult, CheckSpec, CheckState } from '../../core/checks.js';
import { checkLifecycle } from '../../core/checks.js';
import { transition } from '../../core/lifecycle.js';
import type { Hub } from '../hub.js';
import type { SignalSample, Signals } from '../signals/signals.js';
import type { HostRecord, InstanceRecord, ServiceRecord, Store } from '../store/types.js';
import { evaluateQuorum, type LocationResult, type QuorumVerdict } from './quorum.js';
import type { CheckRecord, MinuteRollup, SubjectState } from './store.js';

/**
 * The controller's side of black-box checks and service availability: hands the declared checks to the
 * agents, takes their results, decides each check's state by quorum and each service's state from its
 * instances, and records every state change (uptime, incidents) and per-minute rollups.
 *
 * `start()`/`stop()` run the evaluation loop (every `evaluateEveryMs`): with several controllers only
 * the leader should run it; the API parts (receiving results, serving checks) work on every controller.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export const CHECKS_COUNTER = 'checks';
export const CHECKS_TOPIC = 'checks';
export const serviceSubject = (name: string) => `service:${name}`;

export interface CheckServiceDeps {
  store: Store;
  hub: Hub;
  signals?: Signals;
  logger: Logger;
  now?: () => number;
  evaluateEveryMs?: number;
  /** Per-minute rollups kept (default 1 day; then hourly for 30 days, then daily); transitions 400 days. */
  minuteRetentionMs?: number;
}

export interface CheckView {
  name: string;
  spec: CheckConfig;
  state: CheckState;
  since: number | null;
  message: string;
  quorum: number;
  locations: (LocationResult & { name: string })[];
}

/** Pure: a service's state from its instances (healthy = running, passing its probe, routed). */
export function serviceState(
  svc: Pick<ServiceRecord, 'spec' | 'currentRelease'>,
  instances: readonly Pick<InstanceRecord, 'route' | 'observed' | 'desired'>[],
): { state: CheckState; message: string; healthy: number; desired: number } {
  const desired = svc.spec.instances;
  if (desired === 0 || svc.currentRelease === null) {
    return { state: 'unknown', message: 'not deployed', healthy: 0, desired };
  }
  // A worker is never routed: running and up is healthy.
  const worker = svc.spec.kind === 'worker';
  const healthy = instances.filter(
    (i) =>
      i.desired === 'running' &&
      (i.route === 'ready' || worker) &&
      i.observed?.state === 'running' &&
      i.observed.healthy,
  ).length;
  const of = `${healthy} of ${desired} instance${desired === 1 ? '' : 's'} healthy`;
  if (healthy === 0) return { state: 'down', message: `no healthy instance (${of})`, healthy, desired };
  if (healthy < desired) return { state: 'degraded', message: of, healthy, desired };
  return { state: 'up', message: of, healthy, desired };
}

export class CheckService {
  private readonly d: CheckServiceDeps;
  private readonly now: () => number;
  private readonly log: Logger;
  private specs = new Map<string, CheckRecord>();
  private version = 0;
  private readonly latest = new Map<string, Map<string, LocationResult>>();
  private readonly states = new Map<string, SubjectState>();
  private readonly verdicts = new Map<string, QuorumVerdict>();
  private readonly minutes = new Map<string, MinuteRollup>();
  private hostNames = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private lastFlush = 0;
  private lastPrune = 0;
  private loaded: Promise<void> | undefined;
  /** Results received since the service started (for the bench and /metrics). */
  resultsReceived = 0;

  constructor(d: CheckServiceDeps) {
    this.d = d;
    this.now = d.now ?? Date.now;
    this.log = d.logger.child({ part: 'checks' });
    d.signals?.addSource('checks', (now) => this.samples(now));
  }

  /** Loads the declared checks and stored states (once; every entry point awaits it). */
  load(): Promise<void> {
    this.loaded ??= (async () => {
      await this.reloadSpecs();
      for (const s of await this.d.store.checks().listStates()) this.states.set(s.subject, s);
    })();
    return this.loaded;
  }

  private async reloadSpecs(): Promise<void> {
    const list = await this.d.store.checks().listChecks();
    this.specs = new Map(list.map((c) => [c.name, c]));
    this.version = await this.d.store.getCounter(CHECKS_COUNTER);
    for (const name of this.latest.keys()) if (!this.specs.has(name)) this.latest.delete(name);
  }

  // ---- declaring checks ---------------------------------------------------------------------------

  async put(name: string, spec: CheckConfig): Promise<{ record: CheckRecord; created: boolean }> {
    await this.load();
    const r = await this.d.store.checks().upsertCheck(name, spec);
    await this.changed();
    return r;
  }

  async remove(name: string): Promise<boolean> {
    await this.load();
    const removed = await this.d.store.checks().deleteCheck(name);
    this.states.delete(name);
    this.verdicts.delete(name);
    if (removed) await this.changed();
    return removed;
  }

  private async changed(): Promise<void> {
    await this.d.store.nextCounter(CHECKS_COUNTER);
    await this.reloadSpecs();
    this.d.hub.signal(CHECKS_TOPIC);
  }

  async get(name: string): Promise<CheckRecord | undefined> {
    await this.load();
    return this.specs.get(name);
  }

  // ---- the agents' side ---------------------------------------------------------------------------

  async forAgents(): Promise<AgentChecks> {
    await this.load();
    // Another controller may have changed them: the counter is the truth.
    if ((await this.d.store.getCounter(CHECKS_COUNTER)) !== this.version) await this.reloadSpecs();
    return {
      version: this.version,
      checks: [...this.specs.values()].map((c) => ({ ...c.spec, name: c.name }) as CheckSpec),
    };
  }

  async versionNow(): Promise<number> {
    return this.d.store.getCounter(CHECKS_COUNTER);
  }

  /** Results from one location; unknown checks are ignored (removed while the agent still ran them). */
  async receive(hostId: string, results: readonly CheckResult[]): Promise<{ accepted: number }> {
    await this.load();
    let accepted = 0;
    for (const r of results) {
      if (!this.specs.has(r.check)) continue;
      accepted++;
      let byLoc = this.latest.get(r.check);
      if (!byLoc) {
        byLoc = new Map();
        this.latest.set(r.check, byLoc);
      }
      const prev = byLoc.get(hostId);
      if (!prev || prev.at <= r.at) {
        byLoc.set(hostId, {
          location: hostId,
          ok: r.ok,
          // The streak the consecutive-failure threshold reads.
          failures: r.ok ? 0 : prev && !prev.ok ? (prev.failures ?? 1) + 1 : 1,
          at: r.at,
          message: r.message,
          latencyMs: r.latencyMs,
          ...(r.status !== undefined ? { status: r.status } : {}),
          ...(r.certDaysLeft !== undefined ? { certDaysLeft: r.certDaysLeft } : {}),
        });
      }
      this.rollup(r.check, r.at, r.ok, r.latencyMs);
    }
    this.resultsReceived += accepted;
    return { accepted };
  }

  private rollup(subject: string, at: number, ok: boolean, latencyMs: number): void {
    const minute = at - (at % 60_000);
    const key = `${subject}\u0000${minute}`;
    let m = this.minutes.get(key);
    if (!m) {
      m = { subject, minute, ok: 0, failed: 0, latencySumMs: 0, latencyMaxMs: 0 };
      this.minutes.set(key, m);
    }
    if (ok) m.ok++;
    else m.failed++;
    m.latencySumMs += latencyMs;
    if (latencyMs > m.latencyMaxMs) m.latencyMaxMs = latencyMs;
  }

  // ---- evaluation loop ----------------------------------------------------------------------------

  start(): void {
    if (this.timer) return;
    const every = this.d.evaluateEveryMs ?? 1000;
    const loop = () => {
      this.ticking = this.tick()
        .catch((err) => this.log.error({ err }, 'check evaluation failed'))
        .finally(() => {
          this.ticking = undefined;
          if (this.timer) this.timer = setTimeout(loop, every);
        });
    };
    this.timer = setTimeout(loop, every);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.ticking;
    await this.flushMinutes().catch((err) => this.log.warn({ err }, 'cannot store check rollups'));
  }

  /** One evaluation of every check and service (exported for tests: the loop calls this). */
  async tick(): Promise<void> {
    await this.load();
    const now = this.now();
    const hosts = await this.d.store.listHosts();
    this.hostNames = new Map(hosts.map((h: HostRecord) => [h.id, h.name]));
    for (const [name, rec] of this.specs) {
      const spec = rec.spec;
      const verdict = evaluateQuorum([...(this.latest.get(name)?.values() ?? [])], {
        now,
        // Three missed intervals (plus the probe's own timeout and delivery) and a location stops counting.
        staleAfterMs: 3 * spec.interval + spec.timeout + 5_000,
        quorum: spec.quorum,
        consecutiveFailures: spec.consecutiveFailures,
      });
      this.verdicts.set(name, verdict);
      const named = this.named(verdict.message);
      await this.setState(
        name,
        verdict.state,
        named,
        verdict.failing.length,
        verdict.failing.length + verdict.passing.length,
        now,
      );
    }
    const [services, instances] = await Promise.all([
      this.d.store.listServices(),
      this.d.store.listInstances(),
    ]);
    for (const svc of services) {
      const s = serviceState(
        svc,
        instances.filter((i) => i.service === svc.name),
      );
      await this.setState(
        serviceSubject(svc.name),
        s.state,
        s.message,
        s.desired - s.healthy,
        s.desired,
        now,
      );
    }
    if (now - this.lastFlush >= 60_000) await this.flushMinutes();
    if (now - this.lastPrune >= 3_600_000) {
      this.lastPrune = now;
      const cs = this.d.store.checks();
      // Minutes for a day, then hours for 30 days, then days; everything goes after 400 days. The store
      // stays bounded: per check about 1,440 + 720 + 370 rows.
      const minuteKeep = this.d.minuteRetentionMs ?? DAY;
      const hours = await cs.compact(now - minuteKeep - 3 * DAY, now - minuteKeep, HOUR);
      const days = await cs.compact(now - 30 * DAY - 3 * DAY, now - 30 * DAY, DAY);
      const r = await cs.prune(now - 400 * DAY, now - 400 * DAY);
      if (hours + days + r.minutes + r.transitions > 0) {
        this.log.info({ ...r, compactedToHours: hours, compactedToDays: days }, 'check rollups compacted');
      }
    }
  }

  /** Host ids in messages become host names (the names people know). */
  private named(message: string): string {
    let m = message;
    for (const [id, name] of this.hostNames) if (m.includes(id)) m = m.split(id).join(name);
    return m;
  }

  private async setState(
    subject: string,
    state: CheckState,
    message: string,
    failing: number,
    locations: number,
    now: number,
  ): Promise<void> {
    const cur = this.states.get(subject);
    if (cur && cur.state === state && cur.message === message) return;
    const from = cur?.state ?? 'unknown';
    transition(checkLifecycle, from, state);
    const next: SubjectState = {
      subject,
      state,
      since: cur && cur.state === state ? cur.since : now,
      message,
      failing,
      locations,
      updatedAt: now,
    };
    const t = await this.d.store.checks().saveState(next, message);
    this.states.set(subject, next);
    if (t) {
      const isService = subject.startsWith('service:');
      this.log.info({ subject, from: t.from, to: t.to }, message);
      await this.d.store.appendEvent({
        at: now,
        kind: `${isService ? 'service' : 'check'}.${state}`,
        subject: isService ? subject.slice('service:'.length) : subject,
        message: `${isService ? 'service' : 'check'} ${isService ? subject.slice(8) : subject} is ${state} (was ${t.from}): ${message}`,
        data: { from: t.from, to: t.to },
      });
    }
  }

  async flushMinutes(): Promise<void> {
    this.lastFlush = this.now();
    if (this.minutes.size === 0) return;
    const rows = [...this.minutes.values()];
    this.minutes.clear();
    await this.d.store.checks().addMinutes(rows);
  }

  // ---- views ----------------------------------------------------------------------------------------

  async list(): Promise<CheckView[]> {
    await this.load();
    return [...this.specs.values()].map((c) => this.view(c));
  }

  view(c: CheckRecord): CheckView {
    const st = this.states.get(c.name);
    const v = this.verdicts.get(c.name);
    return {
      name: c.name,
      spec: c.spec,
      state: st?.state ?? 'unknown',
      since: st?.since ?? null,
      message: st?.message ?? 'not evaluated yet',
      quorum: v?.quorum ?? 0,
      locations: [...(this.latest.get(c.name)?.values() ?? [])].map((l) => ({
        ...l,
        name: this.hostNames.get(l.location) ?? l.location,
      })),
    };
  }

  /** The state of every subject (checks and `service:<name>`), as last evaluated. */
  subjectStates(): SubjectState[] {
    return [...this.states.values()];
  }

  // ---- signals ----------------------------------------------------------------------------------------

  private samples(now: number): SignalSample[] {
    const out: SignalSample[] = [];
    const code: Record<CheckState, number> = { up: 0, degraded: 1, down: 2, unknown: 3 };
    for (const [subject, s] of this.states) {
      if (subject.startsWith('service:')) {
        const l = { service: subject.slice(8) };
        if (s.state !== 'unknown')
          out.push({ signal: 'service_up', labels: l, value: s.state === 'down' ? 0 : 1, at: now });
        out.push({ signal: 'service_state', labels: l, value: code[s.state], at: now });
        continue;
      }
      const spec = this.specs.get(subject)?.spec;
      if (!spec) continue;
      const l = { check: subject, type: spec.type, dependency: String(spec.dependency) };
      if (s.state !== 'unknown')
        out.push({ signal: 'check_up', labels: l, value: s.state === 'down' ? 0 : 1, at: now });
      out.push({ signal: 'check_state', labels: l, value: code[s.state], at: now });
      out.push({ signal: 'check_failing_locations', labels: l, value: s.failing, at: now });
      for (const r of this.latest.get(subject)?.values() ?? []) {
        const ll = { check: subject, location: this.hostNames.get(r.location) ?? r.location };
        out.push({ signal: 'check_location_up', labels: ll, value: r.ok ? 1 : 0, at: r.at });
        out.push({ signal: 'check_latency_seconds', labels: ll, value: r.latencyMs / 1000, at: r.at });
        if (r.certDaysLeft !== undefined) {
          out.push({ signal: 'check_cert_days_left', labels: ll, value: r.certDaysLeft, at: r.at });
        }
      }
    }
    return out;
  }
}
