import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import { createToken } from './auth.js';
import { Controller } from './controller.js';
import { openSqliteStore } from './store/sqlite.js';
import type { Store } from './store/types.js';

/** The dashboard's own endpoints: the service charts and the stream's alerts event. */
describe('dashboard endpoints', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-web-'));
  let store: Store;
  let controller: Controller;
  let reader = '';

  before(async () => {
    store = await openSqliteStore({ file: ':memory:' });
    controller = new Controller({
      store,
      dataDir: dir,
      logger: pino({ level: 'silent' }),
      host: '127.0.0.1',
      port: 0,
    });
    await controller.bootstrapTokens();
    reader = (await createToken(store, 'read', 'viewer')).token;
    await controller.start();
  });
  after(async () => {
    await controller.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = async (path: string, token?: string) => {
    const res = await request(`${controller.url}${path}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
  };

  test('GET /v1/signals/services: rates from proxy reports, for read tokens; bad input refused', async () => {
    controller.signals.proxyReport('p1', [{ name: 'web', requests: 0, failed: 0 }]);
    await new Promise((r) => setTimeout(r, 200));
    controller.signals.proxyReport('p1', [{ name: 'web', requests: 40, failed: 4 }]);
    assert.equal((await get('/v1/signals/services')).status, 401);
    const r = await get('/v1/signals/services?minutes=5&stepSeconds=1', reader);
    assert.equal(r.status, 200);
    const services = r.json.services as Array<{
      service: string;
      points: Array<{ requestsPerSecond: number; errorRatio: number | null }>;
    }>;
    const web = services.find((s) => s.service === 'web');
    assert.equal(web?.points.length, 1);
    assert.ok((web?.points[0]?.requestsPerSecond ?? 0) > 0);
    assert.equal(web?.points[0]?.errorRatio, 0.1);
    for (const q of ['minutes=0', 'minutes=abc', 'minutes=361', 'stepSeconds=0']) {
      const bad = await get(`/v1/signals/services?${q}`, reader);
      assert.equal(bad.status, 400, q);
      assert.equal((bad.json.error as { code: string }).code, 'NINES_E_VALIDATION');
    }
  });

  test('the stream carries the alerts, and their changes', async () => {
    const ac = new AbortController();
    const res = await fetch(`${controller.url}/v1/stream`, {
      headers: { authorization: `Bearer ${reader}` },
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    const reader_ = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    const nextAlerts = async (want: (a: Array<{ dedupKey: string }>) => boolean) => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        for (const block of buf.split('\n\n')) {
          const m = /^event: alerts\ndata: (.*)$/m.exec(block);
          if (m?.[1]) {
            const alerts = (JSON.parse(m[1]) as { alerts: Array<{ dedupKey: string }> }).alerts;
            if (want(alerts)) return alerts;
          }
        }
        assert.ok(Date.now() < deadline, 'an alerts event within 10 s');
        const { value, done } = await reader_.read();
        assert.ok(!done);
        buf += value;
      }
    };
    try {
      await nextAlerts((a) => a.length === 0);
      const key = 'ab'.repeat(16);
      const now = Date.now();
      await controller.alerts.putAlert({
        dedupKey: key,
        ruleId: 'dash_test',
        labels: { alertname: 'dash_test' },
        severity: 'warning',
        summary: 'a test alert',
        state: 'firing',
        activeSince: now,
        firedAt: now,
        suppressed: null,
        updatedAt: now,
      });
      await nextAlerts((a) => a.some((x) => x.dedupKey === key));
    } finally {
      ac.abort();
    }
  });
});
