import type { Logger } from 'pino';
import type { AgentFault, AgentFaultResult } from '../core/drill-protocol.js';
import type { ObservedInstance } from '../core/protocol.js';

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
  private readonly done = new Set<string>();

  constructor(private readonly d: FaultRunnerDeps) {}

  async run(): Promise<void> {
    const { signal } = this.d;
    while (!signal.aborted) {
      const hostId = this.d.hostId();
      if (!hostId) {
        await sleep(500, signal);
        continue;
      }
      let faults: AgentFault[];
      try {
        faults = await this.d.transport.faults(hostId, [...this.done], 25, signal);
      } catch (err) {
        if (signal.aborted) break;
        this.d.logger.debug({ err }, 'drill faults: poll failed, retrying');
        await sleep(1000, signal);
        continue;
      }
      const open = new Set(faults.map((f) => f.id));
      for (const id of this.done) if (!open.has(id)) this.done.delete(id);
      for (const f of faults) {
        if (this.done.has(f.id)) continue;
        this.done.add(f.id);
        const result = this.inject(f);
        this.d.logger.warn({ fault: f, result }, 'drill: fault injected');
        await this.d.transport.faultDone(hostId, f.id, result, signal).catch((err: unknown) => {
          this.d.logger.debug({ err, fault: f.id }, 'drill faults: result not delivered');
        });
      }
    }
  }

  inject(f: AgentFault): AgentFaultResult {
    const at = Date.now();
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

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
