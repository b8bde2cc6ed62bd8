import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { NinesError } from '../core/errors.js';

/**
 * The synthetic load client of nines: tests, benchmarks and `nines drill` use it to put a steady,
 * known load on a service and count exactly how many requests failed.
 *
 * It is an open-loop generator: request i is sent at `start + i / rate` whatever happened to the
 * earlier ones (a slow or stalled server does not slow the sender down, so a stall shows up as
 * latency and timeouts instead of hiding behind fewer requests). Requests go through one undici
 * `Pool` of `connections` keep-alive connections; when all are busy, requests wait in the pool's
 * queue and that wait counts in their latency and their timeout.
 *
 * A request is ok only if the status is 2xx and its body was read to the end; anything else (another
 * status, a reset, a refused connection, a timeout, any error) is failed. undici's Pool does not
 * retry, so every failure the service causes is counted.
 */
export interface LoadOptions {
  /** Target URL, e.g. `http://127.0.0.1:8080/`. Path and query are used for every request. */
  url: string;
  /** Size of the keep-alive connection pool (≥ 1). */
  connections: number;
  /** Total target rate in requests per second, on a fixed schedule (open loop). */
  rate: number;
  /** Stop sending after this long (ms from start). At least one of durationMs/maxRequests is required. */
  durationMs?: number;
  /** Stop sending after this many requests. */
  maxRequests?: number;
  /** Per-request deadline in ms, from the moment it is issued (pool queueing included). Default 10000. */
  timeoutMs?: number;
  /** HTTP method, default GET. */
  method?: string;
  headers?: Record<string, string>;
  /**
   * Names the class of a response whose body was read fully (any status), e.g. body `v2` → `'v2'`.
   * Counted in `classes` and traced in `timeline`. A classifier that throws yields `'classify-error'`.
   */
  classify?: (status: number, body: string) => string;
}

export interface LoadFailure {
  /** ms since the load started, when the request failed. */
  at: number;
  status?: number;
  error?: string;
  /** Start of the response body (up to 200 characters) for non-2xx answers. */
  body?: string;
}

export interface LoadResult {
  /** Requests issued. Every one of them ended ok or failed: sent === ok + failed. */
  sent: number;
  ok: number;
  failed: number;
  /** Count per HTTP status of every response received (2xx included). */
  byStatus: Record<string, number>;
  /** Count per error code for requests that got no complete response (e.g. ECONNRESET, TIMEOUT). */
  errors: Record<string, number>;
  /** Count per class from `classify` (empty without a classifier). */
  classes: Record<string, number>;
  /** Latency of ok requests, issue → body fully read, ms (≈3 % bucket precision; max is exact). */
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** Wall time from start until the last in-flight request ended, ms. */
  durationMs: number;
  /** The first 20 failures, for diagnosis. */
  firstFailures: LoadFailure[];
  /** Each class with the first and last time it was seen (ms since start), ordered by first sighting. */
  timeline: Array<{ cls: string; first: number; last: number }>;
}

export interface LoadHandle {
  /** Stops sending, waits for in-flight requests to end, and returns the result (same as `done`). */
  stop(): Promise<LoadResult>;
  /** Resolves when the load ended by itself (duration or count reached) or after `stop()`. */
  done: Promise<LoadResult>;
  progress(): { sent: number; ok: number; failed: number };
}

const FIRST_FAILURES = 20;
const BODY_SNIPPET = 200;

/**
 * Log-linear latency histogram in microseconds: exact below 32 µs, then 32 buckets per power of two
 * (≤ 3.2 % relative error), up to ~2^40 µs. About 1,100 counters whatever the number of samples.
 */
export class LatencyHistogram {
  private static readonly SUB = 32;
  private static readonly SUB_BITS = 5;
  private static readonly MAX_EXP = 40;
  private readonly counts = new Float64Array(
    LatencyHistogram.SUB + (LatencyHistogram.MAX_EXP - LatencyHistogram.SUB_BITS + 1) * LatencyHistogram.SUB,
  );
  private total = 0;
  private maxUs = 0;

