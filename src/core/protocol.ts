import { z } from 'zod';
import type { InstanceState, RouteState } from './lifecycle.js';
import { type HostSignals, hostSignalsSchema } from './signals.js';

export type { HostSignals } from './signals.js';

/**
 * The protocol between the planes. Agents and proxies talk to the controller only through these
 * HTTP endpoints and messages, even when all three run in one process (`nines up`), so the embedded
 * platform exercises exactly what a fleet does.
 *
 *   agent → controller   POST /v1/agent/register        AgentRegister     → AgentRegistered
 *   agent → controller   GET  /v1/agent/desired?hostId&after&wait           → HostDesiredState (long poll)
 *   agent → controller   POST /v1/agent/report          AgentReport       → 204
 *   agent → controller   GET  /v1/services/:s/releases/:v/artifact          → tar.gz bytes
 *   proxy → controller   GET  /v1/proxy/snapshot?after&wait                 → RoutingSnapshot (long poll)
 *   proxy → controller   POST /v1/proxy/report          ProxyReport       → 204
 *
 * Long polls: the controller answers at once when its generation/version is greater than `after`,
 * otherwise when it changes or after `wait` seconds (then with the unchanged state).
 * All requests carry `authorization: Bearer <node token>` (signed requests arrive with the fleet issue).
 */

export const PROTOCOL_VERSION = 1;

/** A health check as executed by an agent (readiness) or a proxy (routing). Times in ms. */
export interface HealthCheckSpec {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  /** Proxy checks only. `http` (default): GET `path`, 2xx/3xx passes. `tcp`: a connection that opens passes. */
  type?: 'http' | 'tcp';
  /**
   * Proxy checks only: the interval while an instance is changing state (a pass while down, a failure
   * while up, ejected). Default `min(intervalMs, max(100, intervalMs / 4))`.
   */
  fastIntervalMs?: number;
}

export interface ArtifactRef {
  version: string;
  sha256: string;
  size: number;
  /** Path on the controller API (`/v1/services/:s/releases/:v/artifact`), fetched with the node token. */
  url: string;
  /**
   * With object storage: a presigned GET URL of the artifact, fetched without credentials; the agent
   * falls back to `url` when it fails. The sha256 is verified either way.
   */
  downloadUrl?: string;
}

export interface DesiredInstance {
  id: string;
  service: string;
  release: ArtifactRef;
  command: string;
  env: Record<string, string>;
  /**
   * The service's secrets in the controller's environment, opened: present only in the answer to the
   * host's own signed request. The agent writes them to a 0600 env file and into the process's
   * environment; they never appear in logs (core/redact.ts).
   */
  secrets?: Record<string, string>;
  health: HealthCheckSpec;
  drainTimeoutMs: number;
  /** `running`: keep it up (restart on crash). `stopped`: SIGTERM, then SIGKILL after drainTimeoutMs. */
  desired: 'running' | 'stopped';
  /** Restart policy: more than `attempts` crashes within `intervalMs` and the instance is `failed`. */
  restart?: { attempts: number; intervalMs: number };
  /** Run (`sh -c`, release dir, the instance's env) before the SIGTERM of a stop; killed after timeoutMs. */
  preStop?: { command: string; timeoutMs: number };
  /**
   * `worker`: no HTTP (a queue consumer): no PORT in its environment, and its readiness is its process
   * staying up for `rise` probe intervals instead of an HTTP probe.
   */
  kind?: 'worker';
}

export interface HostDesiredState {
  hostId: string;
  /** Increases with every change of this host's desired instances. */
  generation: number;
  instances: DesiredInstance[];
  /**
   * The leader's fencing token (several controllers): grows with every new leader. An agent ignores
   * desired state with a token lower than one it has already seen — a stale leader's late command.
   */
  fencingToken?: number;
}

export interface ObservedInstance {
  id: string;
  state: InstanceState;
  /** The agent's own health probe (readiness): rise consecutive passes → true, fall failures → false. */
  healthy: boolean;
  pid?: number;
  /** The port the agent gave the instance (PORT env); stable across restarts of the instance. */
  port?: number;
  restarts: number;
  exitCode?: number | null;
  signal?: string | null;
  message?: string;
  startedAt?: number;
  /** CPU of the instance's processes, percent of one core over the agent's last sampling interval. */
  cpu?: number;
  /** Resident memory of the instance's processes, bytes, at the agent's last sample. */
  memoryBytes?: number;
}

