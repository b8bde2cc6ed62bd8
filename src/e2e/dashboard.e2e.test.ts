import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { request } from 'undici';
import { createToken } from '../controller/auth.js';
import { openSqliteStore } from '../controller/store/sqlite.js';
import { cleanup, cli, fixture, repoRoot, serviceYaml, sleep, startUp, tempDir, type Up } from './harness.js';

/**
 * Issue 7, the dashboard in a real browser (Debian's chromium through playwright-core) against a real
 * `nines up`: sign in, see three instances of v1, start a rolling deploy to v2 from the Deploys page,
 * watch its timeline reach done (and the fleet go mixed, then all v2), roll back from the dashboard,
 * and see a read-only token's buttons disabled. Then the Alerts page: a check against a local server the
 * test breaks makes an alert fire; it shows, a read-only phone sees it with disabled buttons, the admin
 * acknowledges it with the keyboard, silences it, and sees it resolve into an incident; no page
 * overflows a 390 px wide screen. Screenshots of each page go to test-results/dashboard/.
 */

const CHROMIUM = process.env.NINES_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(repoRoot, 'test-results', 'dashboard');
// Without the background-networking flags, chromium's own connections are refused on a closed network
// and it stalls; --no-sandbox because CI runs as root.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Wait until the page shows exactly `want` instance cards per version (the fleet page). */
async function fleetShows(page: Page, want: Record<string, number>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got: Record<string, number> = {};
    for (const v of Object.keys(want)) got[v] = await page.locator(`li.inst[data-version="${v}"]`).count();
    if (Object.entries(want).every(([v, n]) => got[v] === n)) return;
    if (Date.now() > deadline)
      assert.fail(`the fleet shows ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    await sleep(100);
  }
}

describe('dashboard in a real browser', () => {
  const root = tempDir('nines-dash-');
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  let browser: Browser | undefined;
  // A dependency the second test breaks: a check probes it; an alert rule fires when the check is down.
  let depStatus = 200;
  const dep = createServer((_q, res) => {
    res.writeHead(depStatus, { 'content-type': 'application/json' }).end(`{"ok":${depStatus === 200}}`);
  });
  let readToken = '';
  after(async () => {
    await browser?.close().catch(() => {});
    cleanup(root, up);
    dep.closeAllConnections();
    await new Promise((r) => dep.close(r));
  });
  const shot = (page: Page, name: string) =>
    page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const problems: string[] = [];
  const newPage = async (ctx: BrowserContext) => {
    const page = await ctx.newPage();
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.setDefaultTimeout(15_000);
    return page;
  };
  const signIn = async (page: Page, token: string) => {
    await page.goto(`${up!.info.apiUrl}/`);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#who').waitFor();
  };

  test('sign in, switch read-only and see a POST refused, deploy v2 and watch it, roll back, read-only token sees disabled buttons', {
    timeout: 120_000,
  }, async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip('chromium not found: apt-get install chromium');
      return;
    }
    const built = join(repoRoot, 'dist', 'web', 'index.html');
    assert.ok(existsSync(built), `the dashboard is not built (${built}): run npm run build:web`);
    mkdirSync(SHOTS, { recursive: true });

    await new Promise<void>((r) => dep.listen(0, '127.0.0.1', r));
    const depPort = (dep.address() as AddressInfo).port;
    const extra = `checks:
  payments:
    type: http
    url: http://127.0.0.1:${depPort}/health
    json: { path: $.ok, equals: true }
    interval: 300ms
    timeout: 1s
    dependency: true
alerts:
  payments_down:
    signal: check_up
    where: { check: payments }
    condition: "< 1"
    for: 1s
    severity: critical
    summary: "dependency {{check}} is down"
alerting:
  groupWait: 0s
  groupInterval: 0s
`;
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful'), extra }) });
    const rel = await cli(dataDir, 'release', 'web', fixture('graceful'), '--version', 'v2');
    assert.equal(rel.code, 0, rel.stderr);
    const admin = up.client.target.token;
    const base = up.info.apiUrl;

    const index = await fetch(`${base}/`);
    assert.equal(
      index.status,
      200,
      `GET / answered ${index.status}: is registerWeb wired into the controller and are /, /index.html and /assets/* exempt from auth?`,
    );
    assert.equal((await fetch(`${base}/v1/stream`)).status, 401, 'the stream needs a token');

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });

    // ---- sign in; the fleet: three instances of v1 ---------------------------------------------------
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await newPage(ctx);
    await page.goto(`${base}/`);
    await shot(page, '0-sign-in');
    await signIn(page, admin);
    assert.match((await page.locator('#who').textContent()) ?? '', /admin \(admin\)/);
    await page.locator('#conn', { hasText: 'live' }).waitFor();
    await fleetShows(page, { v1: 3, v2: 0 });
    assert.equal(await page.locator('[data-testid=mixed-banner]').count(), 0);
    await shot(page, '1-fleet-v1');

    // ---- services: current release, both releases ---------------------------------------------------
    await page.getByRole('link', { name: 'Services' }).click();
    const web = page.locator('section[data-service=web]');
    await web.getByText('3 of 3 ready').waitFor();
    await web.locator('td [data-version=v2]').waitFor();
    await shot(page, '2-services');

    // ---- mode switch: read-only from the dashboard, a POST through the proxy is refused -------------
    const post = async () => {
      const r = await request(`${up!.info.proxyUrl}/`, { method: 'POST', body: 'x' });
      await r.body.text();
      return { status: r.statusCode, retryAfter: r.headers['retry-after'] };
    };
    assert.equal((await post()).status, 200);
    await web.getByLabel('Mode').selectOption('read-only');
    await web.locator('#mode-web').click();
    await web
      .locator('#mode-web-result', { hasText: /web is read-only: applied by 1 proxy in \d+ ms/ })
      .waitFor();
    await web.locator('#svc-web-mode', { hasText: 'read-only' }).waitFor();
    const refused = await post();
    assert.equal(refused.status, 503);
    assert.ok(refused.retryAfter, 'Retry-After is set');
    await shot(page, '2b-services-read-only');
    await web.getByLabel('Mode').selectOption('live');
    await web.locator('#mode-web').click();
    await web.locator('#svc-web-mode', { hasText: 'live' }).waitFor();
    assert.equal((await post()).status, 200);

    // A second tab (own sessionStorage, so its own sign-in) watches the fleet while the deploy runs.
    const watcher = await newPage(ctx);
    await signIn(watcher, admin);
    await fleetShows(watcher, { v1: 3 });
    // Each instance's CPU and memory, sampled by its agent from /proc (every 5 s; CPU needs two samples).
    await watcher
      .locator('[data-instance] [data-field="memory"]', { hasText: /MiB$/ })
      .first()
      .waitFor({ timeout: 20_000 });
    await watcher
      .locator('[data-instance] [data-field="cpu"]', { hasText: /^[\d.]+ %$/ })
      .first()
      .waitFor({ timeout: 20_000 });

    // ---- deploys: the plan, then start, then the live timeline to done ----------------------------------
    await page.getByRole('link', { name: 'Deploys' }).click();
    await page.getByLabel('Service').selectOption('web');
    await page.getByLabel('Release').selectOption('v2');
    await page
      .locator('#deploy-plan', { hasText: 'rolling, maxSurge 1, maxUnavailable 0: 3 old → 3 new' })
      .waitFor();
    // Other strategies: the same form plans them (the engine's own planners), before anything starts.
    const strategy = page.getByLabel('Strategy');
    await strategy.selectOption('canary');
    await page.locator('#deploy-plan', { hasText: 'send 10 % of new requests to v2' }).waitFor();
    await strategy.selectOption('blue-green');
    await page.locator('#deploy-plan', { hasText: 'switch every new request to them at once' }).waitFor();
    await strategy.selectOption('all-at-once');
    await page.locator('#deploy-plan', { hasText: 'users see the maintenance page for about' }).waitFor();
    await shot(page, '3a-deploy-plan-all-at-once');
    await strategy.selectOption('');
    await page.locator('#start-deploy', { hasText: 'Start rolling deploy' }).waitFor();
    await shot(page, '3-deploy-plan');
    await page.locator('#start-deploy').click();
    await page.waitForURL(/#\/deploys\/d-/);
    const mixed = watcher
      .locator('[data-testid=mixed-banner]', { hasText: '2 versions running' })
      .waitFor({ timeout: 30_000 })
      .then(() => shot(watcher, '4-fleet-mixed'));
    await page.locator('ol.timeline li[data-type="instance.routed"]').first().waitFor({ timeout: 30_000 });
    await shot(page, '5-deploy-running');
    await mixed;
    await page
      .locator('#deploy-result', { hasText: /^done: web v1 → v2 in [\d.]+ s/ })
      .waitFor({ timeout: 45_000 });
    // The releases' config, field by field (diffed by the controller).
    await page
      .locator('details.config-diff summary', { hasText: /^Config changes v1 → v2: (none|\d+)$/ })
      .waitFor();
    for (const type of [
      'instance.starting',
      'instance.healthy',
      'instance.routed',
      'instance.drained',
      'instance.stopped',
    ]) {
      assert.equal(
        await page.locator(`ol.timeline li[data-type="${type}"]`).count(),
        3,
        `three ${type} steps in the timeline`,
      );
    }
    assert.equal(await page.locator('ol.timeline li[data-type="deploy.succeeded"]').count(), 1);
    assert.equal(await page.locator('ol.timeline').getAttribute('aria-live'), 'polite');
    await shot(page, '6-deploy-done');

    await page.getByRole('link', { name: 'Fleet' }).click();
    await fleetShows(page, { v1: 0, v2: 3 });
    await shot(page, '7-fleet-v2');

    // ---- roll back from the dashboard ----------------------------------------------------------------
    await page.getByRole('link', { name: 'Deploys' }).click();
    const firstDeploy = page.url();
    await page.getByRole('button', { name: 'Roll back web to v1' }).click();
    await page.waitForURL((u) => /#\/deploys\/d-/.test(u.hash) && u.href !== firstDeploy);
    await page
      .locator('#deploy-result', { hasText: /^done: web v2 → v1 in [\d.]+ s/ })
      .waitFor({ timeout: 45_000 });
    await page.locator('table.history tbody tr').nth(1).waitFor();
    assert.match((await page.locator('table.history tbody tr').first().textContent()) ?? '', /rollback/);
    await shot(page, '8-rollback-done');
    await page.getByRole('link', { name: 'Fleet' }).click();
    await fleetShows(page, { v1: 3, v2: 0 });
    await shot(page, '9-fleet-v1-again');

    // ---- events: one searchable timeline ----------------------------------------------------------------
    await page.getByRole('link', { name: 'Events' }).click();
    await page.getByLabel('Filter events').fill('deploy.succeeded web');
    await page.locator('#events-count', { hasText: /^3 of \d+ events match/ }).waitFor();
    await shot(page, '10-events');

    // ---- a read-only token: everything visible, nothing changeable ------------------------------------
    // There is no token API yet: mint one in the running controller's SQLite store (WAL, shared safely).
    const store = await openSqliteStore({ file: join(dataDir, 'nines.db') });
    readToken = (await createToken(store, 'read', 'dashboard-e2e').finally(() => store.close())).token;
    const roCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const ro = await newPage(roCtx);
    await signIn(ro, readToken);
    assert.match((await ro.locator('#who').textContent()) ?? '', /dashboard-e2e \(read-only\)/);
    await ro.locator('#readonly-banner').waitFor();
    await fleetShows(ro, { v1: 3, v2: 0 });
    await shot(ro, '11-phone-fleet-read-only');
    await ro.getByRole('link', { name: 'Deploys' }).click();
    await ro.getByLabel('Release').selectOption('v2');
    await ro.locator('#deploy-plan', { hasText: '3 old → 3 new' }).waitFor();
    for (const id of ['#start-deploy', '#rollback']) {
      assert.equal(await ro.locator(id).isDisabled(), true, `${id} is disabled for a read-only token`);
      assert.match((await ro.locator(id).getAttribute('title')) ?? '', /read-only/);
    }
    await shot(ro, '12-phone-deploys-read-only');
    await ro.getByRole('link', { name: 'Services' }).click();
    assert.equal(
      await ro.locator('#mode-web').isDisabled(),
      true,
      'the mode switch is disabled for a read-only token',
    );

    assert.deepEqual(problems, [], 'no errors in the browser console');
  });
  test('alerts page: a failing check fires an alert, read-only sees it, admin acknowledges and silences it, it resolves into an incident; live service charts; no page overflows a phone', {
    timeout: 150_000,
  }, async (t) => {
    if (!up || !browser || !readToken) {
      t.skip('needs the first test (nines up, the browser and a read-only token)');
      return;
    }
    const u = up;
    const alertsOf = async () =>
      (
        await u.client.get<{
          alerts: { ruleId: string; state: string; acknowledged?: boolean; acknowledgedBy?: string }[];
        }>('/v1/alerts?all=1')
      ).alerts.filter((a) => a.ruleId === 'payments_down');

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await newPage(ctx);
    await signIn(page, u.client.target.token);
    await page.getByRole('link', { name: 'Alerts' }).click();
    await page.getByRole('heading', { level: 1, name: 'Alerts and checks' }).waitFor();
    const check = page.locator('#checks tr[data-check=payments]');
    await check.locator('.locations li[data-state=up]').first().waitFor({ timeout: 30_000 });
    await check.and(page.locator('[data-state=up]')).waitFor();
    await page.locator('#alerts-summary', { hasText: /^0 firing/ }).waitFor();
    await page.locator('#uptime tr[data-uptime="check:payments"]').waitFor();
    await page
      .locator('#uptime tr[data-uptime="service:web"] td[data-window="24h"]', { hasText: '%' })
      .waitFor();
    await shot(page, '13-alerts-quiet');

    // ---- break the dependency: the check goes down at its location, the alert fires ------------------
    depStatus = 503;
    const item = page.locator('li.alert[data-rule=payments_down]');
    await item.and(page.locator('[data-state=firing]')).waitFor({ timeout: 30_000 });
    await item.getByText('dependency payments is down').waitFor();
    await page.locator('#alerts-summary', { hasText: /^1 firing \(1 not acknowledged\)/ }).waitFor();
    await page.locator('#firing-badge', { hasText: '1' }).waitFor();
    await check.and(page.locator('[data-state=down]')).waitFor();
    await check.locator('.locations li[data-state=down]', { hasText: 'status 503' }).first().waitFor();
    await shot(page, '14-alert-firing');
    const ackId = await item.locator('button', { hasText: 'Acknowledge' }).getAttribute('id');
    assert.ok(ackId, 'the firing alert has an Acknowledge button');

    // ---- a read-only token on a phone sees the alert, and every action is disabled ---------------------
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const ro = await newPage(phone);
    await signIn(ro, readToken);
    await ro.getByRole('link', { name: 'Alerts' }).click();
    await ro.locator(`#${ackId}`).waitFor();
    for (const sel of [
      `#${ackId}`,
      '#silence-create',
      'li.alert[data-rule=payments_down] button:has-text("Silence")',
    ]) {
      assert.equal(await ro.locator(sel).isDisabled(), true, `${sel} is disabled for a read-only token`);
    }
    assert.match(
      (await ro.locator(`#${ackId}`).getAttribute('title')) ?? '',
      /read-only: it cannot acknowledge/,
    );
    assert.equal(await ro.locator('#silence-matchers').isDisabled(), true);
    await shot(ro, '15-phone-alerts-read-only');

    // ---- acknowledge with the keyboard; the state changes on the page and in the API ------------------
    await page.locator(`#${ackId}`).focus();
    await page.keyboard.press('Enter');
    await item.locator('.alert-state', { hasText: /acknowledged by admin/ }).waitFor();
    assert.equal(await page.locator('#firing-badge').count(), 0, 'no unacknowledged alert left in the badge');
    await page.locator('#alerts-summary', { hasText: /^1 firing \(0 not acknowledged\)/ }).waitFor();
    const acked = await alertsOf();
    assert.equal(acked[0]?.acknowledged, true);
    assert.match(acked[0]?.acknowledgedBy ?? '', /admin/);
    // The read-only phone sees it too, over its own stream.
    await ro
      .locator('li.alert[data-rule=payments_down] .alert-state', { hasText: /acknowledged by admin/ })
      .waitFor();
    await shot(page, '16-alert-acknowledged');

    // ---- silence it: matchers from the alert's labels, an end time, a comment ---------------------------
    await item.getByRole('button', { name: 'Silence…' }).click();
    const matchers = page.getByLabel('Matchers');
    // The form fills on the next render: poll rather than read once (it raced on a loaded CI machine).
    let filled = '';
    for (let t = Date.now(); Date.now() - t < 10_000; await new Promise((r) => setTimeout(r, 100))) {
      filled = await matchers.inputValue();
      if (/^alertname=payments_down, check=payments/.test(filled)) break;
    }
    assert.match(filled, /^alertname=payments_down, check=payments/);
    await page.getByLabel('Comment').fill('dependency maintenance');
    await page.getByLabel('Ends at').fill('2000-01-01T00:00');
    await page.locator('#silence-create').click();
    await page.getByRole('alert').filter({ hasText: 'the end time is in the past' }).waitFor();
    const inOneHour = new Date(Date.now() + 3_600_000);
    const pad = (n: number) => String(n).padStart(2, '0');
    await page
      .getByLabel('Ends at')
      .fill(
        `${inOneHour.getFullYear()}-${pad(inOneHour.getMonth() + 1)}-${pad(inOneHour.getDate())}T${pad(inOneHour.getHours())}:${pad(inOneHour.getMinutes())}`,
      );
    await page.locator('#silence-create').click();
    await page.locator('#silence-result', { hasText: /^Silence sil-\S+ created/ }).waitFor();
    await page.locator('#silences tr', { hasText: 'alertname=payments_down' }).waitFor();
    const sil = await u.client.get<{
      silences: { matchers: { name: string; value: string }[]; comment?: string }[];
    }>('/v1/silences');
    // (The deploys of the first test left silences of their own, for their grace period.)
    const mine = sil.silences.filter((x) => x.comment === 'dependency maintenance');
    assert.equal(mine.length, 1);
    assert.ok(mine[0]?.matchers.some((m) => m.name === 'check' && m.value === 'payments'));
    await page
      .locator('li.alert[data-rule=payments_down] .alert-state', { hasText: /withheld \(silence:/ })
      .waitFor({
        timeout: 15_000,
      });
    await shot(page, '17-alert-silenced');

    // ---- the dependency recovers: resolved, an incident with start, end and cause -------------------------
    depStatus = 200;
    await page
      .locator('#recent-alerts tr[data-state=resolved]', { hasText: 'dependency payments is down' })
      .waitFor({
        timeout: 30_000,
      });
    assert.equal(await item.count(), 0, 'nothing firing any more');
    await check.and(page.locator('[data-state=up]')).waitFor();
    const incident = page.locator('#incidents tr[data-incident=payments][data-open=false]');
    await incident.first().waitFor({ timeout: 40_000 });
    assert.match((await incident.first().textContent()) ?? '', /503/);
    await shot(page, '18-alerts-resolved');

    // ---- services: live charts of request rate, 5xx share and p99 ---------------------------------------
    for (let i = 0; i < 60; i++) {
      const r = await request(`${u.info.proxyUrl}/`);
      await r.body.text();
    }
    await page.getByRole('link', { name: 'Services' }).click();
    const charts = page.locator('#charts-web');
    await charts
      .locator('#charts-web-rate .spark-value', { hasText: /req\/s$/ })
      .waitFor({ timeout: 20_000 });
    await charts.locator('#charts-web-p99 .spark-value', { hasText: /ms$/ }).waitFor({ timeout: 20_000 });
    await charts.locator('#charts-web-5xx .spark-value', { hasText: /%$/ }).waitFor();
    assert.ok((await charts.locator('#charts-web-rate path.spark-line').count()) === 1, 'the rate is drawn');
    await shot(page, '19-services-charts');

    // ---- fleet: each host's CPU and memory use, from the agent's host signals ---------------------------
    await page.getByRole('link', { name: 'Fleet' }).click();
    await page
      .locator('[data-host-load]', { hasText: /CPU \d+ % · memory \d+ % used/ })
      .first()
      .waitFor({ timeout: 20_000 });

    // ---- a phone-sized screen: no page scrolls sideways ---------------------------------------------------
    for (const p of ['fleet', 'services', 'deploys', 'alerts', 'events']) {
      await ro.goto(`${u.info.apiUrl}/#/${p}`);
      await ro.locator('h1').first().waitFor();
      await ro.waitForTimeout(300);
      const { scroll, width } = await ro.evaluate<{ scroll: number; width: number }>(
        '({ scroll: document.documentElement.scrollWidth, width: window.innerWidth })',
      );
      // A mobile browser widens its layout viewport to the content: compare with the screen, not innerWidth.
      assert.ok(
        scroll <= 390 && width <= 390,
        `#/${p} overflows a 390 px screen: ${scroll} px of content, a ${width} px layout viewport`,
      );
      await shot(ro, `20-phone-${p}`);
    }
    assert.deepEqual(problems, [], 'no errors in the browser console');
  });
});
