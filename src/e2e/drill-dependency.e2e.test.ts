import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DrillReport } from '../drill/drill.js';
import { cleanup, cli, fixture, serviceYaml, startUp, tempDir, type Up } from './harness.js';

/**
 * Issue 8, drill `dependency-down`: a real dependency server the app calls on every request; the agent
 * cuts the app's processes (and its own probes) off from it with nftables for the outage, and only them:
 * this test process reaches the dependency throughout.
 */
function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (cgroup v2 and nftables)';
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'needs nftables (apt-get install nftables)';
  }
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  if (!/ \/sys\/fs\/cgroup(\/\S*)? cgroup2 /.test(mounts)) return 'needs cgroup v2 under /sys/fs/cgroup';
  return false;
}

describe('nines drill dependency-down', { skip: skipReason() }, () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  let served = 0;
  const dep = createServer((_req, res) => {
    served += 1;
    res.end('paid');
  });
  let depPort = 0;
  before(async () => {
    await new Promise<void>((r) => dep.listen(0, '127.0.0.1', r));
    depPort = (dep.address() as { port: number }).port;
    const extra = `checks:
  payments:
    type: http
    url: http://127.0.0.1:${depPort}/
    interval: 300ms
    timeout: 500ms
    dependency: true
    service: web
alerts:
  payments_down:
    signal: check_up
    where: { check: payments }
    condition: "< 1"
    for: 0s
    severity: critical
    summary: "dependency {{check}} is down"
`;
    up = await startUp({
      dataDir,
      config: serviceYaml({
        source: fixture('dependent'),
        instances: 2,
        env: { DEPENDENCY_URL: `http://127.0.0.1:${depPort}/`, DEPENDENCY_TIMEOUT_MS: '500' },
        extra,
      }),
    });
  });
  after(async () => {
    cleanup(root, up);
    await new Promise<void>((r) => dep.close(() => r()));
  });

  test('the service loses its dependency, the check goes down, alerts fire, everything is restored', async () => {
    const r = await cli(
      dataDir,
      'drill',
      'dependency-down',
      '--service',
      'web',
      '--dependency',
      'payments',
      '--outage',
      '4s',
      '--rate',
      '40',
      '--before',
      '1s',
      '--after',
      '2s',
      '--max-failed',
      '100000',
      '--json',
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const rep = JSON.parse(r.stdout) as DrillReport & { id: string };
    // Before: the app reached its dependency; during: it could not (502s through the proxy); after: again.
    assert.equal(rep.phases.before.failed, 0, JSON.stringify(rep.phases.before));
    assert.ok(rep.phases.during.failed > 0, JSON.stringify(rep.phases.during));
    assert.ok((rep.phases.during.byStatus['502'] ?? 0) > 0, JSON.stringify(rep.phases.during.byStatus));
    assert.equal(rep.phases.after.failed, 0, JSON.stringify(rep.phases.after));
    assert.ok((rep.errorRateDuring ?? 0) > 0.2, String(rep.errorRateDuring));
    // Detected by the dependency check, recovered after the outage.
    assert.ok(
      typeof rep.timeToDetectMs === 'number' && rep.timeToDetectMs < 4000,
      String(rep.timeToDetectMs),
    );
    assert.ok((rep.timeToRecoverMs ?? 0) >= 4000, String(rep.timeToRecoverMs));
    const states = (rep.fault as { checkStates: Array<{ state: string }> }).checkStates.map((s) => s.state);
    assert.ok(states.includes('down'), states.join(','));
    assert.equal(states.at(-1), 'up');
    // The alert on the dependency check fired and resolved within the drill.
    const alert = rep.alerts?.find((a) => a.name === 'payments_down');
    assert.ok(alert, JSON.stringify(rep.alerts));
    assert.ok(alert.resolvedAt !== null && alert.resolvedAt > alert.firedAt, JSON.stringify(alert));
    // Only the fleet's processes were cut off: this process reaches the dependency, nothing is left over.
    const before = served;
    const res = await fetch(`http://127.0.0.1:${depPort}/`);
    assert.equal(await res.text(), 'paid');
    // At least ours: the check's own probes keep arriving meanwhile (once, one landed in between).
    assert.ok(served >= before + 1, `${served} served, ${before} before`);
    assert.doesNotMatch(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }), /nines_drill_/);
    const cg = readFileSync('/proc/self/mounts', 'utf8').match(/ (\/sys\/fs\/cgroup\S*) cgroup2 /)?.[1];
    assert.ok(cg !== undefined);
    assert.deepEqual(
      readdirSync(cg).filter((d) => d.startsWith('nines-drill-')),
      [],
      'drill cgroups removed',
    );
    const shown = await cli(dataDir, 'drills', rep.id);
    assert.match(shown.stdout, /alerts raised: \d+\n +critical +payments_down fired \+[\d.]+ s, resolved/);
    assert.match(shown.stdout, /error rate during the fault: [\d.]+ %/);
  });

  test('refuses a dependency that is not declared, changing nothing', async () => {
    const r = await cli(dataDir, 'drill', 'dependency-down', '--service', 'web', '--dependency', 'nope');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /NINES_E_DRILL_REFUSED.*no check named "nope" is declared/);
    const missing = await cli(dataDir, 'drill', 'dependency-down', '--service', 'web');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /NINES_E_VALIDATION: dependency-down needs --dependency/);
    assert.doesNotMatch(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }), /nines_drill_/);

    // One cut-off at a time (a process is in one drill cgroup only).
    const fault = { kind: 'dependency-down', service: 'web', check: 'payments', durationMs: 1000 };
    const first = await up!.client.post<{ result: { ok: boolean; message: string } }>(
      '/v1/drills/faults',
      fault,
    );
    assert.equal(first.result.ok, true, first.result.message);
    await assert.rejects(up!.client.post('/v1/drills/faults', fault), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'NINES_E_DRILL_REFUSED');
      assert.match(err.message, /another dependency-down drill is in progress/);
      return true;
    });
    await new Promise((r) => setTimeout(r, 2000));
    assert.doesNotMatch(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }), /nines_drill_/);
  });
});
