import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type ActiveAlert,
  DEFAULT_GROUPING,
  deploySilence,
  type GroupState,
  groupAlerts,
  groupDue,
  inhibitedBy,
  inMaintenance,
  type MaintenanceWindow,
  maintenanceIntervals,
  markNotified,
  matches,
  occurrences,
  parseMatcher,
  type Silence,
  silencedBy,
  suppression,
} from './grouping.js';
import { HOUR, MINUTE } from './types.js';

// 2026-11-23 is a Monday.
const MON = Date.UTC(2026, 10, 23);

describe('matchers', () => {
  it('=, !=, =~, !~ (anchored), missing label = empty', () => {
    const l = { service: 'web', instance: 'web-1' };
    assert.ok(matches(l, [parseMatcher('service=web')]));
    assert.ok(matches(l, [parseMatcher('service!="api"')]));
    assert.ok(matches(l, [parseMatcher('instance=~web-.*')]));
    assert.ok(!matches(l, [parseMatcher('instance=~web')]), 'anchored');
    assert.ok(matches(l, [parseMatcher('instance!~api-.*')]));
    assert.ok(matches(l, [parseMatcher('zone=')]));
    assert.throws(() => parseMatcher('bad matcher'), SyntaxError);
  });
});

describe('silences', () => {
  const s: Silence = {
    id: 's1',
    matchers: [parseMatcher('service=web')],
    startsAt: 1000,
    endsAt: 2000,
    createdBy: 'alice',
  };
  it('mute matching alerts between start and end only', () => {
    assert.deepEqual(silencedBy({ service: 'web' }, [s], 1500), ['s1']);
    assert.deepEqual(silencedBy({ service: 'web' }, [s], 2000), []);
    assert.deepEqual(silencedBy({ service: 'web' }, [s], 999), []);
    assert.deepEqual(silencedBy({ service: 'api' }, [s], 1500), []);
  });
  it('a deploy silences only its own instances', () => {
    const d = deploySilence({
      deployId: 'd7',
      service: 'web',
      instances: ['web-1', 'i.2'],
      startsAt: 0,
      endsAt: 10_000,
    });
    assert.deepEqual(silencedBy({ service: 'web', instance: 'web-1' }, [d], 5_000), ['deploy:d7']);
    assert.deepEqual(silencedBy({ service: 'web', instance: 'i.2' }, [d], 5_000), ['deploy:d7']);
    assert.deepEqual(silencedBy({ service: 'web', instance: 'ix2' }, [d], 5_000), [], 'regex-escaped');
    assert.deepEqual(silencedBy({ service: 'web', instance: 'web-3' }, [d], 5_000), []);
    assert.deepEqual(silencedBy({ service: 'api', instance: 'web-1' }, [d], 5_000), []);
    assert.deepEqual(silencedBy({ service: 'web', instance: 'web-1' }, [d], 10_000 + 2 * MINUTE), []);
    const none = deploySilence({ deployId: 'd8', service: 'web', instances: [], startsAt: 0, endsAt: 1 });
    assert.deepEqual(silencedBy({ service: 'web', instance: '' }, [none], 0), []);
  });
});

describe('inhibition', () => {
  const rules = [
    {
      source: [parseMatcher('alertname=host_down')],
      target: [parseMatcher('alertname!=host_down')],
      equal: ['host'],
    },
  ];
  const hostDown: ActiveAlert = {
    dedupKey: 'hd1',
    labels: { alertname: 'host_down', host: 'h1' },
    state: 'firing',
  };
  it('a host down suppresses its instances’ alerts, not other hosts’', () => {
    const inst = {
      dedupKey: 'i1',
      labels: { alertname: 'instance_unhealthy', host: 'h1', instance: 'web-1' },
    };
    const other = {
      dedupKey: 'i2',
      labels: { alertname: 'instance_unhealthy', host: 'h2', instance: 'web-2' },
    };
    assert.equal(inhibitedBy(inst, [hostDown], rules), 'hd1');
    assert.equal(inhibitedBy(other, [hostDown], rules), undefined);
    assert.equal(inhibitedBy(hostDown, [hostDown], rules), undefined, 'never itself');
    assert.equal(
      inhibitedBy(inst, [{ ...hostDown, state: 'pending' }], rules),
      undefined,
      'only firing sources',
    );
  });
});

