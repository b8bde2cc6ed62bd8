import type { CanaryStep, HookConfig, ServiceSpec, StrategyName } from './config.js';
import { LATENCY_BOUNDS_MS } from './protocol.js';

/**
 * Deploy strategies as pure functions: the resolved settings of a service spec (defaults live here,
 * not in the zod schema, so specs stored before these fields existed read the same), the traffic
 * split the proxies get per instance, the canary plan, the analysis verdict and the all-at-once
 * maintenance estimate. The engine (controller/engine/) does the I/O around them.
 */

export interface AnalysisSettings {
  maxErrorPercent: number;
  /** ms; 0: not checked. */
  maxP99: number;
  /** Percentage points over the old release; null: no comparison. */
  maxErrorPercentOverStable: number | null;
  minRequests: number;
  window: number;
  afterEachBatch: boolean;
  /** Blue-green: analyse the new group after the switch; failure switches back to the old group. */
  afterSwitch: boolean;
}

export interface DeploySettings {
  strategy: StrategyName;
  scaleDownDelay: number;
  previewHosts: string[];
  autoPromote: boolean;
  canarySteps: CanaryStep[];
  analysis: AnalysisSettings;
  preDeploy: Required<HookConfig> | null;
  postDeploy: Required<HookConfig> | null;
  preStop: Required<HookConfig> | null;
  minHealthyTime: number;
  progressDeadline: number;
  autoRevert: boolean;
}

export const DEFAULT_CANARY_STEPS: CanaryStep[] = [
  { setWeight: 10 },
  { analysis: {} },
  { setWeight: 50 },
  { analysis: {} },
];

const HOOK_TIMEOUT_MS = 5 * 60_000;

function hook(h: HookConfig | undefined): Required<HookConfig> | null {
  return h ? { command: h.command, timeout: h.timeout ?? HOOK_TIMEOUT_MS } : null;
}

/** A spec's deploy settings with every default applied; `strategy` overrides the spec's (per deploy). */
export function deploySettings(spec: ServiceSpec, strategy?: StrategyName): DeploySettings {
  const a = spec.analysis ?? {};
  return {
    strategy: strategy ?? spec.strategy ?? 'rolling',
    scaleDownDelay: spec.blueGreen?.scaleDownDelay ?? 30_000,
    previewHosts: spec.blueGreen?.previewHosts ?? [],
    autoPromote: spec.blueGreen?.autoPromote ?? true,
    canarySteps: spec.canary?.steps ?? DEFAULT_CANARY_STEPS,
    analysis: {
      maxErrorPercent: a.maxErrorPercent ?? 5,
      maxP99: a.maxP99 ?? 0,
      maxErrorPercentOverStable: a.maxErrorPercentOverStable ?? null,
      minRequests: a.minRequests ?? 20,
      window: a.window ?? 10_000,
      afterEachBatch: a.afterEachBatch ?? false,
      afterSwitch: a.afterSwitch ?? false,
    },
    preDeploy: hook(spec.hooks?.preDeploy),
    postDeploy: hook(spec.hooks?.postDeploy),
    preStop: hook(spec.hooks?.preStop),
    minHealthyTime: spec.minHealthyTime ?? 0,
    progressDeadline: spec.progressDeadline ?? 10 * 60_000,
    autoRevert: spec.autoRevert ?? true,
  };
}

// ---- traffic split --------------------------------------------------------------------------------

/**
 * How the proxies split a service's traffic between releases, beyond "every routed instance alike".
 * Stored on the service (it is operational state, like the mode) and projected into instance weights.
 */
export interface TrafficSplit {
  /** Percent of new requests per release; a routed instance of a release not listed gets weight 0. */
  weights?: Record<string, number>;
  /** This release's routed instances form the preview group (header `X-Nines-Preview` or previewHosts). */
  preview?: string;
  previewHosts?: string[];
  /**
   * Blue-green: the old group, kept running out of rotation until `until` (epoch ms) so a rollback is
   * an instant switch back. The deploy lock is held as `standby-<deployId>` meanwhile.
   */
  standby?: { release: string; until: number; deployId: string };
}

/**
 * Per-instance weights so that release R gets weights[R] % of new requests whatever its instance count:
 * each instance of R weighs weights[R] × (product of the other releases' counts), scaled. Instances
 * without a split all weigh 1.
 */
