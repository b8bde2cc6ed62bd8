import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { type InstanceState, instanceLifecycle, isTerminal, transition } from '../core/lifecycle.js';
import type { DesiredInstance, ObservedInstance } from '../core/protocol.js';
import { describeProvisionError, isRetryableProvisionError, isSafeSegment } from './artifacts.js';
import { attemptAfterCrash, restartBudget, restartDelayMs } from './backoff.js';
import { type HealthState, initialHealth, nextHealth } from './health.js';
import { probeHttp } from './probe.js';
import { isProcessAlive, processStartTime, signalGroup } from './procfs.js';
import { removeSecretsFile, writeSecretsFile } from './secrets.js';
import type { InstanceRecord } from './state.js';

/** How often an adopted process (no longer our child) is checked for liveness. */
export const ADOPTED_POLL_MS = 250;

export interface SupervisorDeps {
  logger: Logger;
  address: string;
  logsDir: string;
  /** Where instance secrets are written (agent/secrets.ts); without it, secrets go to the environment only. */
  secretsDir?: string;
  hostId(): string | undefined;
  /** Downloads/unpacks the release; resolves to its directory. */
  provision(spec: DesiredInstance): Promise<string>;
  allocatePort(): Promise<number>;
  releasePort(port: number): void;
  probeDispatcher: Dispatcher;
  /** Anything observable changed: report soon. */
  onChange(sup: InstanceSupervisor): void;
  /** The process behind the instance changed (spawned, exited, adopted): persist instances.json. */
  onProcessChange(sup: InstanceSupervisor): void;
}

/**
 * One instance's process on this host: provision, spawn (own process group, output to a log file),
 * probe readiness, restart on crash with backoff on the same port, stop with SIGTERM → SIGKILL.
 *
 * States (instanceLifecycle): pending (provisioning) → starting (spawned, not yet healthy) → running
 * (passed `rise` probes once; `healthy` then follows the probe) → backoff (crashed, waiting to restart)
 * → starting … ; stopping → stopped on a stop; failed when the release cannot be provisioned.
 */
export class InstanceSupervisor {
  readonly id: string;
  spec: DesiredInstance;
  state: InstanceState = 'pending';
  healthy = false;
  pid: number | undefined;
  port: number | undefined;
  restarts = 0;
  exitCode: number | null | undefined;
  signal: string | null | undefined;
  message: string | undefined;
  startedAt: number | undefined;
  releaseDir: string | undefined;
  stopRequested = false;
  /** Whether the current process was adopted from a previous agent (watched by polling). */
  adopted = false;

  private startTime: string | undefined;
  private child: ChildProcess | undefined;
  private health: HealthState = initialHealth;
  private healthySince: number | undefined;
  private attempt = 0;
  /** Times of recent crashes, for the restart policy. */
  private crashes: number[] = [];
  private timers = new Set<NodeJS.Timeout>();
  private watchTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  private detached = false;
  /** Bumped at each spawn, so callbacks of an earlier process are ignored. */
  private run = 0;
  private readonly terminalWaiters: (() => void)[] = [];
  private readonly log: Logger;
  /** Adopted and not probed yet: it was healthy under the previous agent, one pass suffices. */
  private adoptedUnprobed = false;
  private firstProbeDone: (() => void) | undefined;
  /** Resolves once an adopted instance had its first probe (or stopped being watched). */
  readonly firstProbe: Promise<void>;

  constructor(
    spec: DesiredInstance,
    private readonly deps: SupervisorDeps,
  ) {
    this.id = spec.id;
    this.spec = spec;
    this.log = deps.logger.child({ instance: spec.id, service: spec.service });
    this.firstProbe = new Promise((resolve) => {
      this.firstProbeDone = resolve;
    });
  }

  // ---- public ------------------------------------------------------------------------------------

  /** Brings a new instance up (or straight to `stopped` if it is desired stopped). */
  launch(): void {
    if (this.spec.desired === 'stopped') {
      this.stopRequested = true;
      this.to('stopped');
      return;
    }
    if (!isSafeSegment(this.id)) {
      this.fail(`NINES_E_AGENT_PROVISION: unsafe instance id '${this.id}'`);
      return;
    }
    this.provisionAndStart(0).catch((err: unknown) => this.log.error({ err }, 'instance start failed'));
  }

  /** Takes over a live process started by an earlier agent (same pid and start time). */
  adopt(rec: InstanceRecord): void {
    this.adopted = true;
    this.adoptedUnprobed = true;
    this.pid = rec.pid;
    this.port = rec.port;
    this.startTime = rec.startTime;
    this.releaseDir = rec.releaseDir;
    this.restarts = rec.restarts;
    this.startedAt = rec.startedAt;
    this.to('starting');
    const run = ++this.run;
    this.watchTimer = setInterval(() => {
      if (this.detached || run !== this.run) return;
      if (!isProcessAlive(rec.pid, rec.startTime)) this.onExit(run, null, null);
    }, ADOPTED_POLL_MS);
    this.schedule(0, () => this.probe(run));
    this.deps.onProcessChange(this);
    this.log.info({ pid: rec.pid, port: rec.port }, 'adopted running instance');
  }

