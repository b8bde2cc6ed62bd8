import type { Store } from './types.js';

/**
 * Group commit for independent writes: while one transaction commits, the writes that arrive queue up
 * and then run together in the next one. Each caller still resolves only after the transaction holding
 * its write committed (nothing is acknowledged before it is durable), and each write stays atomic.
 *
 * Why: with `synchronous=FULL` every commit is an fsync, and a fleet issues thousands of small writes a
 * second (reports, heartbeats, deploy steps of a thousand instances at once). One fsync per write made
 * the controller spend most of its time waiting on the disk (bench/fleet); one per batch does not.
 *
 * A batch that fails (one of its writes throws) is rolled back whole and its writes are run again one
 * transaction each, so one bad write fails alone, as it would without batching. `prepare` runs first in
 * every transaction (the leadership fence check); an error it throws fails the whole batch at once.
 */
export class GroupCommit {
  private queue: Array<{
    op: (tx: Store) => Promise<unknown>;
    resolve(v: unknown): void;
    reject(err: unknown): void;
  }> = [];
  private flushing = false;
  /** Transactions committed and writes they carried (for tests and the bench). */
  readonly stats = { transactions: 0, writes: 0 };

  constructor(
    private readonly inner: Store,
    private readonly prepare: (tx: Store) => Promise<void> = async () => {},
    private readonly maxBatch = 256,
  ) {}

  run<T>(op: (tx: Store) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        // Let timers and I/O run between transactions: on SQLite every statement completes at once, so
        // back-to-back batches fed by their own callers' next writes were one endless chain of
        // microtasks, and the leader's lease renewal starved (bench/fleet lost the lease at 1,000
        // hosts). Waiting a turn also lets more writes join the batch.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const batch = this.queue.splice(0, this.maxBatch);
        if (batch.length === 1) {
          const [one] = batch;
          if (one) await this.single(one);
          continue;
        }
        try {
          const results = await this.inner.transaction(async (tx) => {
            await this.prepare(tx);
            const out: unknown[] = [];
            for (const b of batch) out.push(await b.op(tx));
            return out;
          });
          this.stats.transactions++;
          this.stats.writes += batch.length;
          for (const [i, b] of batch.entries()) b.resolve(results[i]);
        } catch {
          // Which write failed is not known (or it was the fence): each alone, in order, says.
          for (const b of batch) await this.single(b);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async single(b: (typeof this.queue)[number]): Promise<void> {
    try {
      const v = await this.inner.transaction(async (tx) => {
        await this.prepare(tx);
        return b.op(tx);
      });
      this.stats.transactions++;
      this.stats.writes++;
      b.resolve(v);
    } catch (err) {
      b.reject(err);
    }
  }
}
