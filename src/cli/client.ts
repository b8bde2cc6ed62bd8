import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { Agent, type Dispatcher, request } from 'undici';
import { type ErrorBody, type ErrorCode, isErrorCode } from '../core/errors.js';
import { Failover } from '../core/failover.js';

/** An error answered by the controller, with its registry code and HTTP status. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;
  constructor(code: ErrorCode, status: number, message: string, details?: unknown) {
    super(message);
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

export interface Target {
  url: string;
  token: string;
  /** PEM CA bundle for an https controller signed by a private CA (`--ca-file`, NINES_CA_FILE). */
  ca?: string;
}

/** What `nines up` writes to `<dataDir>/up.json` so that the CLI in another shell finds it. */
export interface UpInfo {
  pid: number;
  apiUrl: string;
  proxyUrl: string;
  adminTokenFile: string;
}

/**
 * Where the controller is: --url/--token, then NINES_URL/NINES_TOKEN, then the `up.json` and
 * `admin-token` files of a local `nines up` in the data directory.
 */
export async function resolveTarget(opts: {
  url?: string;
  token?: string;
  dataDir?: string;
  caFile?: string;
}): Promise<Target> {
  const dataDir = resolve(opts.dataDir ?? process.env.NINES_DATA_DIR ?? '.nines');
  let url = opts.url ?? process.env.NINES_URL;
  let token = opts.token ?? process.env.NINES_TOKEN;
  if (!url || !token) {
    const read = (f: string) =>
      readFile(join(dataDir, f), 'utf8')
        .then((t) => JSON.parse(t) as Pick<UpInfo, 'apiUrl' | 'adminTokenFile'>)
        .catch(() => undefined);
    const info = (await read('up.json')) ?? (await read('controller.json'));
    url ??= info?.apiUrl;
    if (!token) {
      token = (
        await readFile(info?.adminTokenFile ?? join(dataDir, 'admin-token'), 'utf8').catch(() => '')
      )?.trim();
    }
  }
  if (!url) {
    throw new ApiError(
      'NINES_E_UNREACHABLE',
      0,
      `no controller: pass --url or set NINES_URL, or run this where \`nines up\` keeps its data (${dataDir})`,
    );
  }
  const caFile = opts.caFile ?? process.env.NINES_CA_FILE;
  const ca = caFile ? await readFile(caFile, 'utf8') : undefined;
  return { url: url.replace(/\/$/, ''), token: token ?? '', ...(ca ? { ca } : {}) };
}

export class Client {
  readonly target: Target;
  private readonly dispatcher: Dispatcher | undefined;
  /** `target.url` may list several controllers (comma-separated): requests fail over between them. */
  private readonly endpoints: Failover;
  constructor(target: Target) {
    this.target = target;
    this.dispatcher = target.ca ? new Agent({ connect: { ca: target.ca } }) : undefined;
    this.endpoints = new Failover(target.url);
  }

  async get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  async post<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  async delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  async put<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('PUT', path, body);
  }

  async upload<T>(path: string, file: string, sha256: string): Promise<T> {
    const size = (await stat(file)).size;
    return this.call<T>('POST', path, undefined, {
      body: () => createReadStream(file),
      headers: {
        'content-type': 'application/gzip',
        'content-length': String(size),
        'x-nines-sha256': sha256,
      },
    });
  }

  private async call<T>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    json?: unknown,
    raw?: { body: () => NodeJS.ReadableStream; headers: Record<string, string> },
  ): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.target.token}`, ...raw?.headers };
    if (json !== undefined) headers['content-type'] = 'application/json';
    return this.endpoints.run(async (base, signal) => {
      // Built per attempt: a stream is used up by a request that went to a follower.
      const body = json !== undefined ? JSON.stringify(json) : raw?.body();
      let res: Awaited<ReturnType<typeof request>>;
      try {
        res = await request(base + path, {
          method,
          headers,
          body: body as string | undefined,
          ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
          signal,
        });
      } catch (err) {
        throw new ApiError(
          'NINES_E_UNREACHABLE',
          0,
          `cannot reach the controller at ${base}: ${(err as Error).message}`,
        );
      }
      const text = await res.body.text();
      if (res.statusCode >= 400) throw apiError(res.statusCode, text);
      return (text ? JSON.parse(text) : undefined) as T;
    });
  }

  /** A binary answer as a stream (release artifacts, for `nines backup --artifacts`). */
  async download(path: string): Promise<Readable> {
    return this.endpoints.run(async (base) => {
      const r = await request(base + path, {
        headers: { authorization: `Bearer ${this.target.token}` },
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      }).catch((err: Error) => {
        throw new ApiError(
          'NINES_E_UNREACHABLE',
          0,
          `cannot reach the controller at ${base}: ${err.message}`,
        );
      });
      if (r.statusCode >= 400) throw apiError(r.statusCode, await r.body.text());
      return r.body;
    });
  }

  /** A streamed text answer (`nines logs`): `onText` gets it as it arrives, until the server ends it. */
  async stream(path: string, onText: (text: string) => void, signal?: AbortSignal): Promise<void> {
    const res = await this.endpoints.run(async (base, sig) => {
      let r: Awaited<ReturnType<typeof request>>;
      try {
        r = await request(base + path, {
          headers: { authorization: `Bearer ${this.target.token}` },
          ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
          headersTimeout: 60_000,
          // Following a quiet log is idle for as long as the app says nothing.
          bodyTimeout: 0,
          signal: sig,
        });
      } catch (err) {
        throw new ApiError(
          'NINES_E_UNREACHABLE',
          0,
          `cannot reach the controller at ${base}: ${(err as Error).message}`,
        );
      }
      if (r.statusCode >= 400) throw apiError(r.statusCode, await r.body.text());
      return r;
    }, signal);
    res.body.setEncoding('utf8');
    try {
      for await (const chunk of res.body) onText(chunk as string);
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
  }
}

function apiError(status: number, text: string): ApiError {
  let parsed: ErrorBody | undefined;
  try {
    parsed = JSON.parse(text) as ErrorBody;
  } catch {}
  const code = parsed?.error?.code;
  return new ApiError(
    isErrorCode(code) ? code : 'NINES_E_INTERNAL',
    status,
    parsed?.error?.message ?? `HTTP ${status}: ${text.slice(0, 200)}`,
    parsed?.error?.details,
  );
}
