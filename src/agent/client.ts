import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent as HttpAgent, request } from 'undici';
import { z } from 'zod';
import type { AgentCheckResults, AgentChecks } from '../core/checks.js';
import { withDeadline } from '../core/deadline.js';
import { type AgentFault, type AgentFaultResult, agentFaultsAnswerSchema } from '../core/drill-protocol.js';
import { Failover, type FailoverOptions } from '../core/failover.js';
import { type LogChunk, type LogRequest, logRequestsAnswerSchema } from '../core/logs-protocol.js';
import type { AgentRegister, AgentReport, HostDesiredState } from '../core/protocol.js';
import { signRequest } from '../core/signing.js';
import { type HostTask, type HostTaskResult, hostTasksAnswerSchema } from '../core/tasks-protocol.js';

/** An HTTP answer from the controller that was not a success. */
export class ControllerHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
    /** The leader a follower named (NINES_E_NOT_LEADER), for failover. */
    readonly leader: string | null = null,
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
    downloadUrl: z.string().url().optional(),
  }),
  command: z.string().min(1),
  env: z.record(z.string(), z.string()),
  secrets: z.record(z.string(), z.string()).optional(),
  health: healthSchema,
  drainTimeoutMs: z.number().nonnegative(),
  desired: z.enum(['running', 'stopped']),
  restart: z
    .object({ attempts: z.number().int().nonnegative(), intervalMs: z.number().positive() })
    .optional(),
  preStop: z.object({ command: z.string().min(1), timeoutMs: z.number().nonnegative() }).optional(),
  kind: z.literal('worker').optional(),
});

/** Validates what the controller (or the on-disk cache) says the host should run. */
export const hostDesiredStateSchema = z.object({
  hostId: z.string().min(1),
  generation: z.number().int().nonnegative(),
  instances: z.array(desiredInstanceSchema),
  fencingToken: z.number().int().nonnegative().optional(),
});

/** The host's identity once registered: every request is then signed with its key. */
export interface HostCredentials {
  hostId: string;
  key: string;
}

/**
 * The agent's side of the protocol (src/core/protocol.ts), over undici. Until the host has a key it
 * presents its token (a join token, or the embedded platform's node token) — which only lets it
 * register; from then on every request is signed (`core/signing.ts`).
 */
export class ControllerClient {
  /** The controller URLs and which one is current (core/failover.ts). */
  readonly endpoints: Failover;
  private readonly http: HttpAgent;
  credentials: HostCredentials | undefined;
  /** Highest fencing token seen; desired state with a lower one comes from a stale leader and is refused. */
  fencingToken = 0;
  /** How many such stale commands were refused. */
  refusedCommands = 0;

  constructor(
    controllerUrl: string | readonly string[],
    private readonly token: string,
    /** PEM CA bundle the controller's certificate must chain to (an https URL with a private CA). */
    ca?: string,
    failover: FailoverOptions = {},
  ) {
    this.endpoints = new Failover(controllerUrl, failover);
    // Long polls answer after up to `wait` (25 s) seconds: the header timeout must exceed that.
    this.http = new HttpAgent({
      connect: { timeout: 5_000, ...(ca ? { ca } : {}) },
      headersTimeout: 45_000,
      bodyTimeout: 60_000,
      keepAliveTimeout: 20_000,
    });
  }

  private headers(
    method: string,
    path: string,
    body: string | undefined,
    extra: Record<string, string> = {},
  ): Record<string, string> {
    const auth = this.credentials
      ? signRequest(this.credentials.hostId, this.credentials.key, method, path, body)
      : { authorization: `Bearer ${this.token}` };
    return { ...auth, 'user-agent': 'nines-agent', ...extra };
  }

