import type { Logger } from 'pino';
import type { AgentFault, AgentFaultResult } from '../core/drill-protocol.js';
import type { ObservedInstance } from '../core/protocol.js';
import { type Block, blockDependency, cleanupStale } from './netblock.js';
import { pollOpenItems } from './poll.js';

export interface FaultTransport {
  faults(hostId: string, have: string[], waitS: number, signal: AbortSignal): Promise<AgentFault[]>;
  faultDone(hostId: string, faultId: string, result: AgentFaultResult, signal: AbortSignal): Promise<void>;
}

export interface FaultRunnerDeps {
  transport: FaultTransport;
  hostId: () => string | undefined;
  /** The instances this agent supervises, with their pids. */
  observed: () => ObservedInstance[];
  logger: Logger;
  signal: AbortSignal;
  /** `host-loss`: the agent's own simulation (Agent.simulateHostLoss); absent: refused. */
  hostLoss?: (ms: number) => number[];
  /** `dependency-down`: how the dependency is cut off (default: src/agent/netblock.ts). */
  block?: typeof blockDependency;
  /** For tests: how a process is killed. */
  kill?: (pid: number, signal: NodeJS.Signals) => void;
}

/**
 * The agent's side of `nines drill`: long-polls the faults open for this host and injects each once.
 * Only a process this agent supervises can be named (by instance id), so a drill never reaches outside
 * the fleet. The supervisor sees the kill as a crash and restarts the instance with its back-off —
 * exactly what a real crash would exercise.
 */
export class FaultRunner {
  /** Restores of dependency-down faults in progress (awaited before the runner ends). */
  private readonly restoring = new Set<Promise<void>>();
  private cleaned = false;

  constructor(private readonly d: FaultRunnerDeps) {}

  async run(): Promise<void> {
    await pollOpenItems<AgentFault>({
      what: 'drill faults',
      hostId: this.d.hostId,
      list: async (hostId, have, signal) => {
        if (!this.cleaned) {
          // A dependency-down this host's agent could not restore (it was killed): undo it now.
          this.cleaned = true;
          if (this.d.block === undefined) {
            const removed = await cleanupStale(hostId).catch(() => []);
            if (removed.length > 0) this.d.logger.warn({ removed }, 'drill: leftover dependency-down undone');
          }
        }
        return this.d.transport.faults(hostId, have, 25, signal);
      },
      act: async (hostId, f) => {
        const result = f.kind === 'dependency-down' ? await this.dependencyDown(f) : this.inject(f);
        this.d.logger.warn({ fault: f, result }, 'drill: fault injected');
        await this.d.transport.faultDone(hostId, f.id, result, this.d.signal).catch((err: unknown) => {
          this.d.logger.debug({ err, fault: f.id }, 'drill faults: result not delivered');
        });
      },
      logger: this.d.logger,
      signal: this.d.signal,
    });
    await Promise.allSettled([...this.restoring]);
  }

  /**
   * Cuts the service's processes here (and this agent's probes) off from the dependency for the fault's
   * duration, then restores; also restored when the agent stops.
   */
  async dependencyDown(f: Extract<AgentFault, { kind: 'dependency-down' }>): Promise<AgentFaultResult> {
    const at = Date.now();
    const pids = this.d
      .observed()
      .filter((o) => f.instances.includes(o.id) && o.pid !== undefined)
      .map((o) => o.pid as number);
    let block: Block;
    try {
      block = await (this.d.block ?? blockDependency)({
        owner: this.d.hostId() ?? 'unknown',
        id: f.id,
        endpoints: f.endpoints,
        pids,
      });
    } catch (err) {
      return { ok: false, message: `dependency ${f.check} not blocked: ${(err as Error).message}`, at };
    }
    const restore = () => {
      clearTimeout(timer);
      this.d.signal.removeEventListener('abort', restore);
      block
        .restore()
        .then(() => this.d.logger.warn({ fault: f.id, check: f.check }, 'drill: dependency restored'))
        .catch((err: unknown) =>
          this.d.logger.error({ err, fault: f.id }, 'drill: dependency restore failed'),
        );
    };
    const timer = setTimeout(restore, f.durationMs);
    this.d.signal.addEventListener('abort', restore, { once: true });
    return {
      ok: true,
      message: `${block.message} for ${f.durationMs} ms`,
      ...(block.pids.length > 0 ? { pids: block.pids } : {}),
      at,
    };
  }

  inject(f: AgentFault): AgentFaultResult {
    const at = Date.now();
    if (f.kind === 'dependency-down') return { ok: false, message: 'dependency-down is asynchronous', at };
    if (f.kind === 'host-loss') {
      if (this.d.hostLoss === undefined)
        return { ok: false, message: 'this agent cannot simulate host loss', at };
      const pids = this.d.hostLoss(f.durationMs);
      return {
        ok: true,
        message: `host lost for ${f.durationMs} ms: ${pids.length} process(es) killed`,
        pids,
        at,
      };
    }
    const inst = this.d.observed().find((o) => o.id === f.instance);
    if (inst === undefined) return { ok: false, message: `instance ${f.instance} is not on this host`, at };
    if (inst.pid === undefined || inst.state !== 'running') {
      return { ok: false, message: `instance ${f.instance} has no running process (${inst.state})`, at };
    }
    try {
      (this.d.kill ?? process.kill)(inst.pid, 'SIGKILL');
    } catch (err) {
      return { ok: false, message: `kill ${inst.pid}: ${(err as Error).message}`, at };
    }
    return { ok: true, message: `SIGKILL sent to ${f.instance} (pid ${inst.pid})`, pid: inst.pid, at };
  }
}
