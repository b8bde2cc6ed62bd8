import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alertingConfigOf, alertingConfigSchema } from './alerting-config.js';
import { parseConfig } from './config.js';
import { isNinesError } from './errors.js';

const GOOD = `
services:
  web:
    command: node server.js
    slo:
      objective: 99.9%
      page: [pd]
alerts:
  instance_down:
    signal: instance_healthy
    where: { service: web }
    condition: "< 1"
    for: 30s
    severity: critical
    labels: { team: web }
    summary: "{{instance}} of {{service}} is unhealthy"
    escalation: default
  host_down:
    signal: host_up
    condition: "== 0"
    for: 1m
channels:
  hook: { kind: webhook, url: "http://127.0.0.1:9/hook", secret: "0123456789abcdef" }
  slack: { kind: slack, url: "https://hooks.slack.com/services/T/B/X" }
  pd: { kind: pagerduty, routingKey: "R0123456789abcdef0123456789abcdef" }
  mail: { kind: email, host: 127.0.0.1, port: 2525, from: "nines@example.com", to: ["ops@example.com"] }
schedules:
  primary:
    rotations:
      - users: [alice, bob]
        handoff: 2026-01-05T09:00:00Z
        shift: 7d
escalations:
  default:
    levels:
      - notify: [schedule:primary]
        after: 10m
      - notify: [channel:slack, user:carol]
    repeat: 1
maintenance:
  sunday-backup:
    matchers: ["service=web"]
    weekly: { days: [sun], at: "02:00", duration: 1h }
  migration:
    matchers: ["service=~web|api"]
    start: 2026-12-24T22:00:00Z
    end: 2026-12-24T23:00:00Z
alerting:
  notify: [hook]
  groupWait: 10s
  users:
    alice: { notify: [mail] }
    bob: { notify: [mail] }
    carol: { notify: [slack] }
`;

test('a full alerting config parses, with durations, conditions, targets and objectives normalised', () => {
  const c = parseConfig(GOOD);
  const a = alertingConfigOf(c);
  assert.deepEqual(a.alerts.instance_down?.condition, { op: '<', threshold: 1 });
  assert.equal(a.alerts.instance_down?.for, 30_000);
  assert.equal(a.alerts.host_down?.severity, 'warning');
  assert.equal(a.slos.web?.objective, 0.999);
  assert.equal(a.schedules.primary?.rotations[0]?.shift, 7 * 86_400_000);
  assert.deepEqual(a.escalations.default?.levels[0]?.notify, [{ kind: 'schedule', id: 'primary' }]);
  assert.equal(a.escalations.default?.levels[1]?.after, 15 * 60_000);
  assert.equal(a.alerting.groupWait, 10_000);
  assert.equal(a.alerting.repeatInterval, 4 * 3_600_000);
  // What `nines up` sends parses again to the same thing on the controller.
  assert.deepEqual(alertingConfigSchema.parse(JSON.parse(JSON.stringify(a))), a);
});

function issues(yaml: string): string {
  try {
    parseConfig(yaml);
  } catch (err) {
    assert.ok(isNinesError(err));
    assert.equal(err.code, 'NINES_E_CONFIG_INVALID');
    return err.message;
  }
  assert.fail('expected NINES_E_CONFIG_INVALID');
}

test('bad alerting config names the field and says what is wrong', () => {
  const base = 'services:\n  web:\n    command: x\n';
  assert.match(
    issues(`${base}alerts:\n  a:\n    signal: instance_healthy\n    condition: "less than 1"\n`),
    /alerts\.a\.condition: .*not a condition: use an operator/,
  );
  assert.match(
    issues(`${base}alerts:\n  a:\n    signal: host_up\n    condition: "== 0"\n    for: 5 minutes\n`),
    /alerts\.a\.for: "5 minutes" is not a duration/,
  );
  assert.match(
    issues(`${base}alerts:\n  a:\n    signal: host_up\n    condition: "== 0"\n    notify: [nope]\n`),
    /alerts\.a\.notify\.\[0\]: no channel named "nope"/,
  );
  assert.match(
    issues(`${base}channels:\n  x: { kind: sms, url: "http://a" }\n`),
    /channels\.x\.kind: kind must be one of/,
  );
  assert.match(
    issues(`${base.replace('command: x', 'command: x\n    slo: { objective: 1.5 }')}`),
    /services\.web\.slo\.objective: objective 1\.5 must be between 0 and 1/,
  );
  assert.match(
    issues(`${base}escalations:\n  e:\n    levels:\n      - notify: [schedule:none]\n`),
    /escalations\.e\.levels\.\[0\]\.notify\.\[0\]: no schedule named "none"/,
  );
  assert.match(
    issues(`${base}maintenance:\n  m:\n    matchers: ["service=web"]\n    start: 2026-12-24T22:00:00Z\n`),
    /maintenance\.m: a one-off window needs both start and end/,
  );
  assert.match(
    issues(
      `${base}schedules:\n  s:\n    rotations:\n      - users: [zed]\n        handoff: 2026-01-05T09:00:00Z\n`,
    ),
    /user "zed" has no contact in alerting\.users/,
  );
});
