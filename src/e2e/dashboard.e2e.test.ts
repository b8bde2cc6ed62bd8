import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
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
 * and see a read-only token's buttons disabled. Screenshots of each page go to test-results/dashboard/.
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
  after(async () => {
    await browser?.close().catch(() => {});
    cleanup(root, up);
  });

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
    const shot = (page: Page, name: string) =>
      page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful') }) });
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
      await page.goto(`${base}/`);
      await page.getByLabel('API token').fill(token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('#who').waitFor();
    };

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

    // ---- deploys: the plan, then start, then the live timeline to done ----------------------------------
    await page.getByRole('link', { name: 'Deploys' }).click();
    await page.getByLabel('Service').selectOption('web');
    await page.getByLabel('Release').selectOption('v2');
    await page
      .locator('#deploy-plan', { hasText: 'rolling, maxSurge 1, maxUnavailable 0: 3 old → 3 new' })
      .waitFor();
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
    const { token: readToken } = await createToken(store, 'read', 'dashboard-e2e').finally(() =>
      store.close(),
    );
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
});