  get count(): number {
    return this.total;
  }

  recordMs(ms: number): void {
    const us = Math.max(0, Math.round(ms * 1000));
    if (us > this.maxUs) this.maxUs = us;
    this.counts[this.index(us)]! += 1;
    this.total += 1;
  }

  private index(us: number): number {
    const { SUB, SUB_BITS, MAX_EXP } = LatencyHistogram;
    if (us < SUB) return us;
    const exp = Math.min(Math.floor(Math.log2(us)), MAX_EXP);
    const shift = exp - SUB_BITS;
    const sub = Math.min(Math.floor(us / 2 ** shift) - SUB, SUB - 1);
    return SUB + shift * SUB + sub;
  }

  /** Middle of bucket `i`, in µs. */
  private valueAt(i: number): number {
    const { SUB } = LatencyHistogram;
    if (i < SUB) return i;
    const shift = Math.floor((i - SUB) / SUB);
    const sub = (i - SUB) % SUB;
    const width = 2 ** shift;
    return (SUB + sub) * width + (width - 1) / 2;
  }

  /** Value at quantile q (0..1) in ms; 0 when empty. */
  quantileMs(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return round3(Math.min(this.valueAt(i), this.maxUs) / 1000);
    }
    return round3(this.maxUs / 1000);
  }

  maxMs(): number {
    return round3(this.maxUs / 1000);
  }
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function bump(rec: Record<string, number>, key: string): void {
  rec[key] = (rec[key] ?? 0) + 1;
}

function errorKey(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof e.code === 'string' && e.code !== '') return e.code;
    if (e.cause) {
      const inner = errorKey(e.cause);
      if (inner !== 'Error') return inner;
    }
    if (typeof e.name === 'string' && e.name !== '') return e.name;
  }
  return 'Error';
}

