import { z } from 'zod';
import type { InstanceState, RouteState } from './lifecycle.js';

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
}

export interface ArtifactRef {
  version: string;
  sha256: string;
  size: number;
  /** Path on the controller API (`/v1/services/:s/releases/:v/artifact`), fetched with the node token. */
  url: string;
}

export interface DesiredInstance {
  id: string;
  service: string;
  release: ArtifactRef;
  command: string;
  env: Record<string, string>;
  health: HealthCheckSpec;
  drainTimeoutMs: number;
  /** `running`: keep it up (restart on crash). `stopped`: SIGTERM, then SIGKILL after drainTimeoutMs. */
  desired: 'running' | 'stopped';
}

export interface HostDesiredState {
  hostId: string;
  /** Increases with every change of this host's desired instances. */
  generation: number;
  instances: DesiredInstance[];
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
}

export interface RouteInstance {
  id: string;
  address: string;
  port: number;
  state: RouteState;
  weight: number;
  release: string;
}

export interface RouteService {
  name: string;
  hosts: string[];
  pathPrefix: string;
  mode: 'live';
  health: HealthCheckSpec;
  instances: RouteInstance[];
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
}

export interface ProxyReport {
  proxyId: string;
  appliedVersion: number;
  instances: ProxyInstanceStatus[];
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
});

export const agentReportSchema = z.strictObject({
  hostId: z.string().min(1),
  generation: z.number().int().nonnegative(),
  instances: z.array(observedInstanceSchema),
});

export const proxyReportSchema = z.strictObject({
  proxyId: z.string().min(1),
  appliedVersion: z.number().int().nonnegative(),
  instances: z.array(
    z.strictObject({
      id: z.string().min(1),
      up: z.boolean(),
      inflight: z.number().int().nonnegative(),
      drained: z.boolean(),
    }),
  ),
});