export interface AgentRegister {
  name: string;
  zone: string;
  labels: Record<string, string>;
  /** Address the proxy should use to reach this host's instances. */
  address: string;
}

export interface AgentRegistered {
  hostId: string;
}

export interface AgentReport {
  hostId: string;
  /** The desired generation the agent has applied. */
  generation: number;
  instances: ObservedInstance[];
  /** Host signals (CPU, memory, disks, network), attached every few seconds, not to every report. */
  host?: HostSignals;
}

export interface RouteInstance {
  id: string;
  address: string;
  port: number;
  /**
   * `ready`: routed. `draining`: no new requests, in-flight ones finish (their responses carry
   * `Connection: close`), WebSockets get 1001 after `wsDrainTimeoutMs`, then reported drained.
   * `maintenance`: like draining, and no health checks until it is ready again (then slow start).
   */
  state: RouteState | 'maintenance';
  /**
   * Relative share of new requests: the ratio for `weighted`, a divisor of the in-flight count for
   * `least-connections`; ignored by `round-robin` except 0, which takes the instance out of rotation.
   * Changed at runtime (canaries). Default 1.
   */
  weight: number;
  release: string;
}

export interface RouteService {
  name: string;
  hosts: string[];
  pathPrefix: string;
  /**
   * `live`: normal. `read-only`: unsafe methods (not GET/HEAD/OPTIONS/TRACE) get 503
   * NINES_E_READ_ONLY + Retry-After, reads pass. `maintenance`: every request gets 503
   * NINES_E_MAINTENANCE (page from `maintenance`). `pause`: new requests are held up to
   * `pauseTimeoutMs`, released when a later snapshot sets another mode, else 503 NINES_E_PAUSED.
   * An unknown mode is treated as `live`.
   */
  mode: 'live' | 'read-only' | 'maintenance' | 'pause';
  health: HealthCheckSpec;
  instances: RouteInstance[];
  /** Balancing policy. Default `least-connections`. */
  balance?: 'least-connections' | 'round-robin' | 'weighted';
  /** A new or recovered instance ramps its effective weight from 10 % to 100 % over this time. Default 0 (off). */
  slowStartMs?: number;
  /** Passive ejection (outlier detection). */
  outlier?: {
    /** Consecutive connection failures that eject an instance. Default 1; 0 off. */
    consecutiveConnectFailures?: number;
    /** Consecutive 5xx answers that eject an instance. Default 5; 0 off. */
    consecutive5xx?: number;
    /** First ejection time; doubles with each repeat ejection (reset after a quiet maxEjectionMs). Default 2000. */
    baseEjectionMs?: number;
    /** Cap of the ejection time. Default 60000. */
    maxEjectionMs?: number;
    /** At most this share of the service's instances ejected at once (at least one may be). Default 50. */
    maxEjectionPercent?: number;
  };
  /**
   * Fail-open: when fewer than this share of the ready instances are healthy, route to all ready
   * instances regardless of health (logged, `nines_proxy_service_panic` 1). Default 0 (off).
   */
  panicThresholdPercent?: number;
  /** Retries of idempotent body-less requests on another instance (connect failure or reset before any byte). */
  retry?: {
    /** Retries per request. Default 1; 0 off. */
    attempts?: number;
    /** Requests retrying at once may be at most this share of the service's in-flight requests. Default 20. */
    budgetPercent?: number;
    /** ... but at least this many at once. Default 10. */
    minConcurrent?: number;
  };
  /** Retry-After (seconds) on read-only / maintenance / pause answers. Default 30. */
  retryAfterSeconds?: number;
  /** The maintenance answer: `html` for clients accepting text/html, `message` in the JSON body. */
  maintenance?: { message?: string; html?: string };
  /** Longest hold of a request in `pause` mode. Default 10000. */
  pauseTimeoutMs?: number;
  /** WebSockets on a draining instance get a close frame 1001 after this time. Default 5000. */
  wsDrainTimeoutMs?: number;
  /**
   * This entry is the preview group of the named service (blue-green before the switch): it gets the
   * requests for that service that carry `X-Nines-Preview`, and those for its own `hosts` (none: the
   * header only). It is never matched as a service of its own otherwise.
   */
  previewOf?: string;
}

