/**
 * Several controller URLs and failing over between them, shared by every client of the controller
 * (agent, proxy link, CLI). A request goes to the current URL; when that controller is unreachable,
 * stalled (timeout), a follower (503 NINES_E_NOT_LEADER — it names the leader, which is tried next) or a
 * stale leader (NINES_E_FENCED), the client moves on to the next URL and tries again, each URL at most
 * once per request. Moving on aborts requests still in flight to the old URL (a long poll held by a
 * stalled controller would otherwise wait for its timeout). With one URL it behaves as a plain client.
 */

/** `"http://a:7070, http://b:7070/"` or a list → normalized URLs (no trailing slash), at least one. */
export function parseControllerUrls(value: string | readonly string[]): string[] {
  const parts = (typeof value === 'string' ? [value] : value)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  const urls: string[] = [];
  for (const p of parts) {
    let u: URL;
    try {
      u = new URL(p);
    } catch {
      throw new Error(`not a controller URL: ${JSON.stringify(p)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new Error(`controller URLs are http:// or https://, not ${JSON.stringify(p)}`);
    }
    const norm = p.replace(/\/+$/, '');
    if (!urls.includes(norm)) urls.push(norm);
  }
  if (urls.length === 0) throw new Error('no controller URL given');
  return urls;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

/**
 * Whether an error means "try another controller", and the leader it names if any. Understands the
 * clients' error shapes: `{ status, code, details: { leader } }` (an API answer), `{ leader }`, Node
 * and undici network errors, and timeouts.
 */
export function failoverReason(err: unknown): { failover: boolean; leader: string | null } {
  const e = err as {
    status?: unknown;
    code?: unknown;
    name?: unknown;
    leader?: unknown;
    details?: { leader?: unknown } | null;
    cause?: unknown;
  } | null;
  if (e === null || typeof e !== 'object') return { failover: false, leader: null };
  const leader =
    typeof e.leader === 'string' ? e.leader : typeof e.details?.leader === 'string' ? e.details.leader : null;
  if (e.code === 'NINES_E_NOT_LEADER' || e.code === 'NINES_E_FENCED' || e.code === 'NINES_E_UNREACHABLE') {
    return { failover: true, leader };
  }
  if (e.status === 503 || e.status === 502) return { failover: true, leader };
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return { failover: true, leader: null };
  if (e.name === 'TimeoutError') return { failover: true, leader: null };
  if (e.cause !== undefined && e.cause !== err) return { failover: failoverReason(e.cause).failover, leader };
  return { failover: false, leader };
}

export interface FailoverOptions {
  /** Called when the client moves to another controller. */
  onSwitch?: (from: string, to: string, why: string) => void;
}

export class Failover {
  private readonly list: string[];
  private index = 0;
  /** Aborted when the client moves on: requests in flight to the old URL stop waiting. */
  private epoch = new AbortController();
  private readonly onSwitch: FailoverOptions['onSwitch'];

  constructor(urls: string | readonly string[], opts: FailoverOptions = {}) {
    this.list = parseControllerUrls(urls);
    this.onSwitch = opts.onSwitch;
  }

  get current(): string {
    return this.list[this.index] as string;
  }

  get urls(): readonly string[] {
    return this.list;
  }

  /**
   * Run `fn` against the current URL; on an error `failoverReason` accepts, move on (to the leader it
   * names, else the next URL) and try again while URLs are left and `signal` is not aborted. `fn` must
   * be repeatable (build request bodies inside it) and must pass the signal it is given to its request.
   */
  async run<T>(fn: (base: string, signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const attempts = this.list.length + 1;
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      const base = this.current;
      const epoch = this.epoch.signal;
      try {
        return await fn(base, signal ? AbortSignal.any([signal, epoch]) : epoch);
      } catch (err) {
        last = err;
        const movedOn = epoch.aborted && !signal?.aborted;
        const timedOut =
          signal?.aborted && (signal.reason as { name?: string } | undefined)?.name === 'TimeoutError';
        const why = failoverReason(err);
        if (!movedOn && !why.failover && !timedOut) throw err;
        if (!movedOn) this.moveOn(base, why.leader, errText(err));
        // Only a different controller is worth asking at once; the caller's own retry covers the rest.
        if (signal?.aborted || this.current === base) throw err;
      }
    }
    throw last;
  }

  /** Leave `from` (if it is still current) for `hint` (the leader it named) or the next URL. */
  moveOn(from: string, hint: string | null = null, why = 'failed'): void {
    if (from !== this.current) return;
    let next = -1;
    if (hint) {
      const h = hint.replace(/\/+$/, '');
      next = this.list.indexOf(h);
      if (next < 0 && /^https?:\/\//.test(h)) {
        this.list.push(h);
        next = this.list.length - 1;
      }
    }
    if (next < 0 || next === this.index) next = (this.index + 1) % this.list.length;
    const to = this.list[next] as string;
    if (to === from) return;
    this.index = next;
    const old = this.epoch;
    this.epoch = new AbortController();
    old.abort(new Error(`moved from ${from} to ${to}`));
    this.onSwitch?.(from, to, why);
  }
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
