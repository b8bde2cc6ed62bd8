import { NinesError } from './errors.js';

/**
 * A lifecycle is a closed set of states plus the transitions allowed between them. Every state change
 * of an instance or a deploy goes through `transition()`, so an impossible change (a stopped process
 * becoming healthy, a failed deploy succeeding) is an error at the point it is attempted, not a
 * surprise in the store later.
 */
export interface Lifecycle<S extends string> {
  readonly name: string;
  readonly allowed: Readonly<Record<S, readonly S[]>>;
  readonly terminal: readonly S[];
}

export function canTransition<S extends string>(lc: Lifecycle<S>, from: S, to: S): boolean {
  return from === to || lc.allowed[from].includes(to);
}

export function transition<S extends string>(lc: Lifecycle<S>, from: S, to: S): S {
  if (!canTransition(lc, from, to)) {
    throw new NinesError('NINES_E_INVALID_TRANSITION', `${lc.name}: ${from} → ${to} is not allowed`, {
      lifecycle: lc.name,
      from,
      to,
    });
  }
  return to;
}

export function isTerminal<S extends string>(lc: Lifecycle<S>, s: S): boolean {
  return lc.terminal.includes(s);
}

/**
 * An instance as its agent sees it: the process lifecycle on the host.
 * pending → starting → running → stopping → stopped, with crashes going through backoff.
 * `failed` is where an instance ends when it cannot be provisioned (bad artifact) or gave up.
 */
export type InstanceState =
  | 'pending'
  | 'starting'
  | 'running'
  | 'backoff'
  | 'stopping'
  | 'stopped'
  | 'failed';

export const instanceLifecycle: Lifecycle<InstanceState> = {
  name: 'instance',
  allowed: {
    pending: ['starting', 'stopping', 'stopped', 'failed'],
    starting: ['running', 'backoff', 'stopping', 'stopped', 'failed'],
    running: ['backoff', 'stopping', 'stopped', 'failed'],
    backoff: ['starting', 'stopping', 'stopped', 'failed'],
    stopping: ['stopped'],
    stopped: [],
    failed: [],
  },
  terminal: ['stopped', 'failed'],
};

/**
 * An instance as the proxy sees it. `starting` instances are not in the routing snapshot at all;
 * `ready` ones take new requests; `draining` ones finish what they have and take nothing new.
 */
export type RouteState = 'ready' | 'draining';

/**
 * A deploy's lifecycle. `paused` holds between steps until resumed (or aborted); `reverted` means it
 * failed and the service was put back on the old release.
 */
export type DeployState = 'pending' | 'running' | 'paused' | 'succeeded' | 'failed' | 'reverted';

export const deployLifecycle: Lifecycle<DeployState> = {
  name: 'deploy',
  allowed: {
    pending: ['running', 'failed'],
    running: ['paused', 'succeeded', 'failed', 'reverted'],
    paused: ['running', 'failed', 'reverted'],
    succeeded: [],
    failed: [],
    reverted: [],
  },
  terminal: ['succeeded', 'failed', 'reverted'],
};