describe('maintenance windows', () => {
  const weekly: MaintenanceWindow = {
    id: 'patch-tuesday',
    matchers: [parseMatcher('zone=eu-1')],
    // Tuesdays 23:00 UTC for 2 h: runs into Wednesday
    schedule: { kind: 'weekly', days: [2], start: '23:00', durationMs: 2 * HOUR },
  };
  const once: MaintenanceWindow = {
    id: 'db-upgrade',
    matchers: [parseMatcher('service=db')],
    schedule: { kind: 'once', startsAt: MON + 10 * HOUR, endsAt: MON + 11 * HOUR },
  };
  const TUE = MON + 24 * HOUR;
  it('recurring weekly, including past midnight', () => {
    const l = { zone: 'eu-1' };
    assert.deepEqual(inMaintenance(l, [weekly], TUE + 23 * HOUR), ['patch-tuesday']);
    assert.deepEqual(
      inMaintenance(l, [weekly], TUE + 24 * HOUR + 30 * MINUTE),
      ['patch-tuesday'],
      'Wed 00:30',
    );
    assert.deepEqual(inMaintenance(l, [weekly], TUE + 25 * HOUR), [], 'Wed 01:00: over');
    assert.deepEqual(inMaintenance(l, [weekly], TUE + 22 * HOUR), []);
    assert.deepEqual(
      inMaintenance(l, [weekly], TUE + 7 * 24 * HOUR + 23.5 * HOUR),
      ['patch-tuesday'],
      'next week',
    );
    assert.deepEqual(inMaintenance({ zone: 'us-1' }, [weekly], TUE + 23 * HOUR), []);
  });
  it('one-off', () => {
    assert.deepEqual(inMaintenance({ service: 'db' }, [once], MON + 10.5 * HOUR), ['db-upgrade']);
    assert.deepEqual(inMaintenance({ service: 'db' }, [once], MON + 11 * HOUR), []);
  });
  it('intervals for uptime reports, clipped and merged', () => {
    const occ = occurrences(weekly.schedule, MON, MON + 14 * 24 * HOUR);
    assert.equal(occ.length, 2);
    assert.deepEqual(occ[0], { start: TUE + 23 * HOUR, end: TUE + 25 * HOUR });
    const clipped = maintenanceIntervals({ zone: 'eu-1' }, [weekly], TUE + 24 * HOUR, TUE + 48 * HOUR);
    assert.deepEqual(clipped, [{ start: TUE + 24 * HOUR, end: TUE + 25 * HOUR }]);
  });
  it('suppression says why', () => {
    const ctx = { silences: [], maintenance: [once], inhibitRules: [], alerts: [] };
    assert.deepEqual(suppression({ dedupKey: 'x', labels: { service: 'db' } }, ctx, MON + 10.5 * HOUR), {
      kind: 'maintenance',
      ids: ['db-upgrade'],
    });
    assert.equal(
      suppression({ dedupKey: 'x', labels: { service: 'web' } }, ctx, MON + 10.5 * HOUR),
      undefined,
    );
  });
});

describe('grouping', () => {
  const o = {
    ...DEFAULT_GROUPING,
    groupBy: ['service'],
    groupWaitMs: 30_000,
    groupIntervalMs: 300_000,
    repeatIntervalMs: 4 * HOUR,
  };
  const a1 = { dedupKey: 'a1', labels: { service: 'web', instance: '1' }, state: 'firing' as const };
  const a2 = { dedupKey: 'a2', labels: { service: 'web', instance: '2' }, state: 'firing' as const };
  const b1 = { dedupKey: 'b1', labels: { service: 'api', instance: '1' }, state: 'firing' as const };
  it('groups by labels', () => {
    const gs = groupAlerts([a1, b1, a2], o.groupBy);
    assert.equal(gs.length, 2);
    const web = gs.find((g) => g.labels.service === 'web');
    assert.deepEqual(
      web?.alerts.map((a) => a.dedupKey),
      ['a1', 'a2'],
    );
  });
  it('waits groupWait, then groupInterval for changes, then repeatInterval', () => {
    const t0 = 1_000_000;
    let g = groupAlerts([a1], o.groupBy)[0]!;
    let st: GroupState = { firstSeenAt: t0 };
    assert.deepEqual(groupDue(g, st, t0 + 10_000, o), { notify: false, nextCheckAt: t0 + 30_000 });
    const d1 = groupDue(g, st, t0 + 30_000, o);
    assert.equal(d1.reason, 'initial');
    st = markNotified(g, st, t0 + 30_000);
    // a second alert joins one minute later: held until groupInterval (5 min) after the last notification
    g = groupAlerts([a1, a2], o.groupBy)[0]!;
    assert.equal(groupDue(g, st, t0 + 90_000, o).notify, false);
    assert.equal(groupDue(g, st, t0 + 330_000, o).reason, 'changed');
    st = markNotified(g, st, t0 + 330_000);
    // unchanged: nothing until repeatInterval
    assert.equal(groupDue(g, st, t0 + 330_000 + HOUR, o).notify, false);
    assert.equal(groupDue(g, st, t0 + 330_000 + 4 * HOUR, o).reason, 'repeat');
    // all resolved: one 'changed' notification, then quiet for good
    const r = groupAlerts(
      [
        { ...a1, state: 'resolved' },
        { ...a2, state: 'resolved' },
      ],
      o.groupBy,
    )[0]!;
    assert.equal(groupDue(r, st, t0 + 330_000 + 5 * HOUR, o).reason, 'changed');
    st = markNotified(r, st, t0 + 330_000 + 5 * HOUR);
    assert.equal(groupDue(r, st, t0 + 330_000 + 50 * HOUR, o).notify, false);
  });
});
