import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import { type HostTask, type HostTaskResult, TASK_OUTPUT_MAX } from '../core/tasks-protocol.js';
import { pollOpenItems, sleep } from './poll.js';

/** What the task runner needs from the controller client (signed calls). */
export interface TaskTransport {
  tasks(hostId: string, have: string[], waitS: number, signal: AbortSignal): Promise<HostTask[]>;
  sendTaskResult(hostId: string, id: string, result: HostTaskResult, signal: AbortSignal): Promise<void>;
}

export interface TaskRunnerDeps {
  transport: TaskTransport;
  hostId: () => string | undefined;
  logger: Logger;
  signal: AbortSignal;
  /** A `restart-agent` task: the agent's owner stops it and exits for its service manager to restart. */
  onRestart?: (() => void) | undefined;
}

/**
 * The agent's side of `nines hosts patch`: long-polls the commands the controller wants run on this
 * host and runs each once (`sh -c`, own process group, killed at its timeout), answering with the exit
 * code and the tail of its output. A task id is never run twice, even if the answer is lost.
 */
export class TaskRunner {
  constructor(private readonly d: TaskRunnerDeps) {}

  run(): Promise<void> {
    return pollOpenItems<HostTask>({
      what: 'host tasks',
      hostId: this.d.hostId,
      list: (hostId, have, signal) => this.d.transport.tasks(hostId, have, 25, signal),
      // Not awaited: a long command must not hold up the next task's start or the poll.
      act: async (hostId, t) => void this.execute(hostId, t),
      logger: this.d.logger,
      signal: this.d.signal,
    });
  }

  private async execute(hostId: string, t: HostTask): Promise<void> {
    if (t.kind === 'restart-agent') {
      const can = this.d.onRestart !== undefined;
      this.d.logger.warn(
        { task: t.id },
        can ? 'restart requested: exiting for a new agent' : 'restart requested: not possible here',
      );
      const answered = await this.answer(hostId, t, {
        exitCode: can ? 0 : 1,
        signal: null,
        output: can
          ? 'agent restarting'
          : 'this agent was not started by `nines agent`: it cannot restart itself',
        durationMs: 0,
      });
      if (can && answered) this.d.onRestart?.();
      return;
    }
    this.d.logger.info({ task: t.id, command: t.command }, 'running host task');
    const result = await runCommand(t.command, t.timeoutMs);
    this.d.logger.info({ task: t.id, exitCode: result.exitCode, signal: result.signal }, 'host task done');
    await this.answer(hostId, t, result);
  }

  private async answer(hostId: string, t: HostTask, result: HostTaskResult): Promise<boolean> {
    for (let attempt = 0; attempt < 5 && !this.d.signal.aborted; attempt++) {
      try {
        await this.d.transport.sendTaskResult(hostId, t.id, result, this.d.signal);
        return true;
      } catch (err) {
        this.d.logger.warn({ err, task: t.id }, 'host task: answer failed, retrying');
        await sleep(1000, this.d.signal);
      }
    }
    return false;
  }
}

/** Run `sh -c command` in its own process group; SIGKILL the group at the timeout. */
export function runCommand(command: string, timeoutMs: number): Promise<HostTaskResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    let out = '';
    const keep = (b: Buffer) => {
      out = (out + b.toString('utf8')).slice(-TASK_OUTPUT_MAX);
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn('sh', ['-c', command], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      resolve({ exitCode: null, signal: null, output: (err as Error).message, durationMs: 0 });
      return;
    }
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const timer = setTimeout(() => {
      out = `${out}\n[nines: killed after ${timeoutMs} ms]`.slice(-TASK_OUTPUT_MAX);
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, timeoutMs);
    child.on('error', (err) => keep(Buffer.from(`${err.message}\n`)));
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ exitCode: code, signal: sig, output: out, durationMs: Date.now() - started });
    });
  });
}
