import { parseSse } from './model.js';

/** A refusal from the controller, with its stable error code (docs/errors.md). */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, status: number, message: string) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

const TOKEN_KEY = 'nines.token';

/** The token lives in sessionStorage: it survives reloads, not the closing of the tab. */
export const tokenStore = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (t: string) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export async function call<T>(token: string, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      cache: 'no-store',
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (err) {
    throw new ApiError('NINES_E_UNREACHABLE', 0, `the controller is unreachable (${(err as Error).message})`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(e?.code ?? `HTTP_${res.status}`, res.status, e?.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

export interface StreamHandlers {
  onMessage(event: string, data: unknown): void;
  onState(state: 'connecting' | 'live' | 'down', detail?: string): void;
  onAuthError(err: ApiError): void;
}

/**
 * Follow `GET /v1/stream` (Server-Sent Events) with fetch, so the token goes in the authorization
 * header. Reconnects with backoff; treats 45 s of silence (3 missed heartbeats) as a dead connection.
 * Returns a function that stops it.
 */
export function openStream(token: string, h: StreamHandlers): () => void {
  let stopped = false;
  let ctl: AbortController | undefined;
  let backoff = 1000;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;

  const connect = async () => {
    if (stopped) return;
    ctl = new AbortController();
    let stall: ReturnType<typeof setTimeout> | undefined;
    const feed = () => {
      clearTimeout(stall);
      stall = setTimeout(() => ctl?.abort(), 45_000);
    };
    h.onState('connecting');
    try {
      const res = await fetch('/v1/stream', {
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
        cache: 'no-store',
        signal: ctl.signal,
      });
      if (res.status === 401 || res.status === 403) {
        const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
        h.onAuthError(
          new ApiError(body.error?.code ?? 'HTTP_401', res.status, body.error?.message ?? 'not allowed'),
        );
        stopped = true;
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      h.onState('live');
      backoff = 1000;
      feed();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        feed();
        const parsed = parseSse(buf + value);
        buf = parsed.rest;
        for (const m of parsed.messages) {
          let data: unknown;
          try {
            data = JSON.parse(m.data);
          } catch {
            continue;
          }
          h.onMessage(m.event, data);
        }
      }
      h.onState('down', 'the controller closed the stream');
    } catch (err) {
      if (!stopped) h.onState('down', (err as Error).message);
    } finally {
      clearTimeout(stall);
    }
    if (!stopped) {
      retryTimer = setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10_000);
    }
  };
  void connect();
  return () => {
    stopped = true;
    clearTimeout(retryTimer);
    ctl?.abort();
  };
}
