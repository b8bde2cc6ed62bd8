import type { Logger } from 'pino';
import type { AlertRuntime } from './runtime.js';

/**
 * Runs the alerting pipeline every `intervalMs` (default 1 s) on this controller. Ticks never overlap:
 * the next is scheduled when the previous finished. `start()`/`stop()` so the controller can gate it
 * on leadership (only the leader evaluates; the delivery log keeps a handover from double-sending).
 */
export class AlertScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private failures = 0;

  constructor(
    private readonly runtime: AlertRuntime,
    private readonly opts: { logger: Logger; intervalMs?: number },
  ) {}

  get active(): boolean {
    return !this.stopped;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.runtime.begin();
    this.schedule(0);
  }

  /** Stops ticking, waits for the tick in progress and the deliveries in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    await this.runtime.settle();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.runtime
        .tick()
        .then(() => {
          this.failures = 0;
        })
        .catch((err: unknown) => {
          // Logged once per run of failures, not every second.
          if (this.failures++ === 0) this.opts.logger.error({ err }, 'alert evaluation failed');
        })
        .finally(() => {
          this.running = undefined;
          this.schedule(this.opts.intervalMs ?? 1000);
        });
    }, ms);
    this.timer.unref();
  }
}
