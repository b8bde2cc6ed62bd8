import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { type AlertingConfigInput, alertingConfigSchema } from '../../core/alerting-config.js';
import { Receiver } from '../../e2e/receivers.js';
import type { KyselyStore } from '../store/kysely-store.js';
import { openSqliteKyselyStore } from '../store/sqlite.js';
import { deploy, host, instance, release, spec1 } from '../store/store-suite.js';
import { verifyAckToken } from './channels/ack.js';
import { verifyWebhookSignature } from './channels/webhook.js';
import type { Sample } from './lifecycle.js';
import { AlertRuntime } from './runtime.js';
import {
  FleetSignals,
  ModuleSignals,
  RequestSignals,
  type SignalSource,
  type SignalsModule,
} from './sources.js';
import { AlertStore } from './store.js';
import { MINUTE, SECOND } from './types.js';

const SECRET = 'whsec-0123456789abcdef';
const T0 = Date.parse('2026-12-01T10:00:00Z');

/** The signal source the test drives: the values it reports are what the test sets. */
class TestSignals implements SignalSource {
  readonly name = 'test';
  samples: Sample[] = [];
  collect(): Sample[] {
    return this.samples;
  }
  set(signal: string, labels: Record<string, string>, value: number | undefined) {
    this.samples = this.samples.filter(
      (s) => !(s.signal === signal && JSON.stringify(s.labels) === JSON.stringify(labels)),
    );
    this.samples.push({ signal, labels, value });
  }
}