  /** Stops the instance (SIGTERM to its group, SIGKILL after drainTimeoutMs); resolves when terminal. */
  stop(): Promise<void> {
    if (isTerminal(instanceLifecycle, this.state)) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.terminalWaiters.push(resolve));
    if (this.stopRequested) return done;
    this.stopRequested = true;
    switch (this.state) {
      case 'pending':
        // Provisioning is in flight or waiting for a retry: nothing runs yet.
        this.clearTimer('backoff');
        this.to('stopped');
        break;
      case 'backoff':
        this.clearTimer('backoff');
        this.exitCode = this.exitCode ?? null;
        this.to('stopped');
        this.releasePort();
        break;
      case 'starting':
      case 'running': {
        this.setHealthy(false);
        this.to('stopping'); // pending probes see the state and stop
        const pid = this.pid;
        if (pid !== undefined) {
          const terminate = () => {
            if (this.pid !== pid || this.detached) return;
            this.log.info({ pid, drainTimeoutMs: this.spec.drainTimeoutMs }, 'stopping: SIGTERM');
            signalGroup(pid, 'SIGTERM');
            this.killTimer = setTimeout(() => {
              this.killTimer = undefined;
              if (this.pid === pid && !this.detached) {
                this.log.warn({ pid }, 'drain timeout: SIGKILL');
                signalGroup(pid, 'SIGKILL');
              }
            }, this.spec.drainTimeoutMs);
          };
          if (this.spec.preStop && this.releaseDir)
            this.runPreStop(this.spec.preStop, this.releaseDir, terminate);
          else terminate();
        }
        break;
      }
      default:
        break;
    }
    return done;
  }

  /**
   * The preStop hook: `sh -c` in the release dir with the instance's env, output into its log; the
   * SIGTERM follows when it exits or after its timeout (its process group is killed then).
   */
  private runPreStop(hook: { command: string; timeoutMs: number }, cwd: string, then: () => void): void {
    let fd: number | undefined;
    let done = false;
    const finish = (why: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.log.info({ why }, 'preStop finished');
      then();
    };
    const env: Record<string, string> = {};
    for (const k of ['PATH', 'HOME', 'LANG'] as const) {
      const v = process.env[k];
      if (v !== undefined) env[k] = v;
    }
    Object.assign(env, this.spec.env, {
      PORT: String(this.port ?? ''),
      NINES_INSTANCE_ID: this.id,
      NINES_SERVICE: this.spec.service,
      NINES_RELEASE: this.spec.release.version,
      NINES_HOST_ID: this.deps.hostId() ?? '',
    });
    let child: ChildProcess | undefined;
    try {
      fd = openSync(join(this.deps.logsDir, `${this.id}.log`), 'a');
      appendFileSync(fd, `--- nines: ${new Date().toISOString()} preStop: ${hook.command} ---\n`);
      child = spawn('/bin/sh', ['-c', hook.command], { cwd, detached: true, env, stdio: ['ignore', fd, fd] });
    } catch (err) {
      this.log.warn({ err }, 'preStop could not start');
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    const timer = setTimeout(() => {
      if (child?.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
      finish(`timed out after ${hook.timeoutMs} ms`);
    }, hook.timeoutMs);
    if (!child) {
      finish('not started');
      return;
    }
    child.once('error', () => finish('spawn failed'));
    child.once('exit', (code) => finish(`exit ${code}`));
  }

  /** Stops supervising without touching the process (the next agent adopts it). */
  detach(): void {
    this.detached = true;
    for (const k of ['watch', 'kill', 'backoff'] as const) this.clearTimer(k);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.child?.removeAllListeners();
    this.child = undefined;
    this.firstProbeDone?.();
    for (const w of this.terminalWaiters.splice(0)) w();
  }

  /** The spec to use from the next start on (a running process keeps what it was started with). */
  setSpec(spec: DesiredInstance): void {
    this.spec = spec;
  }

  observed(): ObservedInstance {
    const o: ObservedInstance = {
      id: this.id,
      state: this.state,
      healthy: this.healthy,
      restarts: this.restarts,
    };
    if (this.pid !== undefined) o.pid = this.pid;
    if (this.port !== undefined) o.port = this.port;
    if (this.exitCode !== undefined) o.exitCode = this.exitCode;
    if (this.signal !== undefined) o.signal = this.signal;
    if (this.message !== undefined) o.message = this.message.slice(0, 4000);
    if (this.startedAt !== undefined) o.startedAt = this.startedAt;
    return o;
  }

  /** What instances.json keeps for this instance, when a process is running. */
  record(): InstanceRecord | undefined {
    if (this.pid === undefined || this.port === undefined || this.startTime === undefined) return undefined;
    if (this.releaseDir === undefined || this.startedAt === undefined) return undefined;
    return {
      id: this.id,
      pid: this.pid,
      port: this.port,
      startTime: this.startTime,
      releaseDir: this.releaseDir,
      restarts: this.restarts,
      startedAt: this.startedAt,
      spec: this.spec,
    };
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  private to(next: InstanceState): void {
    if (next === this.state) return;
    const prev = this.state;
    this.state = transition(instanceLifecycle, prev, next);
    this.log.debug({ from: prev, to: next }, 'instance state');
    this.deps.onChange(this);
    if (isTerminal(instanceLifecycle, next)) for (const w of this.terminalWaiters.splice(0)) w();
  }

  private fail(message: string): void {
    this.message = message;
    this.log.error({ message }, 'instance failed');
    this.to('failed');
    this.releasePort();
  }

  private async provisionAndStart(attempt: number): Promise<void> {
    try {
      this.releaseDir = await this.deps.provision(this.spec);
    } catch (err) {
      if (this.detached || this.state !== 'pending') return;
      const message = describeProvisionError(err);
      if (!isRetryableProvisionError(err)) {
        this.fail(message);
        return;
      }
      this.message = message;
      const delay = restartDelayMs(attempt);
      this.log.warn({ err: message, retryInMs: delay }, 'provisioning failed, will retry');
      this.deps.onChange(this);
      this.backoffTimer = setTimeout(() => {
        this.backoffTimer = undefined;
        this.provisionAndStart(attempt + 1).catch((err: unknown) =>
          this.log.error({ err }, 'instance start failed'),
        );
      }, delay);
      return;
    }
    if (this.detached || this.state !== 'pending') return;
    try {
      this.port = await this.deps.allocatePort();
    } catch (err) {
      if (this.detached || this.state !== 'pending') return;
      this.fail(`NINES_E_AGENT_PROVISION: ${(err as Error).message}`);
      return;
    }
    if (this.detached || this.state !== 'pending') {
      this.releasePort();
      return;
    }
    this.message = undefined;
    this.spawnProcess();
  }

  private spawnProcess(): void {
    const spec = this.spec;
    const releaseDir = this.releaseDir;
    const port = this.port;
    if (releaseDir === undefined || port === undefined) throw new Error('spawn without release dir or port');
    const run = ++this.run;
    this.health = initialHealth;
    this.healthySince = undefined;
    this.exitCode = undefined;
    this.signal = undefined;
    this.adopted = false;
    this.to('starting');

    const env: Record<string, string> = {};
    for (const k of ['PATH', 'HOME', 'LANG'] as const) {
      const v = process.env[k];
      if (v !== undefined) env[k] = v;
    }
    const secrets = spec.secrets ?? {};
    const secretsDir = this.deps.secretsDir;
    Object.assign(env, spec.env, secrets, {
      ...(spec.kind === 'worker' ? {} : { PORT: String(port) }),
      NINES_INSTANCE_ID: spec.id,
      NINES_SERVICE: spec.service,
      NINES_RELEASE: spec.release.version,
      NINES_HOST_ID: this.deps.hostId() ?? '',
    });

    let child: ChildProcess;
    let fd: number | undefined;
    try {
      if (secretsDir) {
        if (Object.keys(secrets).length > 0)
          env.NINES_SECRETS_FILE = writeSecretsFile(secretsDir, spec.id, secrets);
        else removeSecretsFile(secretsDir, spec.id);
      }
      mkdirSync(this.deps.logsDir, { recursive: true });
      fd = openSync(join(this.deps.logsDir, `${spec.id}.log`), 'a');
      appendFileSync(
        fd,
        `--- nines: ${new Date().toISOString()} starting ${spec.service}@${spec.release.version} on port ${port} (restart ${this.restarts}) ---\n`,
      );
      child = spawn('/bin/sh', ['-c', `exec ${spec.command}`], {
        cwd: releaseDir,
        detached: true,
        env,
        stdio: ['ignore', fd, fd],
      });
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      this.onExit(run, null, null, `spawn failed: ${(err as Error).message}`);
      return;
    }
    closeSync(fd);
    child.unref(); // the agent may exit and leave it running (adoption)
    this.child = child;
    child.once('error', (err) => {
      if (child.pid === undefined) this.onExit(run, null, null, `spawn failed: ${err.message}`);
    });
    child.once('exit', (code, signal) => this.onExit(run, code, signal));
    if (child.pid === undefined) return; // 'error' follows
    this.pid = child.pid;
    this.startTime = processStartTime(child.pid);
    this.startedAt = Date.now();
    this.log.info({ pid: child.pid, port, restarts: this.restarts }, 'instance started');
    this.deps.onProcessChange(this);
    this.deps.onChange(this);
    this.schedule(Math.min(spec.health.intervalMs, 100), () => this.probe(run));
  }

  private onExit(run: number, code: number | null, signal: NodeJS.Signals | null, reason?: string): void {
    if (this.detached || run !== this.run) return;
    this.run++; // callbacks (probes, watcher) of this process become no-ops
    this.firstProbeDone?.();
    this.clearTimer('watch');
    this.clearTimer('kill');
    const pid = this.pid;
    if (pid !== undefined) signalGroup(pid, 'SIGKILL'); // leftovers of its process group, if any
    this.child?.removeAllListeners();
    this.child = undefined;
    this.pid = undefined;
    this.startTime = undefined;
    this.exitCode = code;
    this.signal = signal;
    const healthyRunMs = this.healthySince === undefined ? 0 : Date.now() - this.healthySince;
    this.setHealthy(false);
    this.deps.onProcessChange(this);

    if (this.state === 'stopping' || this.stopRequested) {
      this.log.info({ pid, code, signal }, 'instance stopped');
      this.to('stopped');
      this.releasePort();
      return;
    }
    const budget = restartBudget([...this.crashes, Date.now()], Date.now(), this.spec.restart);
    this.crashes = budget.recent;
    if (budget.exceeded && this.spec.restart) {
      const how = code !== null ? `exit code ${code}` : signal ? `signal ${signal}` : 'unknown status';
      this.fail(
        `${reason ?? `exited (${how})`}; ${budget.recent.length} crashes within ` +
          `${this.spec.restart.intervalMs} ms exceed the restart policy (${this.spec.restart.attempts} attempts)`,
      );
      return;
    }
    this.attempt = attemptAfterCrash(this.attempt, healthyRunMs);
    const delay = restartDelayMs(this.attempt);
    this.attempt++;
    const how = code !== null ? `exit code ${code}` : signal ? `signal ${signal}` : 'unknown status';
    this.message = `${reason ?? `exited (${how})`}; restarting in ${delay} ms`;
    this.log.warn(
      { pid, code, signal, delayMs: delay, restarts: this.restarts },
      'instance exited, restarting',
    );
    this.to('backoff');
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      if (this.detached || this.state !== 'backoff') return;
      this.restarts++;
      try {
        this.spawnProcess();
      } catch (err) {
        this.log.error({ err }, 'restart failed');
      }
    }, delay);
  }

  // ---- health ------------------------------------------------------------------------------------

  private async probe(run: number): Promise<void> {
    if (this.detached || run !== this.run || this.port === undefined) return;
    const h = this.spec.health;
    const started = Date.now();
    // A worker has no HTTP to probe: reaching this probe with the same process (`run`) means it is up.
    const ok =
      this.spec.kind === 'worker' ||
      (await probeHttp(
        `http://${hostForUrl(this.deps.address)}:${this.port}${h.path}`,
        h.timeoutMs,
        this.deps.probeDispatcher,
      ));
    if (this.detached || run !== this.run || (this.state !== 'starting' && this.state !== 'running')) return;
    this.health = nextHealth(this.health, ok, this.adoptedUnprobed && ok ? 1 : h.rise, h.fall);
    this.adoptedUnprobed = false;
    if (this.health.healthy !== this.healthy) {
      this.setHealthy(this.health.healthy);
      if (this.healthy && this.state === 'starting') {
        this.message = undefined;
        this.to('running');
      }
    }
    this.firstProbeDone?.();
    this.schedule(Math.max(0, h.intervalMs - (Date.now() - started)), () => this.probe(run));
  }

  private setHealthy(v: boolean): void {
    if (v === this.healthy) return;
    this.healthy = v;
    this.healthySince = v ? Date.now() : undefined;
    this.log.info({ healthy: v }, v ? 'instance healthy' : 'instance unhealthy');
    this.deps.onChange(this);
  }

  // ---- helpers -----------------------------------------------------------------------------------

  private schedule(ms: number, fn: () => void | Promise<void>): void {
    if (this.detached) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      void fn();
    }, ms);
    this.timers.add(t);
  }

  private clearTimer(which: 'watch' | 'kill' | 'backoff'): void {
    const key = `${which}Timer` as const;
    const t = this[key];
    if (t !== undefined) {
      clearTimeout(t);
      this[key] = undefined;
    }
  }

  private releasePort(): void {
    if (this.port !== undefined) this.deps.releasePort(this.port);
  }
}

function hostForUrl(address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
}