  private async json(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal,
  ): Promise<unknown> {
    return this.endpoints.run(async (base, signal) => {
      const text0 = body === undefined ? undefined : JSON.stringify(body);
      const res = await request(base + path, {
        method,
        dispatcher: this.http,
        signal,
        headers: this.headers(
          method,
          path,
          text0,
          text0 === undefined ? {} : { 'content-type': 'application/json' },
        ),
        ...(text0 === undefined ? {} : { body: text0 }),
      });
      const text = await res.body.text();
      if (res.statusCode < 200 || res.statusCode >= 300) throw httpError(method, path, res.statusCode, text);
      if (res.statusCode === 204 || text === '') return undefined;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new ControllerHttpError(res.statusCode, undefined, `${method} ${path}: answer is not JSON`);
      }
    }, signal);
  }

  /** Registers (with the token: a new key) or refreshes the host's facts (signed: the key stays). */
  async register(body: AgentRegister, signal: AbortSignal): Promise<{ hostId: string; key?: string }> {
    const res = z
      .object({
        hostId: z.string().min(1),
        key: z
          .string()
          .regex(/^[0-9a-f]{64}$/)
          .optional(),
      })
      .safeParse(await this.json('POST', '/v1/agent/register', body, signal));
    if (!res.success) throw new ControllerHttpError(200, undefined, 'register: answer has no hostId');
    return res.data.key ? { hostId: res.data.hostId, key: res.data.key } : { hostId: res.data.hostId };
  }

  async desired(
    hostId: string,
    after: number,
    waitS: number,
    signal: AbortSignal,
  ): Promise<HostDesiredState> {
    const q = new URLSearchParams({ hostId, after: String(after), wait: String(waitS) });
    // A stalled controller must not hold the long poll past its wait: time out a little after it.
    const res = hostDesiredStateSchema.safeParse(
      await withDeadline(waitS * 1000 + 10_000, signal, (timed) =>
        this.json('GET', `/v1/agent/desired?${q}`, undefined, timed),
      ),
    );
    if (!res.success) {
      throw new ControllerHttpError(
        200,
        undefined,
        `desired: invalid answer: ${res.error.message.slice(0, 500)}`,
      );
    }
    const token = res.data.fencingToken;
    if (token !== undefined) {
      if (token < this.fencingToken) {
        // A controller that lost its leadership still answered: refuse, and ask another one.
        this.refusedCommands++;
        const from = this.endpoints.current;
        this.endpoints.moveOn(from, null, 'stale leader');
        throw new ControllerHttpError(
          409,
          'NINES_E_FENCED',
          `desired state from ${from} carries fencing token ${token}, older than ${this.fencingToken}: refused`,
        );
      }
      this.fencingToken = token;
    }
    return res.data;
  }

  async report(body: AgentReport, signal: AbortSignal): Promise<void> {
    await this.json('POST', '/v1/agent/report', body, signal);
  }

  /** Black-box checks to run from this host (long poll until their version passes `after`). */
  async checks(hostId: string, after: number, waitS: number, signal: AbortSignal): Promise<AgentChecks> {
    const q = new URLSearchParams({ hostId, after: String(after), wait: String(waitS) });
    const res = (await this.json('GET', `/v1/agent/checks?${q}`, undefined, signal)) as
      | AgentChecks
      | undefined;
    if (!res || typeof res.version !== 'number' || !Array.isArray(res.checks)) {
      throw new ControllerHttpError(200, undefined, 'checks: invalid answer');
    }
    return res;
  }

  async checkResults(body: AgentCheckResults, signal: AbortSignal): Promise<void> {
    await this.json('POST', '/v1/agent/checks/results', body, signal);
  }

  /** `nines logs`: the log requests open for this host (long poll until they differ from `have`). */
  async logRequests(
    hostId: string,
    have: string[],
    waitS: number,
    signal: AbortSignal,
  ): Promise<LogRequest[]> {
    const q = new URLSearchParams({ hostId, have: have.join(','), wait: String(waitS) });
    const res = logRequestsAnswerSchema.safeParse(
      await this.json('GET', `/v1/agent/logs?${q}`, undefined, signal),
    );
    if (!res.success) throw new ControllerHttpError(200, undefined, 'log requests: invalid answer');
    return res.data.requests;
  }

  async sendLog(hostId: string, requestId: string, chunk: LogChunk, signal: AbortSignal): Promise<boolean> {
    const q = new URLSearchParams({ hostId });
    const path = `/v1/agent/logs/${encodeURIComponent(requestId)}?${q}`;
    const res = (await this.json('POST', path, chunk, signal)) as { open?: unknown } | undefined;
    return res?.open === true;
  }

  /** `nines hosts patch`: commands to run on this host (long poll until they differ from `have`). */
  async tasks(hostId: string, have: string[], waitS: number, signal: AbortSignal): Promise<HostTask[]> {
    const q = new URLSearchParams({ hostId, have: have.join(','), wait: String(waitS) });
    const res = hostTasksAnswerSchema.safeParse(
      await this.json('GET', `/v1/agent/tasks?${q}`, undefined, signal),
    );
    if (!res.success) throw new ControllerHttpError(200, undefined, 'host tasks: invalid answer');
    return res.data.tasks;
  }

  async sendTaskResult(
    hostId: string,
    id: string,
    result: HostTaskResult,
    signal: AbortSignal,
  ): Promise<void> {
    const q = new URLSearchParams({ hostId });
    await this.json('POST', `/v1/agent/tasks/${encodeURIComponent(id)}?${q}`, result, signal);
  }

  /** `nines drill`: the faults open for this host (long poll until they differ from `have`). */
  async faults(hostId: string, have: string[], waitS: number, signal: AbortSignal): Promise<AgentFault[]> {
    const q = new URLSearchParams({ hostId, have: have.join(','), wait: String(waitS) });
    const res = agentFaultsAnswerSchema.safeParse(
      await this.json('GET', `/v1/agent/faults?${q}`, undefined, signal),
    );
    if (!res.success) throw new ControllerHttpError(200, undefined, 'faults: invalid answer');
    return res.data.faults;
  }

  async faultDone(
    hostId: string,
    faultId: string,
    result: AgentFaultResult,
    signal: AbortSignal,
  ): Promise<void> {
    const q = new URLSearchParams({ hostId });
    await this.json('POST', `/v1/agent/faults/${encodeURIComponent(faultId)}?${q}`, result, signal);
  }

  /** Streams `GET {controllerUrl}{path}` into `file`; refuses more than `maxBytes`. */
  async download(path: string, file: string, maxBytes: number, signal: AbortSignal): Promise<number> {
    const res = await this.endpoints.run(async (base, signal) => {
      const r = await request(base + path, {
        method: 'GET',
        dispatcher: this.http,
        signal,
        headers: this.headers('GET', path, undefined),
      });
      if (r.statusCode !== 200) {
        const text = await r.body.text().catch(() => '');
        throw httpError('GET', path, r.statusCode, text);
      }
      return r;
    }, signal);
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
  let leader: string | null = null;
  try {
    const body = JSON.parse(text) as {
      error?: { code?: unknown; message?: unknown; details?: { leader?: unknown } };
    };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
    if (typeof body.error?.details?.leader === 'string') leader = body.error.details.leader;
  } catch {
    // not an error body
  }
  const pathOnly = path.split('?')[0];
  return new ControllerHttpError(
    status,
    code,
    `${method} ${pathOnly}: HTTP ${status}${code ? ` ${code}` : ''}: ${message}`,
    leader,
  );
}
