import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Agent as HttpAgent } from 'undici';
import { withDeadline } from '../core/deadline.js';
import { instanceLifecycle, isTerminal } from '../core/lifecycle.js';
import type {
  AgentReport,
  DesiredInstance,
  HostDesiredState,
  HostSignals,
  ObservedInstance,
} from '../core/protocol.js';
import { ArtifactCache } from './artifacts.js';
import { controllerRetryDelayMs } from './backoff.js';
import { CheckRunner } from './checks.js';
import {
  ControllerClient,
  ControllerHttpError,
  desiredInstanceSchema,
  hostDesiredStateSchema,
} from './client.js';
import { FaultRunner } from './faults.js';
import { readHostSignals } from './hostmetrics.js';
import { InstanceCpu, readGroupTicks } from './instance-cpu.js';
import { DEFAULT_LOG_ROTATION, type LogRotation, rotateLogs } from './logrotate.js';
import { LogShipper } from './logs.js';
import { startAgentMetrics } from './metrics-server.js';
import { planInstances } from './plan.js';
import { sleep } from './poll.js';
import { allocatePort } from './ports.js';
import { isProcessAlive, signalGroup } from './procfs.js';
import { removeSecretsFile } from './secrets.js';
import {
  type AgentPaths,
  agentPaths,
  type HostFile,
  type InstanceRecord,
  type InstancesFile,
  readJson,
  writeJsonAtomic,
} from './state.js';
import { InstanceSupervisor, type SupervisorDeps } from './supervisor.js';
import { TaskRunner } from './tasks.js';

export interface AgentOptions {
  /**
   * `nines hosts patch --restart-agent`: called once the controller was told; the owner stops this
   * agent (leaving the instances running) and exits for its service manager to start a new one.
   */
  onRestartRequested?: () => void;
  /** One controller URL, or several (they fail over: core/failover.ts). */
  controllerUrl: string | readonly string[];
  token: string;
  dataDir: string;
  name: string;
  zone: string;
  labels: Record<string, string>;
  /** Address the instances listen on and the proxy reaches them at, e.g. 127.0.0.1. */
  address: string;
  logger: Logger;
  /** PEM CA bundle for an https controller URL signed by a private CA. */
  ca?: string;
  /** Long-poll wait in seconds (default 25). */
  pollWaitS?: number;
  /** Heartbeat report interval in ms (default 1000). */
  heartbeatMs?: number;
  /** Instance log rotation (default: 10 MiB, 3 generations, 7 days for logs of instances long gone). */
  logRotation?: LogRotation;
  /** Serve node_exporter-compatible `/metrics` here (`--metrics-listen`); off when absent. */
  metricsListen?: { host: string; port: number };
  /** How often host signals are read and attached to a report, in ms (default 5000; 0 off). */
  hostSignalsMs?: number;
  /** Where /proc is (tests point it at fixtures). */
  procDir?: string;
}

/** Reports are coalesced: at most one per this many ms. */
export const REPORT_COALESCE_MS = 20;

/**
 * The host agent: registers with the controller, long-polls this host's desired state, supervises the
 * instances (one InstanceSupervisor each) and reports what it observes. It keeps the last desired state
 * on disk and applies it at start before the controller answers, and it adopts instances a previous
 * agent left running, so neither a controller outage nor an agent restart touches the apps.
 */
export class Agent {
  private readonly o: AgentOptions;
  private readonly log: Logger;
  private readonly paths: AgentPaths;
  private readonly client: ControllerClient;
  private readonly probeHttp: HttpAgent;
  private readonly abort = new AbortController();
  private readonly artifacts: ArtifactCache;
  private readonly sups = new Map<string, InstanceSupervisor>();
  /** Instances no longer desired: removed once reported in a terminal state. */
  private readonly forgetting = new Set<string>();
  private readonly ports = new Set<number>();
  private desired: HostDesiredState | undefined;
  private desiredJson = '';
  private _hostId: string | undefined;
  private started = false;
  private stopping = false;
  private loops: Promise<void>[] = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private reporting = false;
  /** No reports until start() has adopted and probed what an earlier agent left running. */
  private reportsHeld = true;
  private reportDirty = true;
  private lastReportAt = 0;
  /** Host signals read since the last report that carried them. */
  private pendingHost: HostSignals | undefined;
  /** Per-instance CPU, sampled with the host signals (autoscaling on `cpu`). */
  private readonly cpu = new InstanceCpu();
  /** Resident memory of each running instance's process group, bytes, from the same samples. */
  private readonly memory = new Map<string, number>();
  private metricsServer: { port: number; close(): Promise<void> } | undefined;
  /** Drill `host-loss`: until then the agent neither reports nor starts anything, as if its host were gone. */
  private lostUntil = 0;
  /** The last report failed (its repeats are logged at debug). */
  private reportFailing = false;