function validate(o: LoadOptions): URL {
  const bad = (message: string): never => {
    throw new NinesError('NINES_E_VALIDATION', `load: ${message}`, {
      options: { ...o, classify: undefined },
    });
  };
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    return bad(`url ${JSON.stringify(o.url)} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') bad(`url must be http(s), got ${url.protocol}`);
  if (!Number.isInteger(o.connections) || o.connections < 1) bad('connections must be an integer ≥ 1');
  if (!Number.isFinite(o.rate) || o.rate <= 0) bad('rate must be a number > 0 (requests per second)');
  if (o.durationMs === undefined && o.maxRequests === undefined) {
    bad('give durationMs or maxRequests (or both): a load is always bounded');
  }
  if (o.durationMs !== undefined && (!Number.isFinite(o.durationMs) || o.durationMs < 0)) {
    bad('durationMs must be a number ≥ 0');
  }
  if (o.maxRequests !== undefined && (!Number.isInteger(o.maxRequests) || o.maxRequests < 0)) {
    bad('maxRequests must be an integer ≥ 0');
  }
  if (o.timeoutMs !== undefined && (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0)) {
    bad('timeoutMs must be a number > 0');
  }
  return url;
}

class TimeoutError extends Error {
  readonly code = 'TIMEOUT';
  constructor(ms: number) {
    super(`no complete response within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/** Starts a bounded, open-loop load against `o.url`. Throws NINES_E_VALIDATION on bad options. */
export function startLoad(o: LoadOptions): LoadHandle {
  const url = validate(o);
  const timeoutMs = o.timeoutMs ?? 10_000;
  const method = (o.method ?? 'GET').toUpperCase();
  const path = `${url.pathname}${url.search}`;
  const maxRequests = o.maxRequests ?? Number.POSITIVE_INFINITY;
  const durationMs = o.durationMs ?? Number.POSITIVE_INFINITY;
  const intervalMs = 1000 / o.rate;
  const needBody = o.classify !== undefined;

  const pool = new Pool(url.origin, { connections: o.connections, pipelining: 1 });
  // A pool with no listener for its events is fine; connection errors reach the requests themselves.

  const hist = new LatencyHistogram();
  const byStatus: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const classes: Record<string, number> = {};
  const seen = new Map<string, { first: number; last: number }>();
  const firstFailures: LoadFailure[] = [];
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let inFlight = 0;
  let sending = true;
  let timer: NodeJS.Timeout | undefined;
  const t0 = performance.now();
  const since = (): number => round3(performance.now() - t0);

  let resolveDone!: (r: LoadResult) => void;
  const done = new Promise<LoadResult>((resolve) => {
    resolveDone = resolve;
  });
  let finished = false;

  const fail = (f: LoadFailure): void => {
    failed += 1;
    if (firstFailures.length < FIRST_FAILURES) firstFailures.push(f);
  };

  const classifyResponse = (status: number, body: string): void => {
    if (!o.classify) return;
    let cls: string;
    try {
      cls = String(o.classify(status, body));
    } catch {
      cls = 'classify-error';
    }
    bump(classes, cls);
    const at = since();
    const s = seen.get(cls);
    if (s) s.last = at;
    else seen.set(cls, { first: at, last: at });
  };

  const one = async (): Promise<void> => {
    const issued = performance.now();
    const ac = new AbortController();
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      ac.abort(new TimeoutError(timeoutMs));
    }, timeoutMs);
    let status: number | undefined;
    try {
      const res = await pool.request({
        method,
        path,
        headers: o.headers,
        signal: ac.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      status = res.statusCode;
      const is2xx = status >= 200 && status < 300;
      let body = '';
      if (needBody || !is2xx) {
        body = await res.body.text();
      } else {
        for await (const _chunk of res.body) {
          // drain to the end: a body cut short must fail the request
        }
      }
      bump(byStatus, String(status));
      classifyResponse(status, body);
      if (is2xx) {
        ok += 1;
        hist.recordMs(performance.now() - issued);
      } else {
        fail({ at: since(), status, body: body.slice(0, BODY_SNIPPET) });
      }
    } catch (err) {
      const code = timedOut ? 'TIMEOUT' : errorKey(err);
      bump(errors, code);
      const f: LoadFailure = { at: since(), error: code };
      if (status !== undefined) f.status = status;
      if (err instanceof Error && err.message && err.message !== code) f.error = `${code}: ${err.message}`;
      fail(f);
    } finally {
      clearTimeout(deadline);
      inFlight -= 1;
      if (!sending && inFlight === 0) void finish();
    }
  };

  const tick = (): void => {
    timer = undefined;
    if (!sending) return;
    const elapsed = performance.now() - t0;
    if (elapsed >= durationMs || sent >= maxRequests) {
      stopSending();
      return;
    }
    // Every request whose scheduled time has come goes out now (catching up after a stalled loop).
    const due = Math.min(maxRequests, Math.floor(elapsed / intervalMs) + 1);
    while (sent < due) {
      sent += 1;
      inFlight += 1;
      void one();
    }
    if (sent >= maxRequests) {
      stopSending();
      return;
    }
    const nextAt = sent * intervalMs;
    const wait = Math.min(nextAt, durationMs) - (performance.now() - t0);
    timer = setTimeout(tick, Math.max(0, wait));
  };

  const stopSending = (): void => {
    if (!sending) return;
    sending = false;
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (inFlight === 0) void finish();
  };

  const finish = async (): Promise<void> => {
    if (finished) return;
    finished = true;
    const result: LoadResult = {
      sent,
      ok,
      failed,
      byStatus,
      errors,
      classes,
      latencyMs: {
        p50: hist.quantileMs(0.5),
        p90: hist.quantileMs(0.9),
        p99: hist.quantileMs(0.99),
        max: hist.maxMs(),
      },
      durationMs: since(),
      firstFailures,
      timeline: [...seen.entries()]
        .map(([cls, s]) => ({ cls, first: s.first, last: s.last }))
        .sort((a, b) => a.first - b.first),
    };
    try {
      await pool.destroy();
    } catch {
      // already closed
    }
    resolveDone(result);
  };

  timer = setTimeout(tick, 0);

  return {
    done,
    stop(): Promise<LoadResult> {
      stopSending();
      return done;
    },
    progress() {
      return { sent, ok, failed };
    },
  };
}
