/**
 * Reads asked for in the same turn of the event loop share one load, started after all of them were
 * asked (so each caller still gets data read after its call, never older). After a desired-state
 * change a thousand agents' long polls wake together; one query for all of them instead of one each
 * keeps the store's single connection free for reports (bench/fleet).
 */
export class BatchRead<K, V> {
  private pending: Map<K, Array<{ resolve(v: V | undefined): void; reject(err: unknown): void }>> | null =
    null;

  constructor(private readonly load: (keys: K[]) => Promise<ReadonlyMap<K, V>>) {}

  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      if (!this.pending) {
        this.pending = new Map();
        setImmediate(() => void this.flush());
      }
      const waiters = this.pending.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = null;
    if (!batch) return;
    try {
      const got = await this.load([...batch.keys()]);
      for (const [k, waiters] of batch) for (const w of waiters) w.resolve(got.get(k));
    } catch (err) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(err);
    }
  }
}
