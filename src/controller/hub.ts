import { EventEmitter } from 'node:events';
import type { ObservedInstance, ProxyInstanceStatus, ProxyServiceCounters } from '../core/protocol.js';

/**
 * What the controller has heard from the fleet, in memory: the latest agent report per host and the
 * latest proxy report per proxy. The deploy engine waits on it (`waitUntil`), long polls wait on
 * `signal()` topics. Nothing here is durable: after a restart the fleet reports again within a second.
 */

export interface AgentView {
  hostId: string;
  at: number;
  generation: number;
  instances: Map<string, ObservedInstance>;
}

export interface ProxyView {
  proxyId: string;
  at: number;
  appliedVersion: number;
  instances: Map<string, ProxyInstanceStatus>;
  /** Cumulative answers per service since that proxy started. */
  services: Map<string, { requests: number; failed: number }>;
}

/** The topic signalled on each report of `hostId` (see `Hub.waitUntil`). */
export function agentTopic(hostId: string): string {
  return `agent:${hostId}`;
}

export class WaitTimeout extends Error {
  constructor(what: string, ms: number) {
    super(`timed out after ${ms} ms waiting for ${what}`);
    this.name = 'WaitTimeout';
  }
}

export class Hub {
  readonly agents = new Map<string, AgentView>();
  /** When each host's agent process last registered (it does at every start): a restart shows here. */
  readonly agentStarts = new Map<string, number>();
  readonly proxies = new Map<string, ProxyView>();
  private readonly emitter = new EventEmitter();
  /** A proxy that has not reported for this long is not waited for. */
  readonly proxyLiveMs: number;
  private readonly now: () => number;

  constructor(opts: { proxyLiveMs?: number; now?: () => number } = {}) {
    this.proxyLiveMs = opts.proxyLiveMs ?? 5000;
    this.now = opts.now ?? Date.now;
    this.emitter.setMaxListeners(0);
  }

  agentReport(hostId: string, generation: number, instances: ObservedInstance[]): void {
    const map = new Map<string, ObservedInstance>();
    for (const i of instances) map.set(i.id, i);
    this.agents.set(hostId, { hostId, at: this.now(), generation, instances: map });
    this.emitter.emit('change');
    this.emitter.emit(agentTopic(hostId));
  }

  proxyReport(
    proxyId: string,
    appliedVersion: number,
    instances: ProxyInstanceStatus[],
    services: ProxyServiceCounters[] = [],
  ): void {
    const map = new Map<string, ProxyInstanceStatus>();
    for (const i of instances) map.set(i.id, i);
    const counters = new Map<string, { requests: number; failed: number }>();
    for (const s of services) counters.set(s.name, { requests: s.requests, failed: s.failed });
    this.proxies.set(proxyId, {
      proxyId,
      at: this.now(),
      appliedVersion,
      instances: map,
      services: counters,
    });
    this.emitter.emit('change');
  }

  /** Per live proxy, its cumulative counters for `service` now. */
  serviceCounters(service: string): Map<string, { requests: number; failed: number; at: number }> {
    const out = new Map<string, { requests: number; failed: number; at: number }>();
    for (const p of this.liveProxies()) {
      const c = p.services.get(service);
      out.set(p.proxyId, { requests: c?.requests ?? 0, failed: c?.failed ?? 0, at: p.at });
    }
    return out;
  }

  observed(hostId: string, instanceId: string): ObservedInstance | undefined {
    return this.agents.get(hostId)?.instances.get(instanceId);
  }

  liveProxies(): ProxyView[] {
    const cutoff = this.now() - this.proxyLiveMs;
    return [...this.proxies.values()].filter((p) => p.at >= cutoff);
  }

  /** Wake whatever waits on `topic` (e.g. `host:<id>`, `routing`, `deploy:<id>`). */
  signal(topic: string): void {
    this.emitter.emit(topic);
  }

  /** Calls `fn` on every signal of `topic` until the returned function is called. */
  subscribe(topic: string, fn: () => void): () => void {
    this.emitter.on(topic, fn);
    return () => this.emitter.off(topic, fn);
  }

  /** Resolves on the next signal of `topic`, or after `ms` (false). */
  waitSignal(topic: string, ms: number, abort?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.emitter.off(topic, onSignal);
        abort?.removeEventListener('abort', onAbort);
        resolve(v);
      };
      const onSignal = () => done(true);
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), ms);
      this.emitter.on(topic, onSignal);
      abort?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Resolve with the first non-undefined value of `check`, evaluated now and after every report.
   * `check` may throw to fail the wait (e.g. the instance entered `failed`). A check that depends on
   * one host's reports only passes `topic` = `agentTopic(host)`: a thousand waits on a fleet then do
   * not all run on every report of every host.
   */
  waitUntil<T>(
    what: string,
    check: () => T | undefined,
    ms: number,
    abort?: AbortSignal,
    topic = 'change',
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.emitter.off(topic, evaluate);
        abort?.removeEventListener('abort', onAbort);
      };
      const evaluate = () => {
        try {
          const v = check();
          if (v !== undefined) {
            cleanup();
            resolve(v);
          }
        } catch (err) {
          cleanup();
          reject(err);
        }
      };
      const onAbort = () => {
        cleanup();
        reject(abort?.reason ?? new Error('aborted'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new WaitTimeout(what, ms));
      }, ms);
      // Liveness can change without a report (a proxy going silent), so look again now and then.
      const poll = setInterval(evaluate, 500);
      this.emitter.on(topic, evaluate);
      abort?.addEventListener('abort', onAbort, { once: true });
      evaluate();
    });
  }
}
