import { type Dispatcher, request } from 'undici';

/**
 * One readiness probe: GET `url`, a 2xx within `timeoutMs` passes. The connection is not kept alive
 * (`reset`), so probes never hold a socket the app would have to close when it drains.
 */
export async function probeHttp(url: string, timeoutMs: number, dispatcher: Dispatcher): Promise<boolean> {
  try {
    const res = await request(url, {
      method: 'GET',
      dispatcher,
      reset: true,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
      headers: { 'user-agent': 'nines-agent-probe' },
    });
    await res.body.dump().catch(() => undefined);
    return res.statusCode >= 200 && res.statusCode < 300;
  } catch {
    return false;
  }
}
