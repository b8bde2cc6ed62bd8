import type { ServerResponse } from 'node:http';
import { type ErrorCode, errorRegistry } from '../core/errors.js';

/** The proxy's own error responses, JSON bodies prepared once. */
export type ProxyErrorCode =
  | 'NINES_E_NO_ROUTE'
  | 'NINES_E_NO_HEALTHY_UPSTREAM'
  | 'NINES_E_UPSTREAM_CONNECT'
  | 'NINES_E_UPSTREAM_RESET'
  | 'NINES_E_UPSTREAM_TIMEOUT'
  | 'NINES_E_BAD_REQUEST';

interface Prepared {
  status: number;
  body: Buffer;
  length: string;
}

const prepared = new Map<ErrorCode, Prepared>();
for (const code of [
  'NINES_E_NO_ROUTE',
  'NINES_E_NO_HEALTHY_UPSTREAM',
  'NINES_E_UPSTREAM_CONNECT',
  'NINES_E_UPSTREAM_RESET',
  'NINES_E_UPSTREAM_TIMEOUT',
  'NINES_E_BAD_REQUEST',
] as const) {
  const e = errorRegistry[code];
  const body = Buffer.from(JSON.stringify({ error: { code, message: e.title } }));
  prepared.set(code, { status: e.status, body, length: String(body.length) });
}

export function sendError(res: ServerResponse, code: ProxyErrorCode, requestId: string): void {
  const p = prepared.get(code)!;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(p.status, [
    'content-type',
    'application/json; charset=utf-8',
    'content-length',
    p.length,
    'cache-control',
    'no-store',
    'x-request-id',
    requestId,
  ]);
  res.end(p.body);
}