describe('alert runtime: rules → lifecycle → grouped, deduplicated deliveries', () => {
  let hooks: Receiver;
  let store: KyselyStore;
  let alerts: AlertStore;
  let clock: number;
  let signals: TestSignals;
  let requests: RequestSignals;

  before(async () => {
    hooks = await new Receiver().listen();
  });
  after(async () => {
    await hooks.close();
  });
  beforeEach(async () => {
    hooks.got.length = 0;
    store = await openSqliteKyselyStore({ file: ':memory:' });
    alerts = new AlertStore(store.kysely);
    clock = T0;
    signals = new TestSignals();
    requests = new RequestSignals(store);
  });

  async function configure(c: AlertingConfigInput) {
    await alerts.putConfig(alertingConfigSchema.parse(c), 'test', clock);
  }
  function runtime(id = 'c1', sources: SignalSource[] = [signals], skewMs = 0) {
    return new AlertRuntime({
      alerts,
      store,
      sources,
      requests,
      controllerId: id,
      ackSecret: () => 'ack-secret',
      baseUrl: () => 'http://nines.test',
      logger: pino({ level: 'silent' }),
      now: () => clock + skewMs,
    });
  }
  async function tick(rt: AlertRuntime, advanceMs = 0) {
    clock += advanceMs;
    await rt.tick();
    await rt.settle();
  }
  const bodies = (path: string) => hooks.on(path).map((g) => JSON.parse(g.body) as Record<string, unknown>);

  const base = (): AlertingConfigInput => ({
    alerts: {
      instance_down: {
        signal: 'instance_healthy',
        condition: '< 1',
        for: '30s',
        severity: 'critical',
        summary: '{{instance}} of {{service}} is unhealthy',
      },
      host_down: { signal: 'host_up', condition: '== 0', for: '10s', severity: 'critical' },
    },
    channels: {
      hook: { kind: 'webhook', url: `${hooks.base}/hook`, secret: SECRET },
      pd: { kind: 'pagerduty', routingKey: 'R'.repeat(32), url: `${hooks.base}/pd` },
    },
    alerting: { notify: ['hook', 'pd'], groupWait: 0, groupInterval: 0 },
  });

  it('pending → firing after `for` → resolved: one signed notification per transition and channel', async () => {
    await configure(base());
    const rt = runtime();
    signals.set('instance_healthy', { service: 'web', instance: 'web-1', host: 'h1' }, 0);
    await tick(rt);
    assert.equal((await alerts.listAlerts())[0]?.state, 'pending');
    assert.equal(hooks.got.length, 0, 'pending notifies nobody');
    await tick(rt, 29 * SECOND);
    assert.equal(hooks.got.length, 0);
    await tick(rt, SECOND);
    const [a] = await alerts.listAlerts();
    assert.equal(a?.state, 'firing');
    assert.equal(hooks.on('/hook').length, 1);
    assert.equal(hooks.on('/pd').length, 1);
    await tick(rt, SECOND);
    await tick(rt, SECOND);
    assert.equal(hooks.on('/hook').length, 1, 'still firing: no second notification');

    const h = hooks.on('/hook')[0];
    assert.ok(h);
    assert.ok(
      verifyWebhookSignature(SECRET, h.headers['x-nines-signature'] as string, h.body, Date.now() / 1000),
    );
    const w = bodies('/hook')[0] as Record<string, unknown>;
    assert.equal(w.transition, 'firing');
    assert.equal(w.summary, 'web-1 of web is unhealthy');
    assert.equal(w.dedupKey, a?.dedupKey);
    const token = new URL(w.ackUrl as string).searchParams.get('token') ?? '';
    const v = verifyAckToken('ack-secret', token, clock);
    assert.ok(v.ok && v.dedupKey === a?.dedupKey);
    const pd = bodies('/pd')[0] as {
      event_action: string;
      dedup_key: string;
      routing_key: string;
      payload: { severity: string; source: string };
    };
    assert.equal(pd.event_action, 'trigger');
    assert.equal(pd.dedup_key, a?.dedupKey);
    assert.equal(pd.routing_key, 'R'.repeat(32));
    assert.equal(pd.payload.severity, 'critical');
    assert.equal(pd.payload.source, 'web-1');

    signals.set('instance_healthy', { service: 'web', instance: 'web-1', host: 'h1' }, 1);
    await tick(rt, SECOND);
    await tick(rt, SECOND);
    assert.deepEqual(
      bodies('/hook').map((b) => b.transition),
      ['firing', 'resolved'],
    );
    assert.deepEqual(
      bodies('/pd').map((b) => b.event_action),
      ['trigger', 'resolve'],
    );
    const events = (await alerts.listEvents(a?.dedupKey ?? '')).map((e) => e.type);
    assert.deepEqual(events, ['pending', 'firing', 'resolved']);
    // Every attempt is in the log.
    const ds = await alerts.listDeliveries(a?.dedupKey);
    assert.equal(ds.length, 4);
    assert.ok(ds.every((d) => d.state === 'sent'));
    assert.equal((await alerts.listAttempts(ds[0]?.key ?? '')).length, 1);
  });

  it('a new leader does not resolve an alert whose series has no sample yet; after its warm-up, a gone series resolves', async () => {
    await configure(base());
    const first = runtime('c1');
    signals.set('host_up', { host: 'h1' }, 0);
    await tick(first);
    await tick(first, 10 * SECOND);
    assert.deepEqual(
      bodies('/hook').map((b) => b.transition),
      ['firing'],
    );
    // Another controller takes over; its sources have nothing for h1 yet (reports still coming in).
    signals.samples = [];
    const next = runtime('c2');
    next.begin();
    await tick(next, SECOND);
    await tick(next, 10 * SECOND);
    assert.equal((await alerts.listAlerts())[0]?.state, 'firing', 'no data yet is not a recovery');
    signals.set('host_up', { host: 'h1' }, 0);
    await tick(next, SECOND);
    assert.deepEqual(
      bodies('/hook').map((b) => b.transition),
      ['firing'],
      'not paged again',
    );
    // Past the warm-up, a series that went away (the host was removed) resolves as before.
    signals.samples = [];
    await tick(next, 30 * SECOND);
    assert.deepEqual(
      bodies('/hook').map((b) => b.transition),
      ['firing', 'resolved'],
    );
  });

  it('the group wait runs during `for`: a lone alert pages on the tick it fires; a burst that went pending together goes out together', async () => {
    await configure({
      ...base(),
      alerts: {
        instance_down: { signal: 'instance_healthy', condition: '< 1', for: '10s', severity: 'critical' },
        host_down: { signal: 'host_up', condition: '== 0' },
      },
      alerting: { notify: ['hook'] }, // the defaults: group wait 5 s, group interval 5 min
    });
    const rt = runtime();
    const told = () =>
      bodies('/hook')
        .map((b) => {
          const l = b.labels as Record<string, string>;
          return `${b.transition}:${l.instance ?? l.host}`;
        })
        .sort();
    const inst = (service: string, instance: string) => ({ service, instance, host: 'h1' });
    signals.set('instance_healthy', inst('web', 'web-1'), 0);
    await tick(rt);
    await tick(rt, 9 * SECOND);
    assert.deepEqual(told(), []);
    await tick(rt, SECOND);
    assert.deepEqual(told(), ['firing:web-1'], 'pages when it fires, not 5 s later');

    // api-1 and api-2 go pending 2 s apart: api-1 fires first and waits (at most the group wait) for
    // api-2, which went pending within the group wait of api-1; both go out on the tick api-2 fires.
    signals.set('instance_healthy', inst('api', 'api-1'), 0);
    await tick(rt, SECOND);
    signals.set('instance_healthy', inst('api', 'api-2'), 0);
    await tick(rt, 2 * SECOND);
    await tick(rt, 8 * SECOND);
    assert.equal((await alerts.listAlerts()).filter((a) => a.state === 'firing').length, 2);
    assert.deepEqual(told(), ['firing:web-1'], 'api-1 fired; api-2 is about to');
    await tick(rt, 2 * SECOND);
    assert.deepEqual(told(), ['firing:api-1', 'firing:api-2', 'firing:web-1']);

    // A rule without `for` still collects its burst for the whole group wait.
    signals.set('host_up', { host: 'vm9' }, 0);
    await tick(rt, SECOND);
    await tick(rt, 4 * SECOND);
    assert.equal(told().length, 3);
    await tick(rt, SECOND);
    assert.deepEqual(told(), ['firing:api-1', 'firing:api-2', 'firing:vm9', 'firing:web-1']);
  });

  it('a page does not wait behind a lower-severity notification of the same group', async () => {
    await configure({
      ...base(),
      alerts: {
        errors_ticket: { signal: 'error_ratio', condition: '> 0.001', severity: 'warning' },
        errors_page: { signal: 'error_ratio', condition: '> 0.0144', severity: 'critical' },
      },
      // One group per service; the group interval at its default (5 min).
      alerting: { notify: ['hook'], groupWait: 0, groupBy: ['service'] },
    });
    const rt = runtime();
    signals.set('error_ratio', { service: 'web' }, 0.005);
    await tick(rt);
    assert.deepEqual(
      bodies('/hook').map((b) => b.rule),
      ['errors_ticket'],
    );
    signals.set('error_ratio', { service: 'web' }, 0.03);
    await tick(rt, SECOND);
    assert.deepEqual(
      bodies('/hook').map((b) => b.rule),
      ['errors_ticket', 'errors_page'],
      'the page goes out at once',
    );
  });

  it('two controllers evaluating the same alert send each notification once', async () => {
    await configure({ ...base(), alerts: { host_down: { signal: 'host_up', condition: '== 0' } } });
    // Their clocks differ by 150 ms, so each would see the alert fire at a different time: only the
    // first transition written counts (compare-and-set), and the other controller adopts it.
    const a = runtime('c1');
    const b = runtime('c2', [signals], 150);
    signals.set('host_up', { host: 'h1' }, 0);
    await Promise.all([a.tick(), b.tick()]);
    await Promise.all([a.settle(), b.settle()]);
    await Promise.all([a.tick(), b.tick()]);
    await Promise.all([a.settle(), b.settle()]);
    assert.equal(hooks.on('/hook').length, 1);
    assert.equal(hooks.on('/pd').length, 1);
    signals.set('host_up', { host: 'h1' }, 1);
    for (let i = 0; i < 2; i++) {
      clock += SECOND;
      await Promise.all([a.tick(), b.tick()]);
      await Promise.all([a.settle(), b.settle()]);
    }
    assert.deepEqual(
      bodies('/pd').map((e) => e.event_action),
      ['trigger', 'resolve'],
    );
    const [row] = await alerts.listAlerts();
    assert.deepEqual(
      (await alerts.listEvents(row?.dedupKey ?? '')).map((e) => e.type),
      ['firing', 'resolved'],
      'one history, not one per controller',
    );
  });

  it('a down host inhibits its instances’ alerts; silences and maintenance withhold, and their end releases', async () => {
    await configure({
      ...base(),
      maintenance: {
        night: { matchers: ['service=api'], start: '2026-12-01T09:00:00Z', end: '2026-12-01T11:00:00Z' },
      },
    });
    const rt = runtime();
    signals.set('host_up', { host: 'h1' }, 0);
    signals.set('instance_healthy', { service: 'web', instance: 'web-1', host: 'h1' }, 0);
    signals.set('instance_healthy', { service: 'web', instance: 'web-2', host: 'h2' }, 0);
    signals.set('instance_healthy', { service: 'api', instance: 'api-1', host: 'h2' }, 0);
    await tick(rt);
    await tick(rt, 30 * SECOND);
    const byInstance = new Map(
      (await alerts.listAlerts()).map((x) => [x.labels.instance ?? x.labels.alertname, x]),
    );
    assert.match(byInstance.get('web-1')?.suppressed ?? '', /^inhibited:/);
    assert.equal(byInstance.get('web-2')?.suppressed, null);
    assert.equal(byInstance.get('api-1')?.suppressed, 'maintenance:night');
    await alerts.addSilence(
      {
        id: 's1',
        matchers: [{ name: 'instance', op: '=', value: 'web-2' }],
        startsAt: clock,
        endsAt: clock + MINUTE,
        createdBy: 'test',
      },
      clock,
    );
    // web-2 fired in this same tick range before the silence: it was notified; a new one will not be.
    signals.set('instance_healthy', { service: 'web', instance: 'web-3', host: 'h2' }, 0);
    await tick(rt, SECOND);
    await alerts.addSilence(
      {
        id: 's2',
        matchers: [{ name: 'instance', op: '=', value: 'web-3' }],
        startsAt: clock,
        endsAt: clock + MINUTE,
        createdBy: 'test',
      },
      clock,
    );
    await tick(rt, 30 * SECOND);
    const summaries = () =>
      bodies('/hook').map((b) => (b.labels as Record<string, string>).instance ?? b.rule);
    assert.deepEqual(summaries().sort(), ['host_down', 'web-2']);
    await tick(rt, MINUTE);
    assert.deepEqual(summaries().sort(), ['host_down', 'web-2', 'web-3'], 'the silence ended: web-3 is told');
  });

  it('escalation: level 1 at once, level 2 after N minutes without ack; an ack stops it and PagerDuty hears acknowledge', async () => {
    const cfg = base();
    await configure({
      ...cfg,
      alerts: {
        host_down: { signal: 'host_up', condition: '== 0', severity: 'critical', escalation: 'ops' },
      },
      channels: {
        ...cfg.channels,
        alice: { kind: 'webhook', url: `${hooks.base}/alice` },
        bob: { kind: 'webhook', url: `${hooks.base}/bob` },
      },
      schedules: {
        primary: { rotations: [{ users: ['alice', 'bob'], handoff: '2026-11-30T09:00:00Z', shift: '1d' }] },
      },
      escalations: {
        ops: {
          levels: [
            { notify: ['schedule:primary'], after: '5m' },
            { notify: ['user:bob'], after: '5m' },
          ],
          repeat: 1,
        },
      },
      alerting: {
        notify: ['pd'],
        groupWait: 0,
        groupInterval: 0,
        users: { alice: { notify: ['alice'] }, bob: { notify: ['bob'] } },
      },
    });
    const rt = runtime();
    signals.set('host_up', { host: 'h1' }, 0);
    await tick(rt);
    // 2026-12-01 10:00 is the second day of the daily rotation from 2026-11-30 09:00: bob is on call.
    assert.equal(hooks.on('/bob').length, 1);
    assert.equal(hooks.on('/alice').length, 0);
    await tick(rt, 4 * MINUTE);
    assert.equal(hooks.on('/bob').length, 1);
    await tick(rt, MINUTE);
    assert.equal(hooks.on('/bob').length, 2, 'level 2 after 5 minutes without ack');
    const [a] = await alerts.listAlerts();
    await rt.acknowledge(a?.dedupKey ?? '', 'alice (admin)');
    await rt.settle();
    await tick(rt, 10 * MINUTE);
    assert.deepEqual(
      bodies('/bob').map((b) => b.transition),
      ['firing', 'firing', 'acknowledged'],
      'no escalation after the ack; the people paged hear it was acknowledged',
    );
    assert.deepEqual(
      bodies('/pd').map((b) => b.event_action),
      ['trigger', 'acknowledge'],
    );
    assert.equal((await alerts.getAlert(a?.dedupKey ?? ''))?.acknowledgedBy, 'alice (admin)');
    await assert.rejects(rt.acknowledge('nope', 'x'), { code: 'NINES_E_ALERT_NOT_FOUND' });
  });

  it('a 429 with Retry-After is honoured, and every attempt recorded', async () => {
    await configure({
      ...base(),
      alerts: { host_down: { signal: 'host_up', condition: '== 0' } },
      alerting: { notify: ['hook'], groupWait: 0 },
    });
    hooks.script.set('/hook', [{ status: 429, headers: { 'retry-after': '1' } }]);
    const rt = runtime();
    signals.set('host_up', { host: 'h1' }, 0);
    await tick(rt);
    const got = hooks.on('/hook');
    assert.equal(got.length, 2);
    assert.ok((got[1]?.at ?? 0) - (got[0]?.at ?? 0) >= 950, 'waited for Retry-After');
    const [d] = await alerts.listDeliveries();
    const attempts = await alerts.listAttempts(d?.key ?? '');
    assert.deepEqual(
      attempts.map((x) => x.status),
      [429, 200],
    );
    assert.ok(Number(attempts[0]?.retry_in_ms) >= 1000);
  });

  it('SLO: 2 % errors over the last hour on a 99.9 % objective pages (burn 20 ≥ 14.4 over 1 h and 5 min)', async () => {
    await configure({ ...base(), alerts: {}, slos: { web: { objective: '99.9%', page: ['hook'] } } });
    const rt = runtime();
    const minute = Math.floor(clock / MINUTE);
    for (let i = 0; i < 60; i++) requests.add('web', minute - i, 1000, 20);
    await tick(rt);
    const fired = (await alerts.listAlerts()).filter((x) => x.state === 'firing');
    // Only the last hour has traffic, so every window sees a 2 % error ratio: burn 20 ≥ 14.4, 6 and 1.
    assert.deepEqual(fired.map((x) => x.labels.window).sort(), ['page-1h', 'page-6h', 'ticket-3d']);
    assert.equal(fired.find((x) => x.labels.window === 'ticket-3d')?.severity, 'warning');
    const page1h = fired.find((x) => x.labels.window === 'page-1h');
    assert.ok(Math.abs((page1h?.lastValue ?? 0) - 20) < 1e-9);
    assert.equal(page1h?.severity, 'critical');
    assert.equal(hooks.on('/hook').length, 3);
    // The burning stops: the 1 h page's 5-minute window clears within 5 minutes and it resolves; the
    // 6 h page (30-minute short window) and the ticket (6 h) keep firing.
    for (let i = 0; i < 6; i++) {
      clock += MINUTE;
      requests.add('web', Math.floor(clock / MINUTE), 1000, 0);
      await tick(rt);
    }
    const still = (await alerts.listAlerts()).filter((x) => x.state === 'firing').map((x) => x.labels.window);
    assert.deepEqual(still.sort(), ['page-6h', 'ticket-3d']);
    assert.deepEqual(
      bodies('/hook')
        .map((b) => b.transition)
        .sort(),
      ['firing', 'firing', 'firing', 'resolved'],
    );
  });

  it('fleet signals: a running deploy silences only the instances it starts or stops; a host gone quiet is down', async () => {
    await configure({
      ...base(),
      alerts: {
        instance_down: { signal: 'instance_healthy', condition: '< 1', severity: 'critical' },
        host_down: { signal: 'host_up', condition: '== 0', for: '10s' },
      },
      alerting: { notify: ['hook'], groupWait: 0, groupInterval: 0, deployGrace: '30s' },
    });
    await store.upsertHost(host('h1', 'vm1', { lastSeenAt: clock }));
    await store.upsertHost(host('h2', 'vm2', { lastSeenAt: clock - 60 * SECOND }));
    for (const svc of ['web', 'api']) {
      await store.upsertService(svc, spec1);
      await store.insertRelease(release(svc, 'v1'));
    }
    await store.insertDeploy(deploy('d1', 'web', { state: 'running', startedAt: clock }));
    const unhealthy = (id: string) => ({ id, state: 'running' as const, healthy: false, restarts: 0 });
    await store.insertInstance({
      ...instance('web-new', 'web', 'h1'),
      deployId: 'd1',
      observed: unhealthy('web-new'),
    });
    await store.insertInstance({
      ...instance('web-old', 'web', 'h1'),
      route: 'ready',
      observed: unhealthy('web-old'),
    });
    await store.insertInstance({
      ...instance('api-1', 'api', 'h1'),
      route: 'ready',
      observed: unhealthy('api-1'),
    });
    const fleet = new FleetSignals({ store, hostDownAfterMs: 15 * SECOND });
    const rt = runtime('c1', [fleet]);
    // A controller that just started does not call a host down for a stale lastSeenAt (it was away).
    assert.equal(
      (await fleet.collect(clock - 15 * SECOND)).find((x) => x.labels.host === 'vm2')?.value,
      undefined,
    );
    await tick(rt);
    const by = new Map((await alerts.listAlerts()).map((a) => [a.labels.instance ?? a.labels.host, a]));
    assert.equal(by.get('web-new')?.suppressed, 'silence:deploy:d1', 'the deploy’s own blip');
    assert.equal(by.get('web-old')?.suppressed, null, 'the same service’s other instance still alerts');
    assert.equal(by.get('api-1')?.suppressed, null);
    assert.equal(by.get('vm2')?.state, 'pending', 'vm2 has been quiet for 60 s: host_up = 0');
    assert.equal(by.get('vm1'), undefined);
    const told = () =>
      bodies('/hook')
        .map(
          (b) => (b.labels as Record<string, string>).instance ?? (b.labels as Record<string, string>).host,
        )
        .sort();
    assert.deepEqual(told(), ['api-1', 'web-old']);
    // The deploy ends; its silence lasts the grace (30 s), then the still-unhealthy new instance is told.
    await store.updateDeploy('d1', { state: 'succeeded', finishedAt: clock });
    const later = async (ms: number) => {
      clock += ms;
      await store.touchHost('h1', clock); // vm1's agent keeps reporting
      await tick(rt);
    };
    await later(20 * SECOND);
    assert.deepEqual(told(), ['api-1', 'vm2', 'web-old']);
    await later(20 * SECOND);
    assert.deepEqual(told(), ['api-1', 'vm2', 'web-new', 'web-old']);
  });

  it('host metrics and check states from the signals module alert too; a down host inhibits its disk alert', async () => {
    await configure({
      ...base(),
      alerts: {
        disk_full: { signal: 'node_filesystem_avail_ratio', where: { mountpoint: '/' }, condition: '< 0.1' },
        api_check: { signal: 'check_up', condition: '== 0', severity: 'critical' },
        host_down: { signal: 'host_up', condition: '== 0' },
      },
      alerting: { notify: ['hook'], groupWait: 0, groupInterval: 0 },
    });
    const current: ReturnType<SignalsModule['current']>[number][] = [
      {
        signal: 'node_filesystem_avail_ratio',
        labels: { host: 'h-1', hostname: 'vm1', mountpoint: '/' },
        value: 0.05,
      },
      {
        signal: 'node_filesystem_avail_ratio',
        labels: { host: 'h-2', hostname: 'vm2', mountpoint: '/' },
        value: 0.02,
      },
      { signal: 'check_up', labels: { check: 'payments-api' }, value: 0 },
      { signal: 'host_up', labels: { host: 'h-1', hostname: 'vm1' }, value: 1 },
    ];
    const module: SignalsModule = { current: () => current };
    signals.set('host_up', { host: 'vm2' }, 0);
    await tick(runtime('c1', [signals, new ModuleSignals(module)]));
    const told = bodies('/hook').map(
      (b) =>
        `${b.rule}:${(b.labels as Record<string, string>).host ?? (b.labels as Record<string, string>).check}`,
    );
    assert.deepEqual(told.sort(), ['api_check:payments-api', 'disk_full:vm1', 'host_down:vm2']);
    const vm2disk = (await alerts.listAlerts()).find(
      (a) => a.ruleId === 'disk_full' && a.labels.host === 'vm2',
    );
    assert.match(vm2disk?.suppressed ?? '', /^inhibited:/);
  });
});
