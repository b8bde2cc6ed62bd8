import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EscalationPolicy, escalationDue, nextHandoff, onCallAt, type Schedule } from './escalation.js';
import { DAY, HOUR, MINUTE } from './types.js';

const MON9 = Date.UTC(2026, 10, 23, 9); // Monday 09:00 UTC
const week: Schedule = {
  id: 'primary',
  rotations: [{ users: ['alice', 'bob', 'carol'], handoffAt: MON9, shiftMs: 7 * DAY }],
  overrides: [{ user: 'dave', start: MON9 + 14 * DAY + 2 * HOUR, end: MON9 + 14 * DAY + 4 * HOUR }],
};

describe('on-call schedules', () => {
  it('rotates weekly at the handoff, wraps, honours overrides', () => {
    assert.equal(onCallAt(week, MON9 - 1), undefined);
    assert.equal(onCallAt(week, MON9), 'alice');
    assert.equal(onCallAt(week, MON9 + 7 * DAY - 1), 'alice');
    assert.equal(onCallAt(week, MON9 + 7 * DAY), 'bob');
    assert.equal(onCallAt(week, MON9 + 14 * DAY), 'carol');
    assert.equal(onCallAt(week, MON9 + 14 * DAY + 3 * HOUR), 'dave');
    assert.equal(onCallAt(week, MON9 + 21 * DAY), 'alice');
    assert.equal(nextHandoff(week.rotations[0]!, MON9 + 3 * DAY), MON9 + 7 * DAY);
  });
  it('a later layer wins while it has someone', () => {
    const s: Schedule = {
      id: 'x',
      rotations: [
        { users: ['alice'], handoffAt: 0, shiftMs: DAY },
        { users: ['night'], handoffAt: MON9, shiftMs: DAY, until: MON9 + DAY },
      ],
    };
    assert.equal(onCallAt(s, MON9 + HOUR), 'night');
    assert.equal(onCallAt(s, MON9 + DAY + HOUR), 'alice');
  });
});

describe('escalation policies', () => {
  const policy: EscalationPolicy = {
    id: 'default',
    levels: [
      { targets: [{ kind: 'schedule', id: 'primary' }], escalateAfterMs: 10 * MINUTE },
      {
        targets: [
          { kind: 'user', id: 'lead' },
          { kind: 'channel', id: 'slack-ops' },
        ],
        escalateAfterMs: 15 * MINUTE,
      },
    ],
    repeat: 1,
  };
  const schedules = new Map([['primary', week]]);
  const t0 = MON9 + HOUR;

  it('notifies level 1, escalates after 10 min without ack, repeats, then stops', () => {
    const at = (ms: number) => escalationDue(policy, { triggeredAt: t0 }, t0 + ms, schedules);
    assert.deepEqual(
      at(0).due.map((s) => [s.id, s.users, s.channels]),
      [['0.0', ['alice'], []]],
    );
    assert.equal(at(0).nextAt, t0 + 10 * MINUTE);
    assert.deepEqual(
      at(10 * MINUTE - 1).due.map((s) => s.id),
      ['0.0'],
    );
    assert.deepEqual(
      at(10 * MINUTE).due.map((s) => [s.id, s.users, s.channels]),
      [
        ['0.0', ['alice'], []],
        ['0.1', ['lead'], ['slack-ops']],
      ],
    );
    // round 2 starts 25 min in, its level 2 at 35 min; after that nothing more
    assert.deepEqual(
      at(25 * MINUTE).due.map((s) => s.id),
      ['0.0', '0.1', '1.0'],
    );
    const end = at(35 * MINUTE);
    assert.deepEqual(
      end.due.map((s) => s.id),
      ['0.0', '0.1', '1.0', '1.1'],
    );
    assert.equal(end.nextAt, undefined);
  });

  it('an acknowledgement stops the escalation', () => {
    const p = escalationDue(policy, { triggeredAt: t0, ackedAt: t0 + 5 * MINUTE }, t0 + HOUR, schedules);
    assert.deepEqual(
      p.due.map((s) => s.id),
      ['0.0'],
    );
    assert.equal(p.nextAt, undefined);
    const r = escalationDue(policy, { triggeredAt: t0, resolvedAt: t0 + 12 * MINUTE }, t0 + HOUR, schedules);
    assert.deepEqual(
      r.due.map((s) => s.id),
      ['0.0', '0.1'],
    );
  });

  it('resolves the schedule at the step time (handoff during an incident)', () => {
    const late = MON9 + 7 * DAY - 5 * MINUTE; // alice until the handoff in 5 min, then bob
    const p = escalationDue(
      {
        id: 'p',
        levels: [{ targets: [{ kind: 'schedule', id: 'primary' }], escalateAfterMs: 10 * MINUTE }],
        repeat: 1,
      },
      { triggeredAt: late },
      late + 10 * MINUTE,
      schedules,
    );
    assert.deepEqual(
      p.due.map((s) => s.users[0]),
      ['alice', 'bob'],
    );
  });
});
