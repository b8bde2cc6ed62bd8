import { type ErrorCode, errorRegistry } from '../core/errors.js';
import type { ProxyRequest, ProxyResponse } from './h1.js';

/** The proxy's own error responses, JSON bodies prepared once. */
export type ProxyErrorCode =
  | 'NINES_E_NO_ROUTE'
  | 'NINES_E_NO_HEALTHY_UPSTREAM'
  | 'NINES_E_UPSTREAM_CONNECT'
  | 'NINES_E_UPSTREAM_RESET'
  | 'NINES_E_UPSTREAM_TIMEOUT'
  | 'NINES_E_BAD_REQUEST'
  | 'NINES_E_PAYLOAD_TOO_LARGE'
  | 'NINES_E_HEADERS_TOO_LARGE'
  | 'NINES_E_READ_ONLY'
  | 'NINES_E_MAINTENANCE'
  | 'NINES_E_PAUSED';

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
  'NINES_E_PAYLOAD_TOO_LARGE',
  'NINES_E_HEADERS_TOO_LARGE',
  'NINES_E_READ_ONLY',
  'NINES_E_MAINTENANCE',
  'NINES_E_PAUSED',
] as const) {
  const e = errorRegistry[code];
  const body = Buffer.from(JSON.stringify({ error: { code, message: e.title } }));
  prepared.set(code, { status: e.status, body, length: String(body.length) });
}

export function errorStatus(code: ProxyErrorCode): number {
  return prepared.get(code)!.status;
}

export function sendError(res: ProxyResponse, code: ProxyErrorCode, requestId: string): void {
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

/** A raw HTTP/1.1 error answer on a socket (header overflow, WebSocket upgrade refusals); closes it. */
export function rawError(code: ProxyErrorCode, requestId = ''): string {
  const p = prepared.get(code)!;
  const reason = REASONS[p.status] ?? 'Error';
  return (
    `HTTP/1.1 ${p.status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${p.length}\r\nCache-Control: no-store\r\nConnection: close\r\n` +
    `${requestId === '' ? '' : `X-Request-Id: ${requestId}\r\n`}\r\n${p.body.toString('latin1')}`
  );
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  413: 'Payload Too Large',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

function wantsHtml(req: ProxyRequest): boolean {
  const accept = req.headers.accept;
  if (accept === undefined) return false;
  const h = accept.indexOf('text/html');
  if (h === -1) return false;
  const j = accept.indexOf('application/json');
  return j === -1 || h < j;
}

function escHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A mode answer (read-only, maintenance, pause): 503 with Retry-After, JSON or HTML by `Accept`.
 * `html` replaces the default page; `message` goes in both.
 */
export function sendModeError(
  req: ProxyRequest,
  res: ProxyResponse,
  code: 'NINES_E_READ_ONLY' | 'NINES_E_MAINTENANCE' | 'NINES_E_PAUSED',
  requestId: string,
  retryAfter: string,
  message: string | null,
  html: string | null,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const p = prepared.get(code)!;
  const text = message ?? errorRegistry[code].title;
  let type: string;
  let body: Buffer;
  if (wantsHtml(req)) {
    type = 'text/html; charset=utf-8';
    body = Buffer.from(
      html ??
        `<!doctype html><html><head><meta charset="utf-8"><title>Service unavailable</title></head>` +
          `<body><h1>Service unavailable</h1><p>${escHtml(text)}</p><p><small>${code}</small></p></body></html>`,
    );
  } else if (message === null) {
    type = 'application/json; charset=utf-8';
    body = p.body;
  } else {
    type = 'application/json; charset=utf-8';
    body = Buffer.from(JSON.stringify({ error: { code, message: text } }));
  }
  res.writeHead(p.status, [
    'content-type',
    type,
    'content-length',
    String(body.length),
    'cache-control',
    'no-store',
    'retry-after',
    retryAfter,
    'x-request-id',
    requestId,
  ]);
  res.end(req.method === 'HEAD' ? undefined : body);
}
