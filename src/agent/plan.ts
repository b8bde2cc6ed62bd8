import { type InstanceState, instanceLifecycle, isTerminal } from '../core/lifecycle.js';
import type { DesiredInstance } from '../core/protocol.js';

/**
 * What the agent does to go from what it supervises to what the controller wants. Pure: the agent
 * applies the actions.
 */
export interface CurrentInstance {
  id: string;
  state: InstanceState;
  spec: DesiredInstance;
  /** A stop was already asked for (state may still be stopping). */
  stopRequested: boolean;
}

export type PlanAction =
  /** Not supervised yet: create a supervisor (it goes straight to `stopped` when desired is stopped). */
  | { kind: 'create'; spec: DesiredInstance }
  /** Terminal, but wanted running again (or a failed one got a new release): a fresh supervisor. */
  | { kind: 'replace'; spec: DesiredInstance }
  /** Keep as is with this spec (a changed command/env/release applies at its next start). */
  | { kind: 'keep'; spec: DesiredInstance }
  /** Stop it (SIGTERM, then SIGKILL after drainTimeoutMs). */
  | { kind: 'stop'; id: string; spec: DesiredInstance }
  /** No longer desired at all: stop it if needed, report it once, then forget it. */
  | { kind: 'forget'; id: string };

function sameRelease(a: DesiredInstance, b: DesiredInstance): boolean {
  return (
    a.release.version === b.release.version &&
    a.release.sha256 === b.release.sha256 &&
    a.command === b.command &&
    a.service === b.service
  );
}

export function planInstances(
  desired: readonly DesiredInstance[],
  current: readonly CurrentInstance[],
): PlanAction[] {
  const actions: PlanAction[] = [];
  const byId = new Map(current.map((c) => [c.id, c]));
  const wanted = new Set<string>();
  for (const d of desired) {
    if (wanted.has(d.id)) continue; // a duplicate id: the first one wins
    wanted.add(d.id);
    const c = byId.get(d.id);
    if (!c) {
      actions.push({ kind: 'create', spec: d });
      continue;
    }
    if (isTerminal(instanceLifecycle, c.state)) {
      const again =
        d.desired === 'running' &&
        (c.state === 'stopped' || (c.state === 'failed' && !sameRelease(c.spec, d)));
      actions.push(again ? { kind: 'replace', spec: d } : { kind: 'keep', spec: d });
      continue;
    }
    if (d.desired === 'stopped') {
      actions.push(c.stopRequested ? { kind: 'keep', spec: d } : { kind: 'stop', id: d.id, spec: d });
      continue;
    }
    actions.push({ kind: 'keep', spec: d });
  }
  for (const c of current) {
    if (!wanted.has(c.id)) actions.push({ kind: 'forget', id: c.id });
  }
  return actions;
}