export function instanceWeights(
  split: TrafficSplit | null,
  instances: readonly { id: string; release: string }[],
): Map<string, number> {
  const out = new Map<string, number>();
  const weights = split?.weights;
  if (!weights) {
    for (const i of instances) out.set(i.id, 1);
    return out;
  }
  const count = new Map<string, number>();
  for (const i of instances) count.set(i.release, (count.get(i.release) ?? 0) + 1);
  let lcm = 1;
  for (const n of count.values()) lcm = lcmOf(lcm, n);
  for (const i of instances) {
    const pct = weights[i.release] ?? 0;
    const n = count.get(i.release) ?? 1;
    out.set(i.id, pct <= 0 ? 0 : (pct * lcm) / n);
  }
  return out;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
function lcmOf(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}

// ---- canary ---------------------------------------------------------------------------------------

export type CanaryAction =
  | { kind: 'scale'; newInstances: number }
  | { kind: 'weight'; percent: number }
  | { kind: 'pause'; ms: number | null }
  | { kind: 'analysis'; window: number }
  | { kind: 'promote' };

/**
 * The canary's actions in order. Before each weight, enough new instances run to carry it (at least
 * one; `ceil(desired × weight)`), and the plan always ends with a full promotion (every new instance,
 * 100 %, then the old release is drained) — as Argo Rollouts does after the last step.
 */
export function planCanary(
  steps: readonly CanaryStep[],
  desired: number,
  defaultWindow: number,
): CanaryAction[] {
  const out: CanaryAction[] = [];
  let running = 0;
  for (const s of steps) {
    if ('setWeight' in s) {
      const need = Math.min(desired, Math.max(1, Math.ceil((desired * s.setWeight) / 100)));
      if (s.setWeight > 0 && need > running) {
        out.push({ kind: 'scale', newInstances: need });
        running = need;
      }
      out.push({ kind: 'weight', percent: s.setWeight });
    } else if ('pause' in s) {
      out.push({ kind: 'pause', ms: s.pause.duration ?? null });
    } else {
      out.push({ kind: 'analysis', window: s.analysis.window ?? defaultWindow });
    }
  }
  out.push({ kind: 'promote' });
  return out;
}

// ---- analysis -------------------------------------------------------------------------------------

/** What the proxies saw from one release over a window. */
export interface WindowStats {
  requests: number;
  failed: number;
  /** Counts per LATENCY_BOUNDS_MS bucket (+Inf last). */
  latency: number[];
}

export function emptyStats(): WindowStats {
  return { requests: 0, failed: 0, latency: new Array(LATENCY_BOUNDS_MS.length + 1).fill(0) };
}

/** The p99 as the upper bound of the bucket it falls in (conservative); null without data. */
export function p99(latency: readonly number[]): number | null {
  const total = latency.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = Math.ceil(total * 0.99);
  let seen = 0;
  for (let i = 0; i < latency.length; i++) {
    seen += latency[i] ?? 0;
    if (seen >= rank) return LATENCY_BOUNDS_MS[i] ?? Number.POSITIVE_INFINITY;
  }
  return Number.POSITIVE_INFINITY;
}

export type Verdict = 'pass' | 'fail' | 'inconclusive';

export interface AnalysisResult {
  verdict: Verdict;
  /** One line per check, for the deploy's events. */
  reasons: string[];
  errorPercent: number | null;
  p99Ms: number | null;
  stableErrorPercent: number | null;
}

export function evaluateAnalysis(
  s: AnalysisSettings,
  fresh: WindowStats,
  stable: WindowStats | null,
): AnalysisResult {
  const reasons: string[] = [];
  const errorPercent = fresh.requests > 0 ? (fresh.failed * 100) / fresh.requests : null;
  const p99Ms = p99(fresh.latency);
  const stableErrorPercent = stable && stable.requests > 0 ? (stable.failed * 100) / stable.requests : null;
  const base = { errorPercent, p99Ms, stableErrorPercent };
  if (fresh.requests < s.minRequests || errorPercent === null) {
    return {
      verdict: 'inconclusive',
      reasons: [`${fresh.requests} request(s) reached the new release; at least ${s.minRequests} are needed`],
      ...base,
    };
  }
  let fail = false;
  const pct = (v: number) => `${v.toFixed(1)}%`;
  if (errorPercent > s.maxErrorPercent) {
    fail = true;
    reasons.push(`5xx ${pct(errorPercent)} of ${fresh.requests} > ${pct(s.maxErrorPercent)}`);
  } else reasons.push(`5xx ${pct(errorPercent)} of ${fresh.requests} ≤ ${pct(s.maxErrorPercent)}`);
  if (s.maxP99 > 0 && p99Ms !== null) {
    if (p99Ms > s.maxP99) {
      fail = true;
      reasons.push(`p99 ≤${p99Ms} ms > ${s.maxP99} ms`);
    } else reasons.push(`p99 ≤${p99Ms} ms ≤ ${s.maxP99} ms`);
  }
  if (s.maxErrorPercentOverStable !== null && stableErrorPercent !== null) {
    const limit = stableErrorPercent + s.maxErrorPercentOverStable;
    if (errorPercent > limit) {
      fail = true;
      reasons.push(
        `5xx ${pct(errorPercent)} > old release ${pct(stableErrorPercent)} + ${s.maxErrorPercentOverStable}`,
      );
    } else
      reasons.push(
        `5xx within ${s.maxErrorPercentOverStable} points of the old release (${pct(stableErrorPercent)})`,
      );
  }
  return { verdict: fail ? 'fail' : 'pass', reasons, ...base };
}

// ---- all-at-once ----------------------------------------------------------------------------------

/**
 * How long users see the maintenance page: every old instance stops at once, then every new one boots
 * at once, so the window ends with the slowest boot — the slowest measured boot (ms) plus the median
 * measured stop (SIGTERM to exit; nothing is in flight in maintenance mode). `fallbackBootMs` without
 * samples.
 */
export function maintenanceEstimate(
  bootSamples: readonly number[],
  stopSamples: readonly number[],
  fallbackBootMs: number,
): { windowMs: number; bootMs: number; stopMs: number; measured: boolean } {
  const boot = bootSamples.length ? Math.max(...bootSamples) : fallbackBootMs;
  const stop = stopSamples.length ? median(stopSamples) : 0;
  return { windowMs: Math.round(boot + stop), bootMs: boot, stopMs: stop, measured: bootSamples.length > 0 };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
