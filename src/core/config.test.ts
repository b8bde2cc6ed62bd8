import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig, resolveCount } from './config.js';
import { NinesError } from './errors.js';

const valid = `
services:
  web:
    command: node server.js
    instances: 3
    health: { path: /healthz, interval: 500ms, timeout: 1s, rise: 2, fall: 3 }
    drainTimeout: 15s
    rolling: { maxSurge: 25%, maxUnavailable: 0 }
`;

test('a valid file parses, with durations in ms and defaults filled in', () => {
  const c = parseConfig(valid);
  const web = c.services.web;
  assert.ok(web);
  assert.equal(web.instances, 3);
  assert.equal(web.health.interval, 500);
  assert.equal(web.health.timeout, 1000);
  assert.equal(web.drainTimeout, 15_000);
  assert.equal(web.rolling.maxSurge, '25%');
  assert.equal(web.healthyDeadline, 60_000);
  assert.deepEqual(web.route, { hosts: [], pathPrefix: '/' });
});

function issuesOf(text: string) {
  try {
    parseConfig(text);
  } catch (err) {
    assert.ok(err instanceof NinesError);
    assert.equal(err.code, 'NINES_E_CONFIG_INVALID');
    assert.equal(err.status, 400);
    return {
      message: err.message,
      issues: (err.details as { issues: Array<{ path: string; line?: number }> }).issues,
    };
  }
  assert.fail('expected the config to be refused');
}

test('a bad field is refused with its path, its line and the reason', () => {
  const { message, issues } = issuesOf(valid.replace('instances: 3', 'instances: three'));
  assert.equal(issues[0]?.path, 'services.web.instances');
  assert.equal(issues[0]?.line, 5);
  assert.match(message, /services\.web\.instances/);
});

test('unknown keys, bad durations, bad percentages and both-zero rolling are refused', () => {
  assert.equal(issuesOf(valid.replace('instances: 3', 'instanses: 3')).issues[0]?.path, 'services.web');
  assert.equal(
    issuesOf(valid.replace('drainTimeout: 15s', 'drainTimeout: soon')).issues[0]?.path,
    'services.web.drainTimeout',
  );
  assert.equal(
    issuesOf(valid.replace('maxSurge: 25%', 'maxSurge: lots')).issues[0]?.path,
    'services.web.rolling.maxSurge',
  );
  assert.match(issuesOf(valid.replace('maxSurge: 25%', 'maxSurge: 0')).message, /cannot both be 0/);
  assert.match(issuesOf('services:\n  Web_1:\n    command: x\n').message, /lowercase/);
});

test('broken YAML is refused with NINES_E_CONFIG_INVALID and a line', () => {
  const { issues } = issuesOf('services:\n  web: [unclosed\n');
  assert.equal(issues[0]?.path, '(yaml)');
  assert.ok(typeof issues[0]?.line === 'number');
});

test('resolveCount rounds surge up and unavailability down', () => {
  assert.equal(resolveCount('25%', 3, 'up'), 1);
  assert.equal(resolveCount('25%', 3, 'down'), 0);
  assert.equal(resolveCount(2, 10, 'down'), 2);
});
