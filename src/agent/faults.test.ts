import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { pino } from 'pino';
import type { AgentFault, AgentFaultResult } from '../core/drill-protocol.js';
import type { ObservedInstance } from '../core/protocol.js';
import { FaultRunner } from './faults.js';

const logger = pino({ level: 'silent' });

test('a kill-instance fault SIGKILLs the supervised process, once, and reports it', async () => {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const exited = once(child, 'exit');
  const ac = new AbortController();
  const results: Array<[string, AgentFaultResult]> = [];
  const fault: AgentFault = { id: 'f-1', kind: 'kill-instance', instance: 'web-abc' };
  let polls = 0;
  const runner = new FaultRunner({
    transport: {
      async faults(_hostId, have) {
        polls++;
        // The controller keeps the fault open until it hears back; `have` tells it what is in hand.
        if (results.length === 0) return [fault];
        if (have.length > 0) return [];
        ac.abort();
        return [];
      },
      async faultDone(_hostId, id, result) {
        results.push([id, result]);
      },
    },
    hostId: () => 'h-1',
    observed: (): ObservedInstance[] => [
      { id: 'web-abc', state: 'running', healthy: true, pid: child.pid!, restarts: 0 },
    ],
    logger,
    signal: ac.signal,
  });
  await runner.run();
  const [, signal] = await exited;
  assert.equal(signal, 'SIGKILL');
  assert.equal(results.length, 1, 'injected exactly once');
  assert.equal(results[0]?.[0], 'f-1');
  assert.equal(results[0]?.[1].ok, true);
  assert.equal(results[0]?.[1].pid, child.pid);
  assert.ok(polls >= 2);
});

test('a fault for an instance this agent does not run touches nothing', () => {
  const killed: number[] = [];
  const runner = new FaultRunner({
    transport: { faults: async () => [], faultDone: async () => {} },
    hostId: () => 'h-1',
    observed: () => [{ id: 'web-1', state: 'backoff', healthy: false, restarts: 2 }],
    logger,
    signal: new AbortController().signal,
    kill: (pid) => killed.push(pid),
  });
  const other = runner.inject({ id: 'f', kind: 'kill-instance', instance: 'postgres' });
  assert.equal(other.ok, false);
  assert.match(other.message, /not on this host/);
  const notRunning = runner.inject({ id: 'f', kind: 'kill-instance', instance: 'web-1' });
  assert.equal(notRunning.ok, false);
  assert.match(notRunning.message, /no running process \(backoff\)/);
  assert.deepEqual(killed, []);
});

test('a host-loss fault hands over to the agent’s own simulation, or is refused without one', () => {
  const calls: number[] = [];
  const deps = {
    transport: { faults: async () => [], faultDone: async () => {} },
    hostId: () => 'h-1',
    observed: () => [],
    logger,
    signal: new AbortController().signal,
  };
  const with_ = new FaultRunner({
    ...deps,
    hostLoss: (ms) => {
      calls.push(ms);
      return [101, 102];
    },
  });
  const r = with_.inject({ id: 'f', kind: 'host-loss', durationMs: 20_000 });
  assert.deepEqual([r.ok, r.pids, calls], [true, [101, 102], [20_000]]);
  const without = new FaultRunner(deps).inject({ id: 'f', kind: 'host-loss', durationMs: 20_000 });
  assert.equal(without.ok, false);
});
