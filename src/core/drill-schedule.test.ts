import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type DrillSchedule,
  drillScheduleSchema,
  nextCron,
  nextDue,
  parseCron,
  pickDue,
  type ScheduleState,
} from './drill-schedule.js';

const at = (iso: string) => Date.parse(iso);
const spec = (s: Record<string, unknown>): DrillSchedule =>
  drillScheduleSchema.parse({
    scenario: 'instance-kill',
    service: 'web',
    proxy: 'http://127.0.0.1:8080',
    ...s,
  });

describe('cron', () => {
  it('finds the next matching minute (UTC)', () => {
    const c = parseCron('30 3 * * *');
    assert.equal(nextCron(c, at('2026-12-05T03:00:00Z')), at('2026-12-05T03:30:00Z'));
    assert.equal(nextCron(c, at('2026-12-05T03:30:00Z')), at('2026-12-06T03:30:00Z'), 'strictly after');
    assert.equal(nextCron(parseCron('*/15 * * * *'), at('2026-12-05T03:16:10Z')), at('2026-12-05T03:30:00Z'));
    // Weekdays only: Saturday 5 Dec 2026 → Monday 7 Dec.
    assert.equal(nextCron(parseCron('0 9 * * 1-5'), at('2026-12-05T10:00:00Z')), at('2026-12-07T09:00:00Z'));
    // Day of month and day of week both given: either (cron's rule); 7 is Sunday.
    assert.equal(nextCron(parseCron('0 0 1 * 7'), at('2026-12-05T10:00:00Z')), at('2026-12-06T00:00:00Z'));
    assert.equal(nextCron(parseCron('0 0 29 2 *'), at('2026-03-01T00:00:00Z')), at('2028-02-29T00:00:00Z'));
    assert.equal(nextCron(parseCron('0 0 31 2 *'), at('2026-03-01T00:00:00Z')), undefined);
  });
  it('refuses what is not a schedule', () => {
    for (const bad of ['* * * *', '60 * * * *', '* 24 * * *', '5-1 * * * *', '*/0 * * * *', 'x * * * *']) {
      assert.throws(() => parseCron(bad), Error, bad);
    }
  });
});

describe('drill schedule spec', () => {
  it('needs exactly one of every and cron, and a dependency for dependency-down', () => {
    assert.equal(spec({ every: '6h' }).every, 6 * 3_600_000);
    assert.equal(spec({ every: '7d' }).every, 7 * 86_400_000);
    assert.equal(spec({ cron: '0 3 * * *' }).rate, 20);
    const issues = (s: Record<string, unknown>) =>
      drillScheduleSchema
        .safeParse({ scenario: 'instance-kill', service: 'web', proxy: 'http://127.0.0.1:8080', ...s })
        .error?.issues.map((i) => i.message) ?? [];
    assert.deepEqual(issues({}), ['give exactly one of every or cron']);
    assert.deepEqual(issues({ every: '1h', cron: '* * * * *' }), ['give exactly one of every or cron']);
    assert.deepEqual(issues({ every: '10s' }), ['every: at least 1m']);
    assert.match(issues({ cron: '61 * * * *' }).join(), /not a cron schedule/);
    assert.deepEqual(issues({ every: '1h', scenario: 'dependency-down' }), [
      'dependency-down needs dependency',
    ]);
  });
});

describe('pickDue', () => {
  const t0 = at('2026-12-05T00:00:00Z');
  const s = (
    name: string,
    x: Record<string, unknown>,
    lastRunAt: number | null,
    service = 'web',
  ): ScheduleState => ({
    name,
    spec: spec({ service, ...x }),
    createdAt: t0,
    lastRunAt,
  });
  const idle = { running: false, deploying: new Set<string>() };

  it('runs an interval schedule an interval after its last run (or creation)', () => {
    const hourly = s('hourly', { every: '1h' }, null);
    assert.equal(nextDue(hourly), t0 + 3_600_000);
    assert.equal(pickDue([hourly], t0 + 3_599_999, idle), undefined);
    assert.deepEqual(pickDue([hourly], t0 + 3_600_000, idle), { name: 'hourly', dueAt: t0 + 3_600_000 });
    // Missed runs collapse into one: after 5 h down it is due once, then an hour after that run.
    const ran = { ...hourly, lastRunAt: t0 + 5 * 3_600_000 };
    assert.equal(pickDue([ran], t0 + 5 * 3_600_000 + 1, idle), undefined);
  });

  it('one at a time, the longest overdue first, never during a deploy or while paused', () => {
    const a = s('a', { every: '1h' }, null);
    const b = s('b', { cron: '30 0 * * *' }, null, 'api');
    const now = t0 + 2 * 3_600_000;
    assert.deepEqual(pickDue([a, b], now, idle), { name: 'b', dueAt: t0 + 30 * 60_000 });
    assert.equal(pickDue([a, b], now, { running: true, deploying: new Set() }), undefined);
    assert.deepEqual(pickDue([a, b], now, { running: false, deploying: new Set(['api']) }), {
      name: 'a',
      dueAt: t0 + 3_600_000,
    });
    const paused = s('b', { cron: '30 0 * * *', enabled: false }, null, 'api');
    assert.equal(pickDue([paused], now, idle), undefined);
  });
});
