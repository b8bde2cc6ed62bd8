import type { Logger } from 'pino';
import type { DeploySettings, TrafficSplit } from '../../core/strategies.js';
import type { Fleet } from '../fleet.js';
import type { Hub } from '../hub.js';
import type { DeployRecord, InstanceRecord, ReleaseRecord, Store } from '../store/types.js';
import type { InstanceOps, OpContext } from './ops.js';

/** How long the proxies get to apply a routing change (they do it in milliseconds). */
export const PROXY_APPLY_MS = 10_000;

/** What a strategy runner (canary.ts, bluegreen.ts, allatonce.ts) gets from the engine for one deploy. */
export interface DeployRun {
  store: Store;
  hub: Hub;
  fleet: Fleet;
  ops: InstanceOps;
  log: Logger;
  ctx: OpContext;
  deploy: DeployRecord;
  release: ReleaseRecord;
  settings: DeploySettings;
  /** New instances started by this deploy (the revert stops them). */
  created: InstanceRecord[];
  /** Step boundary: holds while paused, throws once aborted. */
  checkpoint(): Promise<void>;
  /** Pause the deploy for a person (`nines deploy resume|promote|abort`) and wait at the checkpoint. */
  hold(reason: string): Promise<void>;
  /** Wait `ms` (null: until promoted); resolves early on `nines deploy promote`. */
  waitPromote(ms: number | null, what: string): Promise<void>;
  /** Gates after a batch of new instances took traffic (minHealthyTime, analysis.afterEachBatch). */
  afterBatch?: (batch: InstanceRecord[]) => Promise<void>;
  /** Run before the revert of a failed deploy stops anything (e.g. a canary's weight back to 0). */
  beforeRevert: (() => Promise<void>)[];
  /** Run after the revert of a failed deploy (e.g. put the service's mode back). */
  onRevert: (() => Promise<void>)[];
}

/** Store the service's traffic split and wait until every live proxy routes by it. */
export async function setTraffic(
  run: Pick<DeployRun, 'store' | 'fleet' | 'hub'>,
  service: string,
  traffic: TrafficSplit | null,
  signal?: AbortSignal,
): Promise<void> {
  await run.store.setServiceTraffic(service, traffic);
  const version = await run.fleet.bumpRouting();
  await waitApplied(run, version, signal);
}

export async function waitApplied(
  run: Pick<DeployRun, 'hub'>,
  version: number,
  signal?: AbortSignal,
): Promise<void> {
  await run.hub.waitUntil(
    'the proxies to apply the routing change',
    () => (run.hub.liveProxies().every((p) => p.appliedVersion >= version) ? true : undefined),
    PROXY_APPLY_MS,
    signal,
  );
}

/** Abortable sleep. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Run every task, then rethrow the first failure (so none is left running unobserved). */
export async function allOrFirstError(tasks: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(tasks);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
