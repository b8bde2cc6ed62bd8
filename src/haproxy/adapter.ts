import type { Logger } from 'pino';
import type { ProxyReport, RoutingSnapshot } from '../core/protocol.js';
import { type AdapterOptions, commandSucceeded, parseShowStat, plan } from './plan.js';
import type { HaproxyRuntime } from './runtime.js';

export interface HaproxyAdapterOptions extends AdapterOptions {
  proxyId: string;
  runtime: HaproxyRuntime;
  logger: Logger;
  /** How often HAProxy's state is read and moved towards the snapshot. Default 100 ms. */
  syncIntervalMs?: number;
}

/**
 * Drives an external HAProxy from the controller's routing snapshots. It is a `LinkTarget` of the
 * proxy's `ControllerLink`: the link long-polls snapshots into `applySnapshot` and posts `report()`
 * whenever it changes, exactly as for a nines proxy, so the controller sees one more proxy.
 *
 * A sync round reads `show stat`, plans (pure, `plan.ts`), sends the commands, reads `show stat`
 * again and reports what HAProxy now shows. `appliedVersion` only moves once every command of a
 * round for that snapshot was accepted, so the deploy engine never takes HAProxy's word too early.
 * While HAProxy is unreachable the report keeps its last applied version and instances, and the
 * adapter retries every round.
 */
export class HaproxyAdapter {
  private readonly o: HaproxyAdapterOptions;
  private snapshot: RoutingSnapshot | null = null;
  private appliedVersion = 0;
  private current: ProxyReport;
  private currentJson = '';
  private listeners: Array<(r: ProxyReport) => void> = [];
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private round: Promise<void> | null = null;
  private again = false;
  private failing = false;

  constructor(o: HaproxyAdapterOptions) {
    this.o = o;
    this.current = { proxyId: o.proxyId, appliedVersion: 0, instances: [], services: [] };
    this.currentJson = JSON.stringify(this.current);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.kick();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.round;
  }

  snapshotVersion(): number {
    return this.snapshot?.version ?? 0;
  }

  applySnapshot(s: RoutingSnapshot): void {
    if (this.snapshot !== null && s.version <= this.snapshot.version) return;
    this.snapshot = s;
    this.kick();
  }

  report(): ProxyReport {
    return this.current;
  }

  onReportChange(cb: (r: ProxyReport) => void): () => void {
    this.listeners.push(cb);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== cb);
    };
  }

  /** Run a sync round now (or right after the one in progress). */
  private kick(): void {
    if (!this.running) return;
    if (this.round !== null) {
      this.again = true;
      return;
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.round = this.sync().finally(() => {
      this.round = null;
      if (!this.running) return;
      if (this.again) {
        this.again = false;
        this.kick();
        return;
      }
      this.timer = setTimeout(() => {
        this.timer = null;
        this.kick();
      }, this.o.syncIntervalMs ?? 100);
    });
  }

  /** One round: read, plan, apply, read again, report. Public for tests. */
  async sync(): Promise<void> {
    const snap = this.snapshot;
    try {
      const first = plan(snap, parseShowStat(await this.o.runtime.command('show stat')), this.o);
      let ok = true;
      for (const cmd of first.commands) {
        const answer = await this.o.runtime.command(cmd);
        if (!commandSucceeded(cmd, answer)) {
          ok = false;
          this.o.logger.warn({ cmd, answer: answer.trim().slice(0, 300) }, 'haproxy: command refused');
        } else this.o.logger.info({ cmd }, 'haproxy: applied');
      }
      const after =
        first.commands.length === 0
          ? first
          : plan(snap, parseShowStat(await this.o.runtime.command('show stat')), this.o);
      if (ok && snap !== null) this.appliedVersion = Math.max(this.appliedVersion, snap.version);
      // More to do (a drain step, a delete): come back at once rather than after the interval.
      if (ok && after.commands.length > 0 && first.commands.length > 0) this.again = true;
      this.publish({
        proxyId: this.o.proxyId,
        appliedVersion: this.appliedVersion,
        instances: after.instances,
        services: after.services,
      });
      if (this.failing) this.o.logger.info('haproxy: runtime API reachable again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) {
        this.o.logger.warn({ err: (err as Error).message }, 'haproxy: sync failed; retrying');
      }
      this.failing = true;
    }
  }

  private publish(r: ProxyReport): void {
    const json = JSON.stringify(r);
    if (json === this.currentJson) return;
    this.current = r;
    this.currentJson = json;
    for (const l of this.listeners) l(r);
  }
}
