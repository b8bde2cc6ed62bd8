import { randomBytes } from 'node:crypto';
import { NinesError } from '../core/errors.js';
import type { HostTask, HostTaskResult } from '../core/tasks-protocol.js';
import type { Hub } from './hub.js';

export const taskTopic = (hostId: string) => `tasks:${hostId}`;

interface Pending {
  hostId: string;
  task: HostTask;
  resolve(r: HostTaskResult): void;
}

/**
 * Commands waiting for (or being run by) an agent. `run` resolves with the agent's result, or fails
 * with NINES_E_HOST_TASK_FAILED when the agent does not answer within the task's timeout plus a grace.
 */
export class HostTasks {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly hub: Hub) {}

  forHost(hostId: string): HostTask[] {
    return [...this.pending.values()].filter((p) => p.hostId === hostId).map((p) => p.task);
  }

  async run(
    hostId: string,
    hostName: string,
    command: string,
    timeoutMs: number,
    kind: NonNullable<HostTask['kind']> = 'command',
  ): Promise<HostTaskResult> {
    const task: HostTask = {
      id: `task-${randomBytes(6).toString('hex')}`,
      command,
      timeoutMs,
      ...(kind === 'command' ? {} : { kind }),
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<HostTaskResult>((resolve, reject) => {
        this.pending.set(task.id, { hostId, task, resolve });
        this.hub.signal(taskTopic(hostId));
        // The agent kills the command at timeoutMs; the grace covers its poll and report.
        timer = setTimeout(
          () =>
            reject(
              new NinesError(
                'NINES_E_HOST_TASK_FAILED',
                `host ${hostName}: no answer from its agent within ${timeoutMs + 30_000} ms for: ${command}`,
                { host: hostName },
              ),
            ),
          timeoutMs + 30_000,
        );
      });
    } finally {
      clearTimeout(timer);
      this.pending.delete(task.id);
      this.hub.signal(taskTopic(hostId));
    }
  }

  /** The agent's answer; false when the task is unknown (answered already, timed out). */
  complete(hostId: string, id: string, result: HostTaskResult): boolean {
    const p = this.pending.get(id);
    if (!p || p.hostId !== hostId) return false;
    p.resolve(result);
    return true;
  }
}
