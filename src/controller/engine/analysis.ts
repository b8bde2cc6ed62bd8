import {
  type AnalysisResult,
  type AnalysisSettings,
  emptyStats,
  evaluateAnalysis,
  type WindowStats,
} from '../../core/strategies.js';
import type { Hub } from '../hub.js';
import type { Store } from '../store/types.js';
import { OperationFailure } from './ops.js';
import { type DeployRun, sleep } from './run.js';

type Sample = Map<string, { requests: number; failed: number; latency: number[] }>;

/** Cumulative per (proxy, instance) counters as the proxies last reported them. */
function sample(hub: Hub): Sample {
  const out: Sample = new Map();
  for (const p of hub.liveProxies()) {
    for (const [id, s] of p.instances) {
      if (s.requests === undefined) continue;
      out.set(`${p.proxyId}\u0000${id}`, {
        requests: s.requests,
        failed: s.failed ?? 0,
        latency: s.latency ?? [],
      });
    }
  }
  return out;
}

/**
 * What each release answered between two samples, from the proxies' own per-instance counters. A
 * counter that went down (proxy restarted, instance re-added) counts from zero.
 */
export function windowByRelease(
  before: Sample,
  after: Sample,
  releaseOf: ReadonlyMap<string, string>,
): Map<string, WindowStats> {
  const out = new Map<string, WindowStats>();
  for (const [key, b] of after) {
    const instance = key.slice(key.indexOf('\u0000') + 1);
    const release = releaseOf.get(instance);
    if (release === undefined) continue;
    let a = before.get(key);
    if (a && b.requests < a.requests) a = undefined;
    let s = out.get(release);
    if (!s) {
      s = emptyStats();
      out.set(release, s);
    }
    s.requests += b.requests - (a?.requests ?? 0);
    s.failed += b.failed - (a?.failed ?? 0);
    for (let i = 0; i < s.latency.length; i++) s.latency[i]! += (b.latency[i] ?? 0) - (a?.latency[i] ?? 0);
  }
  return out;
}

/**
 * Watch the new release for `windowMs` through the proxies' eyes and judge it against the thresholds
 * and, when set, against the other releases over the same window.
 */
export async function analyse(
  deps: { hub: Hub; store: Store },
  service: string,
  newRelease: string,
  settings: AnalysisSettings,
  windowMs: number,
  signal: AbortSignal,
): Promise<AnalysisResult & { stats: WindowStats; stable: WindowStats | null }> {
  const before = sample(deps.hub);
  await sleep(windowMs, signal);
  const end = Date.now();
  // Counters arrive with each proxy report (at least every second): wait for one from after the window.
  const after = await deps.hub
    .waitUntil(
      'proxy reports after the analysis window',
      () => (deps.hub.liveProxies().every((p) => p.at >= end) ? sample(deps.hub) : undefined),
      3000,
      signal,
    )
    .catch((err) => {
      if (signal.aborted) throw err;
      return sample(deps.hub);
    });
  const instances = await deps.store.listInstances({ service });
  const releaseOf = new Map(instances.map((i) => [i.id, i.releaseVersion]));
  const byRelease = windowByRelease(before, after, releaseOf);
  const stats = byRelease.get(newRelease) ?? emptyStats();
  let stable: WindowStats | null = null;
  for (const [r, s] of byRelease) {
    if (r === newRelease) continue;
    stable ??= emptyStats();
    stable.requests += s.requests;
    stable.failed += s.failed;
    for (let i = 0; i < stable.latency.length; i++) stable.latency[i]! += s.latency[i] ?? 0;
  }
  return { ...evaluateAnalysis(settings, stats, stable), stats, stable };
}

/**
 * One analysis step of a deploy: records the verdict, passes, holds for a person when inconclusive,
 * and on failure either throws (the engine reverts) or, with autoRevert off, holds.
 */
export async function analysisStep(run: DeployRun, windowMs: number, label: string): Promise<void> {
  const { deploy, release, settings, ctx } = run;
  await ctx.event('analysis.started', `${label}: watching ${release.version} for ${windowMs} ms`, {
    windowMs,
  });
  const r = await analyse(run, deploy.service, release.version, settings.analysis, windowMs, ctx.signal);
  const data = {
    verdict: r.verdict,
    requests: r.stats.requests,
    failed: r.stats.failed,
    errorPercent: r.errorPercent,
    p99Ms: r.p99Ms,
    stableRequests: r.stable?.requests ?? null,
    stableFailed: r.stable?.failed ?? null,
  };
  const text = `${label}: ${r.verdict} — ${r.reasons.join('; ')}`;
  await ctx.event(`analysis.${r.verdict}`, text, data);
  if (r.verdict === 'pass') return;
  if (r.verdict === 'inconclusive') {
    await run.hold(`${text}; resume to go on, abort to revert`);
    return;
  }
  if (settings.autoRevert && deploy.options?.autoRevert !== false) {
    throw new OperationFailure(`analysis failed (${r.reasons.join('; ')})`);
  }
  await run.hold(`${text}; automatic revert is off — abort to revert, resume to go on`);
}
