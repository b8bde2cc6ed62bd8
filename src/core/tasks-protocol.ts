import { z } from 'zod';

/**
 * Host tasks: a command the controller asks one agent to run on its host (`nines hosts patch`).
 *
 *   agent → controller   GET  /v1/agent/tasks?hostId&have&wait   → { tasks: HostTask[] } (long poll)
 *   agent → controller   POST /v1/agent/tasks/:id?hostId          HostTaskResult → 204
 *
 * Tasks live in the controller's memory: a controller restart fails a running patch rather than
 * running its command twice.
 */

export interface HostTask {
  id: string;
  /** Run with `sh -c` on the host, as the agent's user. */
  command: string;
  timeoutMs: number;
  /**
   * `restart-agent`: no command; the agent answers, then exits with EXIT_AGENT_RESTART for its service
   * manager to start the (patched) new one, which adopts the running instances. Default `command`.
   */
  kind?: 'command' | 'restart-agent';
}

/** The agent's exit status when it exits to be restarted (EX_TEMPFAIL; systemd: `Restart=always`). */
export const EXIT_AGENT_RESTART = 75;

export interface HostTaskResult {
  /** null when killed (timeout) or it could not start. */
  exitCode: number | null;
  signal: string | null;
  /** The last 4 KiB of combined stdout and stderr. */
  output: string;
  durationMs: number;
}

export const hostTaskSchema = z.object({
  id: z.string().min(1),
  command: z.string().min(1),
  timeoutMs: z.number().int().positive(),
  kind: z.enum(['command', 'restart-agent']).optional(),
});

export const hostTasksAnswerSchema = z.object({ tasks: z.array(hostTaskSchema) });

export const hostTaskResultSchema = z.strictObject({
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  output: z.string().max(16_384),
  durationMs: z.number().nonnegative(),
});

export const TASK_OUTPUT_MAX = 4096;
