import { request } from 'undici';
import { type AttemptOutcome, parseRetryAfter, retryableStatus } from './delivery.js';

export interface PostOptions {
  headers?: Record<string, string>;
  timeoutMs: number;
  /** Status codes counted as success (default: any 2xx). */
  okStatus?: (status: number) => boolean;
}

/** One JSON POST; never throws — network errors and timeouts become retryable outcomes. */
export async function postJson(url: string, body: string, o: PostOptions): Promise<AttemptOutcome> {
  try {
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'nines-alerting/1', ...(o.headers ?? {}) },
      body,
      signal: AbortSignal.timeout(o.timeoutMs),
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
    });
    const text = await res.body.text().catch(() => '');
    const ok = (o.okStatus ?? ((s: number) => s >= 200 && s < 300))(res.statusCode);
    if (ok) return { ok: true, status: res.statusCode, retryable: false };
    const ra = res.headers['retry-after'];
    const retryAfterMs =
      res.statusCode === 429 || res.statusCode === 503
        ? parseRetryAfter(Array.isArray(ra) ? ra[0] : ra, Date.now())
        : undefined;
    return {
      ok: false,
      status: res.statusCode,
      error: `HTTP ${res.statusCode}${text ? `: ${text.slice(0, 200)}` : ''}`,
      retryable: retryableStatus(res.statusCode),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  } catch (err) {
    const e = err as Error & { code?: string };
    const msg =
      e.name === 'TimeoutError' || e.name === 'AbortError' ? `timeout after ${o.timeoutMs} ms` : e.message;
    return { ok: false, error: e.code ? `${e.code}: ${msg}` : msg, retryable: true };
  }
}
