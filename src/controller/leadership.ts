import type { Logger } from 'pino';
import { NinesError } from '../core/errors.js';
import { GroupCommit } from './store/group-commit.js';
import type { LeaseRecord, Store } from './store/types.js';

/**
 * Leadership among several controllers sharing one database.
 *
 * Every controller serves the API; one of them — the holder of the `controller` lease in the store —
 * runs the parts that must run once: the deploy engine, the reconciler, schedulers. The lease expires
 * `leaseTimeoutMs` after its last renewal (the leader renews every third of that); a follower that finds
 * it expired takes it with a fencing token one larger than the last. Subsystems register with
 * `onLeadership(start, stop)`: `start(term)` runs when this controller becomes leader, `stop()` when it
 * stops being leader (lost lease, stalled past the expiry, controller shutdown).
 *
 * Fencing: a leader's writes go through `fence(store)`, which checks inside each write transaction that
 * this controller still holds the lease with its token (NINES_E_FENCED otherwise), and the token rides
 * on every desired-state answer so agents refuse commands from a stale leader.
 */

export interface LeaderTerm {
  /** The fencing token of this term: larger than every earlier leader's. */
  token: number;
  /** Aborted when the term ends. */
  signal: AbortSignal;
}

export interface LeadershipOptions {
  store: Store;
  /** Stable id of this controller (kept in its data directory). */
  id: string;
  /** This controller's API URL as others reach it (followers point clients at the leader's). */
  url: () => string;
  logger: Logger;
  /** A leader that has not renewed for this long is replaced. Default 10 000 ms. */
  leaseTimeoutMs?: number;
  /** Lease name (one per cluster). Default `controller`. */
  name?: string;
}

export interface LeadershipStatus {
  id: string;
  role: 'leader' | 'follower';
  /** The current term's token when leader, else the last token seen. */
  token: number;
  leader: { id: string; url: string; token: number; expiresAt: number } | null;
  leaseTimeoutMs: number;
  /** When this controller last became leader (epoch ms), or null. */
  leaderSince: number | null;
  /** Writes this controller attempted as a stale leader and the store refused. */
  fencedWrites: number;
}

interface Registration {
  start: (term: LeaderTerm) => void | Promise<void>;
  stop: () => void | Promise<void>;
}

/** Reads, and accessors of sub-stores (their own writes are not fenced yet). */
// checks(), sloCounts() and nonces() hand out sub-stores of their own (not fenced: they keep what
// any controller observes, not the leader's decisions).
const READ_ONLY = /^(get|list|find|holdsLease$|exportSnapshot$|migrate$|close$|checks$|sloCounts$|nonces$)/;

export class Leadership {
  private ownId: string;
  readonly leaseTimeoutMs: number;
  private readonly store: Store;
  private readonly url: () => string;
  private readonly log: Logger;
  private readonly name: string;
  private readonly registrations: Registration[] = [];
  private term: (LeaderTerm & { abort: AbortController; expiresAt: number; since: number }) | null = null;
  private known: LeaseRecord | null = null;
  private timer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private running = false;
  private ticking: Promise<void> = Promise.resolve();
  /** Transitions (step up / step down) run one at a time, in order. */
  private transitions: Promise<void> = Promise.resolve();
  private fenced = 0;

  constructor(opts: LeadershipOptions) {
    this.store = opts.store;
    this.ownId = opts.id;
    this.url = opts.url;
    this.log = opts.logger.child({ part: 'leadership' });
    this.leaseTimeoutMs = opts.leaseTimeoutMs ?? 10_000;
    this.name = opts.name ?? 'controller';
    if (this.leaseTimeoutMs < 300)
      throw new NinesError('NINES_E_VALIDATION', 'leaseTimeout must be ≥ 300 ms');
  }

  /**
   * Register a subsystem that runs only on the leader. `start` is called (awaited, in registration
   * order) each time this controller becomes leader — at once if it already is — and `stop` (reverse
   * order) when it stops being leader. Returns a function that unregisters (calling `stop` if running).
   */
  onLeadership(start: Registration['start'], stop: Registration['stop']): () => Promise<void> {
    const reg: Registration = { start, stop };
    this.registrations.push(reg);
    const term = this.term;
    if (term) this.enqueue(async () => void (await this.safe('start', () => reg.start(term))));
    return async () => {
      const i = this.registrations.indexOf(reg);
      if (i < 0) return;
      this.registrations.splice(i, 1);
      if (this.term) await this.safe('stop', () => reg.stop());
    };
  }

  get id(): string {
    return this.ownId;
  }

  /** Set the id (kept in the data directory) before start(). */
  setId(id: string): void {
    if (this.running) throw new Error('leadership: setId() after start()');
    this.ownId = id;
  }

  get isLeader(): boolean {
    return this.term !== null;
  }

  /** The current term's token; 0 when not leader. */
  get token(): number {
    return this.term?.token ?? 0;
  }

  /** The leader's URL as last seen in the store (this controller's own when it leads). */
  get leaderUrl(): string | null {
    if (this.term) return this.url();
    const k = this.known;
    return k && k.holder !== '' && k.expiresAt > Date.now() ? k.url : null;
  }

  status(): LeadershipStatus {
    const k = this.known;
    return {
      id: this.id,
      role: this.term ? 'leader' : 'follower',
      token: this.term?.token ?? k?.token ?? 0,
      leader:
        k && k.holder !== '' && k.expiresAt > Date.now()
          ? { id: k.holder, url: k.url, token: k.token, expiresAt: k.expiresAt }
          : null,
      leaseTimeoutMs: this.leaseTimeoutMs,
      leaderSince: this.term?.since ?? null,
      fencedWrites: this.fenced,
    };
  }

