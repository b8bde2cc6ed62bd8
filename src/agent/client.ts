import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent as HttpAgent, request } from 'undici';
import { z } from 'zod';
import type { AgentRegister, AgentReport, HostDesiredState } from '../core/protocol.js';

/** An HTTP answer from the controller that was not a success. */
export class ControllerHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'ControllerHttpError';
  }
}

const healthSchema = z.object({
  path: z.string().startsWith('/'),
  intervalMs: z.number().positive(),
  timeoutMs: z.number().positive(),
  rise: z.number().int().positive(),
  fall: z.number().int().positive(),
});

export const desiredInstanceSchema = z.object({
  id: z.string().min(1),
  service: z.string().min(1),
  release: z.object({
    version: z.string().min(1),
    sha256: z.string().min(1),
    size: z.number().nonnegative(),
    url: z.string().startsWith('/'),
  }),
  command: z.string().min(1),
  env: z.record(z.string(), z.string()),
  health: healthSchema,
  drainTimeoutMs: z.number().nonnegative(),
  desired: z.enum(['running', 'stopped']),
});

/** Validates what the controller (or the on-disk cache) says the host should run. */
export const hostDesiredStateSchema = z.object({
  hostId: z.string().min(1),
  generation: z.number().int().nonnegative(),
  instances: z.array(desiredInstanceSchema),
});

/** The agent's side of the protocol (src/core/protocol.ts), over undici with the node token. */
export class ControllerClient {
  private readonly base: string;
  private readonly http: HttpAgent;

  constructor(
    controllerUrl: string,
    private readonly token: string,
  ) {
    this.base = controllerUrl.replace(/\/+$/, '');
    // Long polls answer after up to `wait` (25 s) seconds: the header timeout must exceed that.
    this.http = new HttpAgent({
      connect: { timeout: 5_000 },
      headersTimeout: 45_000,
      bodyTimeout: 60_000,
      keepAliveTimeout: 20_000,
    });
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, 'user-agent': 'nines-agent', ...extra };
  }

  private async json(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal,
  ): Promise<unknown> {
    const res = await request(this.base + path, {
      method,
      dispatcher: this.http,
      signal,
      headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.body.text();
    if (res.statusCode < 200 || res.statusCode >= 300) throw httpError(method, path, res.statusCode, text);
    if (res.statusCode === 204 || text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ControllerHttpError(res.statusCode, undefined, `${method} ${path}: answer is not JSON`);
    }
  }

  async register(body: AgentRegister, signal: AbortSignal): Promise<string> {
    const res = z
      .object({ hostId: z.string().min(1) })
      .safeParse(await this.json('POST', '/v1/agent/register', body, signal));
    if (!res.success) throw new ControllerHttpError(200, undefined, 'register: answer has no hostId');
    return res.data.hostId;
  }

  async desired(
    hostId: string,
    after: number,
    waitS: number,
    signal: AbortSignal,
  ): Promise<HostDesiredState> {
    const q = new URLSearchParams({ hostId, after: String(after), wait: String(waitS) });
    const res = hostDesiredStateSchema.safeParse(
      await this.json('GET', `/v1/agent/desired?${q}`, undefined, signal),
    );
    if (!res.success) {
      throw new ControllerHttpError(
        200,
        undefined,
        `desired: invalid answer: ${res.error.message.slice(0, 500)}`,
      );
    }
    return res.data;
  }

  async report(body: AgentReport, signal: AbortSignal): Promise<void> {
    await this.json('POST', '/v1/agent/report', body, signal);
  }

  /** Streams `GET {controllerUrl}{path}` into `file`; refuses more than `maxBytes`. */
  async download(path: string, file: string, maxBytes: number, signal: AbortSignal): Promise<number> {
    const res = await request(this.base + path, {
      method: 'GET',
      dispatcher: this.http,
      signal,
      headers: this.headers(),
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => '');
      throw httpError('GET', path, res.statusCode, text);
    }
    let bytes = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        if (bytes > maxBytes) cb(new Error(`artifact larger than the expected ${maxBytes} bytes`));
        else cb(null, chunk);
      },
    });
    await pipeline(res.body, limit, createWriteStream(file, { mode: 0o600 }));
    return bytes;
  }

  close(): Promise<void> {
    return this.http.destroy();
  }
}

function httpError(method: string, path: string, status: number, text: string): ControllerHttpError {
  let code: string | undefined;
  let message = text.slice(0, 300);
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // not an error body
  }
  const pathOnly = path.split('?')[0];
  return new ControllerHttpError(
    status,
    code,
    `${method} ${pathOnly}: HTTP ${status}${code ? ` ${code}` : ''}: ${message}`,
  );
}
