import type { Lifecycle } from './lifecycle.js';

/**
 * A host as the scheduler sees it. `ready` takes new instances; `cordoned` keeps what it runs and takes
 * nothing new; `draining` is having its instances moved away (then it is cordoned); `down` has not sent a
 * heartbeat for `hostDownAfter` (its instances are replaced elsewhere). Operators set the first three
 * (`nines hosts cordon|drain|uncordon`); `down` is derived from heartbeats and ends when the host
 * reports again, back in the state an operator left it in.
 */
export type HostState = 'ready' | 'cordoned' | 'draining' | 'down';

/** What an operator sets and the store keeps; `down` is never stored. */
export type HostAdminState = Exclude<HostState, 'down'>;

export const hostLifecycle: Lifecycle<HostState> = {
  name: 'host',
  allowed: {
    ready: ['cordoned', 'draining', 'down'],
    cordoned: ['ready', 'draining', 'down'],
    // A finished drain leaves the host cordoned; uncordon cancels a drain.
    draining: ['cordoned', 'ready', 'down'],
    down: ['ready', 'cordoned', 'draining'],
  },
  terminal: [],
};

/** The state the scheduler uses: heartbeats first, then the operator's, then an evacuated zone. */
export function effectiveHostState(opts: {
  admin: HostAdminState;
  lastSeenAt: number;
  now: number;
  hostDownAfterMs: number;
  revoked: boolean;
  zoneEvacuated: boolean;
}): HostState {
  if (opts.revoked || opts.lastSeenAt < opts.now - opts.hostDownAfterMs) return 'down';
  if (opts.zoneEvacuated && opts.admin === 'ready') return 'draining';
  return opts.admin;
}

/** The label that declares a host's capacity in instance slots (`nines agent --slots N`). */
export const SLOTS_LABEL = 'slots';

/** Declared instance slots, or undefined (no limit) when the label is absent or not a whole number. */
export function hostSlots(labels: Readonly<Record<string, string>>): number | undefined {
  const v = labels[SLOTS_LABEL];
  if (v === undefined || !/^\d{1,6}$/.test(v)) return undefined;
  return Number(v);
}
