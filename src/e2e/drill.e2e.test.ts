import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import type { StatusView } from '../controller/status.js';
import type { DrillReport } from '../drill/drill.js';
import { cleanup, cli, fixture, serviceYaml, startUp, tempDir, type Up } from './harness.js';

/**
 * Issue 8, drills: `nines drill` puts bounded load on the service's own proxy route, injects the fault
 * through the controller and the agent, and reports and stores what the load saw. Real platform, real
 * processes, a real SIGKILL.
 */
describe('nines drill', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  before(async () => {
    // A paused schedule from the file (nines up applies drills: like checks).
    const extra = `drills:
  nightly:
    scenario: host-loss
    service: web
    cron: "30 3 * * *"
    proxy: http://127.0.0.1:9
    enabled: false
`;
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful'), extra }) });
    const rel = await cli(dataDir, 'release', 'web', fixture('graceful'), '--version', 'v2');
    assert.equal(rel.code, 0, rel.stderr);
  });
  after(() => cleanup(root, up));

  const drill = async (...args: string[]) => {
    const r = await cli(dataDir, 'drill', ...args, '--json');
    return {
      ...r,
      report:
        r.code === 0 || r.code === 1 ? (JSON.parse(r.stdout) as DrillReport & { id: string }) : undefined,
    };
  };

  test('instance-kill: SIGKILL through the agent, detected, recovered, 0 failed, stored', async () => {
    const before = await up!.client.get<StatusView>('/v1/status');
    const r = await drill(
      'instance-kill',
      '--service',
      'web',
      '--rate',
      '100',
      '--before',
      '1s',
      '--after',
      '1s',
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const rep = r.report!;
    assert.equal(rep.passed, true, JSON.stringify(rep.reasons));
    assert.equal(rep.failed, 0, JSON.stringify(rep.phases));
    assert.ok(
      rep.phases.before.sent >= 50 && rep.phases.during.sent > 0 && rep.phases.after.sent >= 50,
      JSON.stringify(rep.phases),
    );
    assert.equal(rep.sent, rep.phases.before.sent + rep.phases.during.sent + rep.phases.after.sent);
    assert.ok(typeof rep.timeToDetectMs === 'number' && rep.timeToDetectMs >= 0, String(rep.timeToDetectMs));
    assert.ok(
      typeof rep.timeToRecoverMs === 'number' && rep.timeToRecoverMs >= (rep.timeToDetectMs ?? 0),
      String(rep.timeToRecoverMs),
    );
    // The kill was real: the agent restarted that instance once.
    const killed = (rep.fault as { instance: string }).instance;
    const afterStatus = await up!.client.get<StatusView>('/v1/status');
    const was = before.instances.find((i) => i.id === killed);
    const now = afterStatus.instances.find((i) => i.id === killed);
    assert.ok(was && now, `instance ${killed} known before and after`);
    assert.equal(now.restarts, was.restarts + 1);
    assert.ok(now.healthy && now.state === 'running');

    const list = await cli(dataDir, 'drills', '--service', 'web', '--json');
    assert.equal(list.code, 0, list.stderr);
    const { drills } = JSON.parse(list.stdout) as {
      drills: Array<{ id: string; outcome: string; scenario: string }>;
    };
    assert.deepEqual(drills[0], { ...drills[0], id: rep.id, outcome: 'passed', scenario: 'instance-kill' });
    const one = await cli(dataDir, 'drills', rep.id);
    assert.match(one.stdout, /drill instance-kill of web .*: PASSED/);
    assert.match(one.stdout, /^ {2}during /m);
  });

  test('deploy: to v2 and back under load, 0 failed, the service ends on its own release', async () => {
    const r = await drill(
      'deploy',
      '--service',
      'web',
      '--version',
      'v2',
      '--rate',
      '100',
      '--before',
      '500ms',
      '--after',
      '500ms',
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const rep = r.report!;
    assert.equal(rep.failed, 0, JSON.stringify(rep.phases));
    assert.ok(rep.phases.during.sent > 100, JSON.stringify(rep.phases));
    const deploys = (rep.fault as { deploys: Array<{ to: string; state: string }> }).deploys;
    assert.deepEqual(
      deploys.map((d) => [d.to, d.state]),
      [
        ['v2', 'succeeded'],
        ['v1', 'succeeded'],
      ],
    );
    const status = await up!.client.get<StatusView>('/v1/status');
    assert.equal(status.services.find((s) => s.name === 'web')?.currentRelease, 'v1');
  });

  test('controller-loss: the data plane serves on while agents and proxies cannot reach the controller', async () => {
    const r = await drill(
      'controller-loss',
      '--service',
      'web',
      '--outage',
      '2s',
      '--before',
      '500ms',
      '--after',
      '500ms',
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal(r.report!.failed, 0);
    assert.ok((r.report!.timeToRecoverMs ?? 0) >= 2000, String(r.report!.timeToRecoverMs));
  });

  test('refuses what nines does not manage, and bad bounds, changing nothing', async () => {
    const unknown = await cli(dataDir, 'drill', 'instance-kill', '--service', 'nope');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /NINES_E_DRILL_REFUSED/);

    // Some other server: not a nines proxy route of the service.
    const other = createServer((_req, res) => res.end('not nines'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const port = (other.address() as { port: number }).port;
    const foreign = await cli(
      dataDir,
      'drill',
      'instance-kill',
      '--service',
      'web',
      '--proxy',
      `http://127.0.0.1:${port}`,
    );
    other.close();
    assert.equal(foreign.code, 2, foreign.stderr);
    assert.match(foreign.stderr, /NINES_E_DRILL_REFUSED.*not a nines proxy route/);

    const tooFast = await cli(dataDir, 'drill', 'instance-kill', '--service', 'web', '--rate', '100000');
    assert.equal(tooFast.code, 2);
    assert.match(tooFast.stderr, /NINES_E_VALIDATION: --rate must be from 1 to 2000/);

    const scenario = await cli(dataDir, 'drill', 'meteor', '--service', 'web');
    assert.equal(scenario.code, 2);
    assert.match(scenario.stderr, /NINES_E_VALIDATION: unknown drill "meteor"/);

    const list = JSON.parse((await cli(dataDir, 'drills', '--json')).stdout) as { drills: unknown[] };
    assert.equal(list.drills.length, 3, 'refused drills are not recorded');
  });

  test('scheduled: the leader runs a cron drill under load through the proxy and stores it', async () => {
    // Every minute (UTC): due at the next minute boundary, picked up within the leader's 10 s look.
    const put = await up!.client.put<{ created: boolean }>('/v1/drill-schedules/every-minute', {
      scenario: 'instance-kill',
      service: 'web',
      cron: '* * * * *',
      proxy: up!.info.proxyUrl,
      rate: 40,
      before: '500ms',
      after: '500ms',
    });
    assert.equal(put.created, true);
    const listed = await cli(dataDir, 'drill-schedules');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^every-minute +web +instance-kill +cron \* \* \* \* \*/m);
    assert.match(listed.stdout, /^nightly +web +host-loss +cron 30 3 \* \* \* .* paused$/m);
    const deadline = Date.now() + 100_000;
    let found: { id: string; outcome: string; createdBy: string; result: DrillReport } | undefined;
    while (!found && Date.now() < deadline) {
      const { drills } = await up!.client.get<{
        drills: Array<{ id: string; outcome: string; createdBy: string; result: DrillReport }>;
      }>('/v1/drills?service=web');
      found = drills.find((d) => d.createdBy === 'schedule every-minute');
      if (!found) await new Promise((r) => setTimeout(r, 1000));
    }
    // Stop it before asserting, so no second run starts while the test ends.
    await up!.client.delete('/v1/drill-schedules/every-minute');
    assert.ok(found, 'a scheduled drill was stored within 100 s');
    assert.equal(found.outcome, 'passed', JSON.stringify(found.result.reasons ?? found.result));
    assert.equal(found.result.failed, 0);
    assert.ok(found.result.phases.during.sent > 0);
    assert.ok(Array.isArray(found.result.alerts));
    const shown = await cli(dataDir, 'drills', found.id);
    assert.match(shown.stdout, /drill instance-kill of web .*: PASSED/);
  });

  test('the dashboard shows the results, one in full with its alerts, and the schedules', async (t) => {
    const chromiumPath = process.env.NINES_CHROMIUM ?? '/usr/bin/chromium';
    if (!existsSync(chromiumPath)) {
      t.skip('chromium not found: apt-get install chromium');
      return;
    }
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
      ],
    });
    try {
      const page = await browser.newPage();
      const admin = readFileSync(up!.info.adminTokenFile, 'utf8').trim();
      await page.goto(`${up!.info.apiUrl}/`);
      await page.getByLabel('API token').fill(admin);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('#who').waitFor();
      await page.getByRole('link', { name: 'Drills' }).click();
      const rows = page.locator('#drills tbody tr');
      await rows.first().waitFor();
      const { drills } = await up!.client.get<{ drills: Array<{ id: string; scenario: string }> }>(
        '/v1/drills',
      );
      assert.equal(await rows.count(), drills.length);
      const kill = drills.find((d) => d.scenario === 'instance-kill');
      assert.ok(kill);
      const row = page.locator(`tr[data-drill="${kill.id}"]`);
      assert.match((await row.textContent()) ?? '', /instance-kill.*passed.*0\/\d+/);
      await row.getByRole('button').click();
      const detail = page.locator('#drill-detail');
      await detail.waitFor();
      assert.match(
        (await detail.textContent()) ?? '',
        /instance-kill of web: passed.*during.*Alerts raised/s,
      );
      // The file's paused schedule; the per-minute one was removed.
      const schedules = page.locator('#drill-schedules tbody tr');
      assert.equal(await schedules.count(), 1);
      assert.match(
        (await schedules.first().textContent()) ?? '',
        /nightly.*host-loss.*cron 30 3 \* \* \* \(UTC\).*paused/,
      );
    } finally {
      await browser.close();
    }
  });
});
