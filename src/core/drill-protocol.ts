import { z } from 'zod';

/**
 * How a drill's fault reaches an agent (`nines drill`, issue 8). Like `nines logs`, a channel of its own
 * next to the desired state, so a fault is never cached or replayed after an agent restart:
 *
 *   agent → controller   GET  /v1/agent/faults?hostId&have&wait   → { faults: AgentFault[] } (long poll
 *                                                                   until the set differs from `have`)
 *   agent → controller   POST /v1/agent/faults/:id?hostId         AgentFaultResult → 204
 *
 * A fault names only an instance the controller placed on that host; the agent acts only on a process
 * it supervises, so a drill cannot touch anything outside the fleet.
 */

export type AgentFault =
  | {
      id: string;
      /** SIGKILL the instance's process — a crash; the agent's supervisor restarts it. */
      kind: 'kill-instance';
      instance: string;
    }
  | {
      id: string;
      /**
       * The host is lost for `durationMs`: every instance process SIGKILLed, the agent silent and
       * starting nothing; then it comes back like a rebooted host.
       */
      kind: 'host-loss';
      durationMs: number;
    }
  | {
      id: string;
      /**
       * The dependency of check `check` is unreachable for `durationMs` from the named instances'
       * processes and the agent's own probes (src/agent/netblock.ts); then restored.
       */
      kind: 'dependency-down';
      check: string;
      endpoints: Array<{ host: string; port: number }>;
      instances: string[];
      durationMs: number;
    };

export interface AgentFaultResult {
  ok: boolean;
  message: string;
  /** The process that was killed (kill-instance). */
  pid?: number;
  /** The processes that were killed (host-loss), or cut off from the dependency (dependency-down). */
  pids?: number[];
  /** When the agent acted (unix ms). */
  at: number;
}

export const agentFaultSchema = z.discriminatedUnion('kind', [
  z.object({ id: z.string().min(1), kind: z.literal('kill-instance'), instance: z.string().min(1) }),
  z.object({
    id: z.string().min(1),
    kind: z.literal('host-loss'),
    durationMs: z.number().int().min(100).max(600_000),
  }),
  z.object({
    id: z.string().min(1),
    kind: z.literal('dependency-down'),
    check: z.string().min(1),
    endpoints: z
      .array(z.object({ host: z.string().min(1).max(253), port: z.number().int().min(1).max(65_535) }))
      .min(1)
      .max(16),
    instances: z.array(z.string().min(1)).max(10_000),
    durationMs: z.number().int().min(100).max(600_000),
  }),
]);

export const agentFaultsAnswerSchema = z.object({ faults: z.array(agentFaultSchema) });

export const agentFaultResultSchema = z.strictObject({
  ok: z.boolean(),
  message: z.string().max(2000),
  pid: z.number().int().positive().optional(),
  pids: z.array(z.number().int().positive()).max(10_000).optional(),
  at: z.number().int().nonnegative(),
});