  /** Start competing for the lease; resolves after the first attempt (and its step-up, if won). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.tick();
    await this.transitions;
    this.schedule();
    const every = Math.max(50, Math.min(500, this.leaseTimeoutMs / 4));
    // A leader whose renewals hang (database unreachable, event loop stalled) must stop acting by the
    // lease's expiry on its own clock — the others take over from then on.
    this.watchdog = setInterval(() => {
      if (this.term && Date.now() >= this.term.expiresAt)
        this.stepDown('lease expired before it was renewed');
    }, every);
    this.watchdog.unref();
  }

  /** Step down (stop callbacks), let the lease go so a follower takes over at once, stop competing. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    await this.ticking;
    const term = this.term;
    this.stepDown('controller stopping');
    await this.transitions;
    if (term) {
      await this.store.releaseLease(this.name, this.id, term.token).catch((err) => {
        this.log.warn({ err }, 'could not release the lease; a follower takes over when it expires');
      });
    }
  }

  /**
   * A store whose writes are fenced: each runs in a transaction that first checks this controller
   * still holds the lease with its token; a stale leader's write fails with NINES_E_FENCED and changes
   * nothing. Reads pass through.
   */
  fence(inner: Store): Store {
    const check = async (tx: Store) => {
      const term = this.term;
      if (term && (await tx.holdsLease(this.name, this.id, term.token, Date.now()))) return;
      this.fenced++;
      this.log.warn(
        { token: term?.token ?? null },
        'write refused: this controller is not the leader any more (fenced)',
      );
      throw new NinesError(
        'NINES_E_FENCED',
        `controller ${this.id} is not the leader any more (token ${term?.token ?? 'none'}); write refused`,
      );
    };
    const commits = new GroupCommit(inner, check);
    return new Proxy(inner, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver);
        if (typeof prop !== 'string' || typeof value !== 'function' || READ_ONLY.test(prop)) {
          return typeof value === 'function' ? value.bind(target) : value;
        }
        if (prop === 'transaction') {
          return <T>(fn: (tx: Store) => Promise<T>) =>
            target.transaction(async (tx) => {
              await check(tx);
              return fn(tx);
            });
        }
        // Concurrent writes share one fenced transaction (group commit: one fsync for many).
        return (...args: unknown[]) =>
          commits.run(async (tx) => (tx[prop as keyof Store] as (...a: unknown[]) => unknown)(...args));
      },
    });
  }

  // ---- the lease loop ---------------------------------------------------------------------------

  private schedule(): void {
    if (!this.running) return;
    const ms = this.term ? this.leaseTimeoutMs / 3 : Math.max(50, Math.min(1000, this.leaseTimeoutMs / 4));
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => this.schedule());
    }, ms);
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    const term = this.term;
    try {
      if (term) {
        const ok = await this.store.renewLease({
          name: this.name,
          holder: this.id,
          token: term.token,
          ttlMs: this.leaseTimeoutMs,
          now,
        });
        if (ok && this.term === term) {
          term.expiresAt = now + this.leaseTimeoutMs;
          this.known = { ...(this.known as LeaseRecord), renewedAt: now, expiresAt: term.expiresAt };
        } else if (!ok) {
          this.stepDown('the lease was taken over');
          this.known = (await this.store.getLease(this.name)) ?? null;
        }
      } else {
        const lease = await this.store.tryAcquireLease({
          name: this.name,
          holder: this.id,
          url: this.url(),
          ttlMs: this.leaseTimeoutMs,
          now,
        });
        this.known = lease;
        if (lease.holder === this.id && lease.expiresAt > Date.now() && this.running) this.stepUp(lease);
      }
    } catch (err) {
      this.log.warn({ err }, 'lease check failed');
    }
  }

  private stepUp(lease: LeaseRecord): void {
    const abort = new AbortController();
    const term = {
      token: lease.token,
      signal: abort.signal,
      abort,
      expiresAt: lease.expiresAt,
      since: Date.now(),
    };
    this.term = term;
    this.log.info({ token: lease.token }, 'this controller is the leader');
    this.enqueue(async () => {
      for (const r of [...this.registrations]) {
        if (this.term !== term) return;
        await this.safe('start', () => r.start(term));
      }
    });
  }

  private stepDown(why: string): void {
    const term = this.term;
    if (!term) return;
    this.term = null;
    term.abort.abort(new Error(why));
    this.log.warn({ token: term.token }, `no longer the leader: ${why}`);
    this.enqueue(async () => {
      for (const r of [...this.registrations].reverse()) await this.safe('stop', () => r.stop());
    });
  }

  private enqueue(fn: () => Promise<void>): void {
    this.transitions = this.transitions.then(fn, fn);
  }

  private async safe(what: string, fn: () => void | Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.log.error({ err }, `leadership ${what} callback failed`);
    }
  }
}

/** GET routes that work on a follower: the ones served from the store alone (not the live fleet view). */
const FOLLOWER_READS =
  /^\/(healthz|v1\/(leader|whoami|services|deploys|events|hosts|join-tokens)|index\.html|assets\/|$)/;
const LEADER_READS = /^\/v1\/(services\/[^/]+\/(logs|deploy-plan)|deploys\/[^/]+\/events)$/;

/**
 * Whether a request needs the leader: every write, the agent and proxy protocol (observed state lives
 * in the leader's memory, desired state comes from it), and the live views (status, instances, logs,
 * the dashboard stream). Other reads are answered by any controller from the shared store.
 */
export function needsLeader(method: string, url: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return true;
  const path = url.split('?')[0] ?? '';
  // Deploy events long-poll on the leader's signals; a plain read is fine anywhere.
  if (LEADER_READS.test(path)) return !path.endsWith('/events') || /[?&]wait=(?!0(&|$))/.test(url);
  return !FOLLOWER_READS.test(path);
}