export interface RoutingSnapshot {
  version: number;
  services: RouteService[];
}

export interface ProxyInstanceStatus {
  id: string;
  /** The proxy's active health view (rise/fall) plus passive ejection. */
  up: boolean;
  inflight: number;
  /** state is draining, in-flight is 0 and the proxy's pooled connections to it are closed. */
  drained: boolean;
  /** Answers the instance gave through this proxy (cumulative while the proxy knows the instance). */
  requests?: number;
  /** Of those, 5xx. */
  failed?: number;
  /** Their latencies: counts per bucket of LATENCY_BOUNDS_MS (non-cumulative; the last is +Inf). */
  latency?: number[];
}

/** Upper bounds (ms) of the latency buckets proxies report per instance (the deploy analysis reads p99). */
export const LATENCY_BOUNDS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const;

/** Answers per service since the proxy started (cumulative; a proxy restart starts from 0 again). */
export interface ProxyServiceCounters {
  name: string;
  requests: number;
  /** 5xx answers: from instances, or the proxy's own (no healthy instance, upstream failure, modes). */
  failed: number;
  /** Time to answer, all answers: a histogram with upper bounds `le` (seconds), counts per bucket (not cumulative, one more for +Inf). */
  latency?: ServiceLatency;
}

export interface ServiceLatency {
  le: number[];
  counts: number[];
  sumSeconds: number;
  count: number;
}

export interface ProxyReport {
  proxyId: string;
  appliedVersion: number;
  instances: ProxyInstanceStatus[];
  services?: ProxyServiceCounters[];
}

// ---- runtime validation of what arrives at the controller -------------------------------------

const instanceStates = [
  'pending',
  'starting',
  'running',
  'backoff',
  'stopping',
  'stopped',
  'failed',
] as const;

export const agentRegisterSchema = z.strictObject({
  name: z.string().min(1).max(253),
  zone: z.string().min(1).max(63),
  labels: z.record(z.string(), z.string()).default({}),
  address: z.string().min(1).max(253),
});

export const observedInstanceSchema = z.strictObject({
  id: z.string().min(1),
  state: z.enum(instanceStates),
  healthy: z.boolean(),
  pid: z.number().int().positive().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  restarts: z.number().int().nonnegative(),
  exitCode: z.number().int().nullable().optional(),
  signal: z.string().nullable().optional(),
  message: z.string().max(4096).optional(),
  startedAt: z.number().optional(),
  cpu: z.number().nonnegative().optional(),
  memoryBytes: z.number().int().nonnegative().optional(),
});

export const agentReportSchema = z.strictObject({
  hostId: z.string().min(1),
  generation: z.number().int().nonnegative(),
  instances: z.array(observedInstanceSchema),
  host: hostSignalsSchema.optional(),
});

export const proxyReportSchema = z.strictObject({
  proxyId: z.string().min(1),
  appliedVersion: z.number().int().nonnegative(),
  services: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        requests: z.number().int().nonnegative(),
        failed: z.number().int().nonnegative(),
        latency: z
          .strictObject({
            le: z.array(z.number().positive()).max(64),
            counts: z.array(z.number().int().nonnegative()).max(65),
            sumSeconds: z.number().nonnegative(),
            count: z.number().int().nonnegative(),
          })
          .optional(),
      }),
    )
    .optional(),
  instances: z.array(
    z.strictObject({
      id: z.string().min(1),
      up: z.boolean(),
      inflight: z.number().int().nonnegative(),
      drained: z.boolean(),
      requests: z.number().int().nonnegative().optional(),
      failed: z.number().int().nonnegative().optional(),
      latency: z.array(z.number().nonnegative()).max(64).optional(),
    }),
  ),
});
