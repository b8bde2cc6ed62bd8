import type { Logger } from 'pino';
import { fleetSpec } from '../../core/fleet-config.js';
import type { Hub } from '../hub.js';
import type { Store } from '../store/types.js';
import { autoscale, meanCpu } from './autoscale.js';

/**
 * Applies `scaling.autoscale` (target tracking, `autoscale.ts`): every `intervalMs` it measures each
 * autoscaled service and sets its instance count; the reconciler then starts or drains instances.
 * The `rps` metric is the requests per second the proxies answered for the service (from their
 * cumulative counters), per serving instance. The `cpu` metric is the mean CPU (percent of one core)
 * of the serving instances, as their agents last reported it (`ObservedInstance.cpu`).
 */
export class Autoscaler {
  private readonly samples = new Map<string, Map<string, { requests: number; at: number }>>();
  private readonly history = new Map<string, Array<{ at: number; desired: number }>>();
  private readonly warned = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly now: () => number;
  private readonly intervalMs: number;

  constructor(
    private readonly d: { store: Store; hub: Hub; logger: Logger; intervalMs?: number; now?: () => number },
  ) {
    this.now = d.now ?? Date.now;
    this.intervalMs = d.intervalMs ?? 15_000;
  }

  start(): void {
    // Restartable: a controller that leads again after losing the lease starts it again.
    this.stopped = false;
    const loop = () => {
      this.running = this.tick()
        .catch((err) => this.d.logger.error({ err }, 'autoscale tick failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(loop, this.intervalMs);
        });
    };
    this.timer = setTimeout(loop, this.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass; exposed for tests. */
  async tick(): Promise<void> {
    for (const svc of await this.d.store.listServices()) {
      const a = svc.spec.scaling?.autoscale;
      if (!a || !svc.currentRelease || svc.lockedBy) continue;
      let perInstance: number | undefined;
      if (a.metric === 'cpu') {
        const instances = await this.d.store.listInstances({ service: svc.name });
        const cpu = meanCpu(
          instances
            .filter((i) => i.desired === 'running' && i.route === 'ready')
            .map((i) => this.d.hub.observed(i.hostId, i.id)?.cpu),
        );
        if (cpu === undefined) {
          if (!this.warned.has(svc.name)) {
            this.warned.add(svc.name);
            await this.note(
              svc.name,
              `${svc.name}: no CPU reported by its instances' agents yet (they sample it with host signals); not scaling`,
            );
          }
          continue;
        }
        this.warned.delete(svc.name);
        perInstance = cpu;
      } else {
        const rate = this.rps(svc.name);
        if (rate === undefined) continue;
        const instances = await this.d.store.listInstances({ service: svc.name });
        const serving = instances.filter((i) => i.desired === 'running' && i.route === 'ready').length;
        perInstance = rate / Math.max(1, serving || svc.spec.instances);
      }
      const { scaling } = fleetSpec(svc.spec);
      const decision = autoscale({
        now: this.now(),
        current: svc.spec.instances,
        perInstance,
        target: a.target,
        min: scaling.min,
        max: scaling.max,
        scaleUpStep: a.scaleUpStep,
        stabilizationMs: a.scaleDownStabilization,
        history: this.history.get(svc.name) ?? [],
      });
      this.history.set(svc.name, decision.history);
      if (decision.desired === svc.spec.instances) continue;
      await this.d.store.upsertService(svc.name, { ...svc.spec, instances: decision.desired });
      this.d.hub.signal('services');
      await this.note(svc.name, `${svc.name}: ${decision.reason}`);
    }
  }

  /** Requests per second over the last interval, summed over the proxies; undefined without two samples. */
  private rps(service: string): number | undefined {
    const now = this.d.hub.serviceCounters(service);
    const prev = this.samples.get(service);
    this.samples.set(service, new Map([...now].map(([id, c]) => [id, { requests: c.requests, at: c.at }])));
    if (!prev) return undefined;
    let rate = 0;
    let seen = 0;
    for (const [id, c] of now) {
      const p = prev.get(id);
      // A proxy that restarted (counter went back) or did not report since: no sample from it.
      if (!p || c.requests < p.requests || c.at <= p.at) continue;
      rate += ((c.requests - p.requests) * 1000) / (c.at - p.at);
      seen++;
    }
    return seen > 0 ? rate : undefined;
  }

  private async note(service: string, message: string): Promise<void> {
    this.d.logger.info({ service }, message);
    await this.d.store.appendEvent({
      at: this.now(),
      kind: 'service.autoscaled',
      subject: service,
      message,
      data: null,
    });
  }
}