  constructor(o: AgentOptions) {
    this.o = o;
    this.log = o.logger.child({ component: 'agent', agent: o.name });
    this.paths = agentPaths(o.dataDir);
    this.client = new ControllerClient(o.controllerUrl, o.token, o.ca, {
      onSwitch: (from, to, why) => this.log.warn({ from, to, why }, 'agent: switching controller'),
    });
    this.probeHttp = new HttpAgent({ connect: { timeout: 5_000 }, pipelining: 0 });
    this.artifacts = new ArtifactCache(
      this.paths.releasesDir,
      this.paths.tmpDir,
      this.client,
      this.log,
      this.abort.signal,
    );
  }

  /** The id the controller gave this host (from host.json until the controller answers). */
  get hostId(): string | undefined {
    return this._hostId;
  }

  /** The port of `/metrics` once started with `metricsListen`. */
  get metricsPort(): number | undefined {
    return this.metricsServer?.port;
  }

  observed(): ObservedInstance[] {
    return [...this.sups.values()].map((s) => {
      const o = s.observed();
      if (o.state !== 'running') return o;
      const cpu = this.cpu.get(o.id);
      const mem = this.memory.get(o.id);
      return cpu === undefined && mem === undefined
        ? o
        : { ...o, ...(cpu === undefined ? {} : { cpu }), ...(mem === undefined ? {} : { memoryBytes: mem }) };
    });
  }

  /** One CPU sample of every running instance's process group. */
  private async sampleInstanceCpu(): Promise<void> {
    const pids = new Map<string, number>();
    for (const s of this.sups.values()) {
      const o = s.observed();
      if (o.state === 'running' && o.pid !== undefined) pids.set(o.id, o.pid);
    }
    const rss = new Map<number, number>();
    const ticks = await readGroupTicks(new Set(pids.values()), this.o.procDir, rss);
    this.cpu.update(pids, ticks, Date.now());
    this.memory.clear();
    for (const [id, pid] of pids) {
      const bytes = rss.get(pid);
      if (bytes !== undefined) this.memory.set(id, bytes);
    }
  }

