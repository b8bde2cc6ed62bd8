import {
  type DatabaseConnection,
  type Driver,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
} from 'kysely';

/**
 * Kysely's SQLite driver guards its one connection with a mutex that wakes every waiter on each
 * release (each re-checks and all but one wait again): N queued queries cost O(N²) wake-ups. After a
 * desired-state change a thousand agents' polls and reports queue at once, and that mutex alone took
 * most of the controller's CPU for over a second (bench/fleet profile). This driver hands the
 * connection to the waiters one at a time, first come first served; Kysely's own mutex underneath is
 * then never contended.
 */
export class FifoSqliteDialect extends SqliteDialect {
  private readonly config: SqliteDialectConfig;

  constructor(config: SqliteDialectConfig) {
    super(config);
    this.config = config;
  }

  override createDriver(): Driver {
    return new FifoSqliteDriver(this.config);
  }
}

export class FifoSqliteDriver extends SqliteDriver {
  private readonly queue = new FifoLock();

  override async acquireConnection(): Promise<DatabaseConnection> {
    await this.queue.lock();
    return super.acquireConnection();
  }

  override async releaseConnection(): Promise<void> {
    await super.releaseConnection();
    this.queue.unlock();
  }
}

/** A mutex that wakes exactly the next waiter on release. */
export class FifoLock {
  private held = false;
  private readonly waiters: Array<() => void> = [];
  private head = 0;

  lock(): Promise<void> {
    if (!this.held) {
      this.held = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  unlock(): void {
    if (this.head < this.waiters.length) {
      const next = this.waiters[this.head];
      this.waiters[this.head++] = noop;
      // Compact now and then rather than shift() per release (O(n) each on a long queue).
      if (this.head > 1024 && this.head * 2 > this.waiters.length) {
        this.waiters.splice(0, this.head);
        this.head = 0;
      }
      next?.(); // still held: ownership passes to the next waiter
      return;
    }
    this.held = false;
  }

  /** Waiters queued (for tests). */
  get waiting(): number {
    return this.waiters.length - this.head;
  }
}

function noop(): void {}
