import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import { type HostTask, type HostTaskResult, TASK_OUTPUT_MAX } from '../core/tasks-protocol.js';

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
}

/**
 * The agent's side of `nines hosts patch`: long-polls the commands the controller wants run on this
 * host and runs each once (`sh -c`, own process group, killed at its timeout), answering with the exit
 * code and the tail of its output. A task id is never run twice, even if the answer is lost.
 */
export class TaskRunner {
  /** Ids started by this agent (running or answered) that the controller still lists. */
  private readonly started = new Set<string>();

  constructor(private readonly d: TaskRunnerDeps) {}

  async run(): Promise<void> {
    const { signal } = this.d;
    while (!signal.aborted) {
      const hostId = this.d.hostId();
      if (!hostId) {
        await sleep(500, signal);
        continue;
      }
      let tasks: HostTask[];
      try {
        tasks = await this.d.transport.tasks(hostId, [...this.started], 25, signal);
      } catch (err) {
        if (signal.aborted) break;
        this.d.logger.debug({ err }, 'host tasks: poll failed, retrying');
        await sleep(1000, signal);
        continue;
      }
      const listed = new Set(tasks.map((t) => t.id));
      for (const id of this.started) if (!listed.has(id)) this.started.delete(id);
      for (const t of tasks) {
        if (this.started.has(t.id)) continue;
        this.started.add(t.id);
        void this.execute(hostId, t);
      }
      // Nothing new: wait a moment so an unchanged list does not spin.
      if (tasks.every((t) => this.started.has(t.id))) await sleep(200, signal);
    }
  }

  private async execute(hostId: string, t: HostTask): Promise<void> {
    this.d.logger.info({ task: t.id, command: t.command }, 'running host task');
    const result = await runCommand(t.command, t.timeoutMs);
    this.d.logger.info({ task: t.id, exitCode: result.exitCode, signal: result.signal }, 'host task done');
    for (let attempt = 0; attempt < 5 && !this.d.signal.aborted; attempt++) {
      try {
        await this.d.transport.sendTaskResult(hostId, t.id, result, this.d.signal);
        return;
      } catch (err) {
        this.d.logger.warn({ err, task: t.id }, 'host task: answer failed, retrying');
        await sleep(1000, this.d.signal);
      }
    }
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