  /**
   * Applies the cached desired state (adopting live instances) and starts talking to the controller in
   * the background. Resolves without waiting for the controller.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('agent already started');
    this.started = true;
    for (const d of [this.paths.agentDir, this.paths.releasesDir, this.paths.logsDir])
      mkdirSync(d, { recursive: true });
    rmSync(this.paths.tmpDir, { recursive: true, force: true }); // partial downloads of an earlier run
    mkdirSync(this.paths.tmpDir, { recursive: true });

    const host = readJson(this.paths.hostFile) as Partial<HostFile> | undefined;
    if (typeof host?.hostId === 'string') this._hostId = host.hostId;
    // A host that registered before signs with its key from the start; the token is only needed again
    // if the controller no longer knows the key.
    if (typeof host?.hostId === 'string' && typeof host.key === 'string' && host.name === this.o.name) {
      this.client.credentials = { hostId: host.hostId, key: host.key };
    }
    const cached = hostDesiredStateSchema.safeParse(readJson(this.paths.desiredFile));
    if (cached.success) {
      this.desired = cached.data;
      this.desiredJson = JSON.stringify(cached.data);
      // Fencing survives agent restarts: a stale leader is refused even by a fresh agent process.
      this.client.fencingToken = cached.data.fencingToken ?? 0;
      this._hostId ??= cached.data.hostId;
    }

    // Adopt what an earlier agent left running, if it is still the same process.
    const file = readJson(this.paths.instancesFile) as Partial<InstancesFile> | undefined;
    for (const rec of Array.isArray(file?.instances) ? file.instances : []) {
      if (!isRecord(rec) || this.sups.has(rec.id)) continue;
      if (!isProcessAlive(rec.pid, rec.startTime)) {
        this.log.info(
          { instance: rec.id, pid: rec.pid },
          'recorded instance is gone; it will be started anew',
        );
        continue;
      }
      const sup = new InstanceSupervisor(rec.spec, this.deps());
      this.ports.add(rec.port);
      this.sups.set(rec.id, sup);
      sup.adopt(rec);
    }
    // Let adopted instances pass a first probe before anything is reported, so the controller does
    // not see a healthy instance blink unhealthy because its agent restarted.
    const adopted = [...this.sups.values()];
    if (adopted.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(adopted.map((s) => s.firstProbe)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, 2_000);
        }),
      ]);
      clearTimeout(timer);
    }
    if (this.desired) {
      this.log.info({ generation: this.desired.generation }, 'applying cached desired state');
      this.reconcile();
    }
    this.persistInstances();
    this.reportsHeld = false;
    this.scheduleReport();
    this.armHeartbeat();
    this.loops.push(this.controllerLoop());
    this.loops.push(
      new LogShipper({
        transport: this.client,
        logsDir: this.paths.logsDir,
        hostId: () => this._hostId,
        logger: this.log,
        signal: this.abort.signal,
      }).run(),
    );
    this.loops.push(
      new FaultRunner({
        transport: this.client,
        hostId: () => this._hostId,
        observed: () => this.observed(),
        hostLoss: (ms) => this.simulateHostLoss(ms),
        logger: this.log,
        signal: this.abort.signal,
      }).run(),
    );
    this.loops.push(this.rotateLoop());
    if ((this.o.hostSignalsMs ?? 5000) > 0) this.loops.push(this.hostSignalsLoop());
    this.loops.push(
      new CheckRunner({
        transport: this.client,
        hostId: () => this._hostId,
        logger: this.log.child({ part: 'checks' }),
        signal: this.abort.signal,
        ...(this.o.pollWaitS !== undefined ? { pollWaitS: this.o.pollWaitS } : {}),
      }).run(),
    );
    if (this.o.metricsListen) {
      this.metricsServer = await startAgentMetrics(this.o.metricsListen, {
        hostSignals: () => readHostSignals(this.o.procDir),
        observed: () => this.observed(),
      });
    }
    this.loops.push(
      new TaskRunner({
        transport: this.client,
        hostId: () => this._hostId,
        logger: this.log,
        signal: this.abort.signal,
        onRestart: this.o.onRestartRequested,
      }).run(),
    );
  }

  /**
   * Stops talking to the controller. With stopInstances, stops every instance (SIGTERM → SIGKILL after
   * its drain timeout) and waits; without, leaves them running for the next agent to adopt.
   */
  async stop(opts: { stopInstances: boolean }): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.abort.abort();
    clearTimeout(this.heartbeat);
    clearTimeout(this.reportTimer);
    if (opts.stopInstances) {
      await Promise.all([...this.sups.values()].map((s) => s.stop()));
      this.persistInstances();
      if (this._hostId) {
        await this.client
          .report(this.buildReport(this._hostId), AbortSignal.timeout(1000))
          .catch(() => undefined);
      }
    } else {
      this.persistInstances();
      for (const s of this.sups.values()) s.detach();
    }
    await Promise.allSettled(this.loops);
    await Promise.allSettled([this.client.close(), this.probeHttp.destroy(), this.metricsServer?.close()]);
  }

  // ---- supervisors -------------------------------------------------------------------------------

  private deps(): SupervisorDeps {
    return {
      logger: this.o.logger.child({ agent: this.o.name }),
      address: this.o.address,
      logsDir: this.paths.logsDir,
      secretsDir: join(this.o.dataDir, 'secrets'),
      hostId: () => this._hostId ?? this.desired?.hostId,
      provision: (spec: DesiredInstance) => this.artifacts.ensure(spec.service, spec.release),
      allocatePort: async () => {
        const p = await allocatePort(this.o.address, this.ports);
        this.ports.add(p);
        return p;
      },
      releasePort: (p) => this.ports.delete(p),
      probeDispatcher: this.probeHttp,
      onChange: (sup) => {
        this.scheduleReport();
        // An instance that reached stopped may be wanted again (desired changed while it stopped).
        if (!this.stopping && isTerminal(instanceLifecycle, sup.state) && this.desired) {
          queueMicrotask(() => this.reconcile());
        }
      },
      onProcessChange: () => {
        if (!this.stopping) this.persistInstances();
      },
    };
  }

  /**
   * Drill `host-loss` (src/agent/faults.ts): every instance process of this host gets SIGKILL (its whole
   * process group), supervision ends, and for `ms` the agent says nothing to the controller and starts
   * nothing — the controller and the proxies see a lost host. Then it comes back like a rebooted host:
   * it reports and starts what the controller still wants here. Returns the killed pids.
   */
  simulateHostLoss(ms: number): number[] {
    this.lostUntil = Date.now() + ms;
    const killed: number[] = [];
    for (const [id, sup] of this.sups) {
      const pid = sup.observed().pid;
      sup.detach();
      this.sups.delete(id);
      this.forgetting.delete(id);
      if (pid !== undefined && signalGroup(pid, 'SIGKILL')) killed.push(pid);
    }
    this.ports.clear();
    this.persistInstances();
    const back = setTimeout(() => {
      this.lostUntil = 0;
      this.log.warn('drill: host-loss over, host back');
      this.reconcile();
      this.scheduleReport();
    }, ms);
    back.unref();
    this.log.warn({ ms, killed }, 'drill: host-loss — instances killed, silent');
    return killed;
  }

  private reconcile(): void {
    const desired = this.desired;
    if (!desired || this.stopping || Date.now() < this.lostUntil) return;
    const current = [...this.sups.values()].map((s) => ({
      id: s.id,
      state: s.state,
      spec: s.spec,
      stopRequested: s.stopRequested,
    }));
    for (const a of planInstances(desired.instances, current)) {
      try {
        switch (a.kind) {
          case 'create':
          case 'replace': {
            const sup = new InstanceSupervisor(a.spec, this.deps());
            this.forgetting.delete(a.spec.id);
            this.sups.set(a.spec.id, sup);
            sup.launch();
            break;
          }
          case 'keep':
            this.forgetting.delete(a.spec.id);
            this.sups.get(a.spec.id)?.setSpec(a.spec);
            break;
          case 'stop': {
            this.forgetting.delete(a.id);
            const sup = this.sups.get(a.id);
            sup?.setSpec(a.spec);
            void sup?.stop();
            break;
          }
          case 'forget':
            if (!this.forgetting.has(a.id)) {
              this.forgetting.add(a.id);
              void this.sups.get(a.id)?.stop();
              this.scheduleReport();
            }
            break;
        }
      } catch (err) {
        this.log.error({ err, action: a.kind }, 'reconcile action failed');
      }
    }
  }

  private applyDesired(d: HostDesiredState): void {
    const json = JSON.stringify(d);
    if (json !== this.desiredJson) {
      try {
        writeJsonAtomic(this.paths.desiredFile, d);
      } catch (err) {
        this.log.error({ err }, 'cannot cache desired state');
      }
      this.desiredJson = json;
      this.log.info({ generation: d.generation, instances: d.instances.length }, 'desired state changed');
    }
    this.desired = d;
    this.reconcile();
    this.scheduleReport();
  }

  private persistInstances(): void {
    const instances: InstanceRecord[] = [];
    for (const s of this.sups.values()) {
      const r = s.record();
      if (r) instances.push(r);
    }
    try {
      writeJsonAtomic(this.paths.instancesFile, { version: 1, instances } satisfies InstancesFile);
    } catch (err) {
      this.log.error({ err }, 'cannot write instances.json');
    }
  }

  // ---- controller ---------------------------------------------------------------------------------

  private async controllerLoop(): Promise<void> {
    const signal = this.abort.signal;
    let failures = 0;
    let registered = false;
    while (!signal.aborted) {
      try {
        if (!registered) {
          const { hostId, key } = await this.client.register(
            { name: this.o.name, zone: this.o.zone, labels: this.o.labels, address: this.o.address },
            signal,
          );
          if (key) {
            this.client.credentials = { hostId, key };
            writeJsonAtomic(this.paths.hostFile, { hostId, name: this.o.name, key } satisfies HostFile);
          }
          if (hostId !== this._hostId) {
            this.log.info({ hostId, previous: this._hostId }, 'registered');
            this._hostId = hostId;
            if (!key) writeJsonAtomic(this.paths.hostFile, { hostId, name: this.o.name } satisfies HostFile);
          }
          registered = true;
          this.scheduleReport();
        }
        const hostId = this._hostId!;
        const after = this.desired?.hostId === hostId ? this.desired.generation : 0;
        const d = await this.client.desired(hostId, after, this.o.pollWaitS ?? 25, signal);
        if (signal.aborted) break;
        if (d.hostId !== hostId) throw new Error(`desired state is for host ${d.hostId}, not ${hostId}`);
        this.applyDesired(d);
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof ControllerHttpError && (err.status === 404 || err.status === 401)) {
          registered = false;
          // The controller does not know our key (forgotten host, key rotated): back to the token.
          if (err.code === 'NINES_E_SIGNATURE_INVALID') this.client.credentials = undefined;
        }
        const delay = controllerRetryDelayMs(failures++);
        this.log.warn({ err: (err as Error).message, retryInMs: delay }, 'controller request failed');
        await sleep(delay, signal);
      }
    }
  }

  private buildReport(hostId: string): AgentReport {
    const r: AgentReport = { hostId, generation: this.desired?.generation ?? 0, instances: this.observed() };
    if (this.pendingHost) r.host = this.pendingHost;
    return r;
  }

  /** Host signals every hostSignalsMs, handed to the next report (the controller derives rates). */
  private async hostSignalsLoop(): Promise<void> {
    const signal = this.abort.signal;
    const every = this.o.hostSignalsMs ?? 5000;
    while (!signal.aborted) {
      try {
        this.pendingHost = await readHostSignals(this.o.procDir);
        await this.sampleInstanceCpu();
        this.scheduleReport();
      } catch (err) {
        this.log.warn({ err }, 'cannot read host signals');
      }
      await sleep(every, signal);
    }
  }

  /** A report at least every heartbeatMs: re-armed after each report. */
  /** Instance logs are checked every 30 s; an app cannot fill the disk with its output. */
  private async rotateLoop(): Promise<void> {
    const signal = this.abort.signal;
    const rotation = this.o.logRotation ?? DEFAULT_LOG_ROTATION;
    while (!signal.aborted) {
      try {
        const rotated = await rotateLogs(this.paths.logsDir, rotation);
        if (rotated.length > 0) this.log.info({ logs: rotated }, 'instance logs rotated');
      } catch (err) {
        this.log.warn({ err }, 'log rotation failed');
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const t = setTimeout(done, 30_000);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  private armHeartbeat(): void {
    clearTimeout(this.heartbeat);
    if (this.stopping) return;
    this.heartbeat = setTimeout(() => {
      this.scheduleReport();
      this.armHeartbeat();
    }, this.o.heartbeatMs ?? 1000);
  }

  private scheduleReport(): void {
    this.reportDirty = true;
    if (this.stopping || this.reportsHeld || this.reportTimer || this.reporting) return;
    const wait = Math.max(0, this.lastReportAt + REPORT_COALESCE_MS - Date.now());
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      void this.flushReport();
    }, wait);
  }

  private async flushReport(): Promise<void> {
    const hostId = this._hostId;
    if (this.stopping || this.reporting || !hostId) return;
    if (Date.now() < this.lostUntil) {
      this.armHeartbeat();
      return;
    }
    this.reporting = true;
    this.reportDirty = false;
    const body = this.buildReport(hostId);
    const terminal = body.instances
      .filter((i) => this.forgetting.has(i.id) && isTerminal(instanceLifecycle, i.state))
      .map((i) => i.id);
    let failed = false;
    try {
      await withDeadline(5_000, this.abort.signal, (signal) => this.client.report(body, signal));
      if (body.host && this.pendingHost === body.host) this.pendingHost = undefined;
      for (const id of terminal) {
        const sup = this.sups.get(id);
        if (sup && this.forgetting.has(id) && isTerminal(instanceLifecycle, sup.state)) {
          this.sups.delete(id);
          this.forgetting.delete(id);
          removeSecretsFile(join(this.o.dataDir, 'secrets'), id);
          this.log.info({ instance: id }, 'instance forgotten');
        }
      }
      if (terminal.length > 0) this.persistInstances();
    } catch (err) {
      // The first failure after a success is a warning (a controller lost or stalled shows here first);
      // the repeats while it lasts are debug, so a long outage does not flood the log.
      if (!this.stopping) {
        const level = this.reportFailing ? 'debug' : 'warn';
        this.log[level](
          { err: (err as Error).message, controller: this.client.endpoints.current },
          'report failed',
        );
      }
      failed = true;
    } finally {
      this.reportFailing = failed;
      this.reporting = false;
      this.lastReportAt = Date.now();
      this.armHeartbeat();
      if (this.reportDirty) this.scheduleReport();
    }
  }
}

function isRecord(r: unknown): r is InstanceRecord {
  if (typeof r !== 'object' || r === null) return false;
  const x = r as Partial<InstanceRecord>;
  return (
    typeof x.id === 'string' &&
    typeof x.pid === 'number' &&
    typeof x.port === 'number' &&
    typeof x.startTime === 'string' &&
    typeof x.releaseDir === 'string' &&
    typeof x.restarts === 'number' &&
    typeof x.startedAt === 'number' &&
    desiredInstanceSchema.safeParse(x.spec).success
  );
}
