import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { verifyWebhookSignature } from '../controller/alerting/channels/webhook.js';
import { cleanup, cli, fixture, serviceYaml, sleep, startUp, tempDir, type Up } from './harness.js';
import { Receiver } from './receivers.js';

/**
 * Issue 6, "an app that starts failing": a real `nines up` serves a healthy release through its proxy
 * under steady traffic; a release that answers 500 on 3 of every 10 requests (fixtures/apps/flaky) is
 * rolled out. The proxy's request counts reach the controller, and both kinds of rule page a signed
 * webhook: a plain rule on `service_error_ratio_5m` and the service's SLO (99.9 %: a 30 % error share
 * burns the budget 300× — every window of the workbook table fires, each as its burn crosses its
 * factor; the group interval is 0 so the later ones are not batched 5 min behind the first). Nothing pages before the failing
 * release; the deploy's own silence does not hide service-level alerts.
 */
const SECRET = 'e2e-app-failing-secret-0123456789';

describe('alerting: an app that starts failing', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  let hooks: Receiver;
  let stopLoad = false;
  let load: Promise<void> | undefined;
  const answers = new Map<number, number>();

  before(async () => {
    hooks = await new Receiver(200).listen();
  });
  after(async () => {
    stopLoad = true;
    await load;
    cleanup(root, up);
    await hooks.close();
  });

  const bodies = () =>
    hooks.on('/hook').map((g) => ({ ...g, json: JSON.parse(g.body) as Record<string, unknown> }));
  async function until<T>(what: string, ms: number, f: () => T | undefined | false) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = f();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await sleep(200);
    }
  }

  test('a release answering 30 % 5xx pages the error-ratio rule and the SLO burn, once each', async () => {
    const extra = `    slo: { objective: 99.9% }
alerts:
  web_errors:
    signal: service_error_ratio_5m
    where: { service: web }
    condition: "> 0.1"
    for: 2s
    severity: error
    summary: "{{service}} answers {{value}} 5xx"
channels:
  hook: { kind: webhook, url: "${hooks.base}/hook", secret: "${SECRET}" }
alerting:
  notify: [hook]
  groupWait: 0s
  groupInterval: 0s
`;
    up = await startUp({
      dataDir,
      config: serviceYaml({ source: fixture('graceful'), instances: 2, extra }),
    });
    const url = up.info.proxyUrl;
    // Steady traffic, about 50 requests a second, for the whole test.
    load = (async () => {
      while (!stopLoad) {
        try {
          const r = await fetch(url);
          await r.arrayBuffer();
          answers.set(r.status, (answers.get(r.status) ?? 0) + 1);
        } catch {
          answers.set(0, (answers.get(0) ?? 0) + 1);
        }
        await sleep(20);
      }
    })();
    await sleep(5000);
    assert.equal(hooks.got.length, 0, 'a healthy release pages nobody');
    assert.ok((answers.get(200) ?? 0) > 50, `traffic flows: ${JSON.stringify([...answers])}`);
    assert.equal(answers.get(500) ?? 0, 0);

    const rel = await cli(dataDir, 'release', 'web', fixture('flaky'), '--version', 'v2');
    assert.equal(rel.code, 0, rel.stderr);
    const dep = await cli(dataDir, 'deploy', 'web', 'v2');
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);

    const firing = (rule: string) =>
      bodies().filter((b) => b.json.rule === rule && b.json.transition === 'firing');
    const errors = await until('the web_errors webhook', 30_000, () => firing('web_errors')[0]);
    const slo = await until('the three SLO burn webhooks', 30_000, () => {
      const f = firing('slo_burn');
      return f.length >= 3 ? f : undefined;
    });
    assert.ok((answers.get(500) ?? 0) > 0, 'the proxy answered 500s');
    for (const b of [errors, ...slo])
      assert.ok(
        verifyWebhookSignature(SECRET, b.headers['x-nines-signature'] as string, b.body, Date.now() / 1000),
      );
    assert.equal(errors.json.severity, 'error');
    assert.deepEqual(errors.json.labels, { alertname: 'web_errors', service: 'web' });
    assert.ok((errors.json.value as number) > 0.1 && (errors.json.value as number) <= 0.3 + 1e-9);
    assert.match(errors.json.summary as string, /^web answers \S+ 5xx$/);
    assert.deepEqual(
      slo.map((b) => `${(b.json.labels as Record<string, string>).window}:${b.json.severity}`).sort(),
      ['page-1h:critical', 'page-6h:critical', 'ticket-3d:warning'],
    );
    // The error share climbs as the rollout replaces instances, so each window fires when its burn
    // (error share / 0.001, the smaller of its long and short window's) crosses its own factor.
    const factor: Record<string, number> = { 'page-1h': 14.4, 'page-6h': 6, 'ticket-3d': 1 };
    for (const b of slo) {
      const labels = b.json.labels as Record<string, string>;
      assert.equal(labels.service, 'web');
      assert.ok(
        (b.json.value as number) >= (factor[labels.window ?? ''] ?? 0),
        `${labels.window}: burn ${b.json.value}`,
      );
    }
    await sleep(3000);
    assert.equal(firing('web_errors').length, 1, 'fired once');
    assert.equal(firing('slo_burn').length, 3, 'each window fired once');
  });
});
