import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from './config.js';
import { planServices, renderPlan } from './config-diff.js';

const base = `
services:
  web:
    command: node server.js
    instances: 3
    env: { LOG_LEVEL: info }
  api:
    command: node api.js
`;

test('identical files plan no changes, defaults and spelled-out defaults compare equal', () => {
  const a = parseConfig(base).services;
  const b = parseConfig(
    base.replace('instances: 3', 'instances: 3\n    drainTimeout: 10s\n    rolling: { maxSurge: 1 }'),
  ).services;
  const plan = planServices(b, a);
  assert.deepEqual(plan.changes, []);
  assert.deepEqual(plan.unchanged, ['api', 'web']);
  assert.equal(renderPlan(plan), 'no changes: the controller matches the file');
});

test('field-by-field changes, additions and removals', () => {
  const live = parseConfig(base).services;
  const desired = parseConfig(`
services:
  web:
    command: node server.js
    instances: 5
    env: { LOG_LEVEL: debug, NEW_FLAG: "1" }
    route: { hosts: [a.example, b.example] }
  worker:
    command: node worker.js
`).services;
  const plan = planServices(desired, live);
  assert.deepEqual(
    plan.changes.map((c) => [c.service, c.kind]),
    [
      ['web', 'change'],
      ['worker', 'add'],
      ['api', 'remove'],
    ],
  );
  const web = plan.changes[0];
  assert.ok(web?.kind === 'change');
  assert.deepEqual(web.fields, [
    { path: 'env.LOG_LEVEL', from: 'info', to: 'debug' },
    { path: 'env.NEW_FLAG', to: '1' },
    { path: 'instances', from: 3, to: 5 },
    { path: 'route.hosts', from: [], to: ['a.example', 'b.example'] },
  ]);
  const text = renderPlan(plan);
  assert.match(text, /^~ service web$/m);
  assert.match(text, /^ {4}~ instances: 3 → 5$/m);
  assert.match(text, /^ {4}\+ env\.NEW_FLAG: "1"$/m);
  assert.match(text, /^\+ service worker \(1 instance\(s\), command: node worker\.js\)$/m);
  assert.match(text, /^- service api$/m);
  assert.match(text, /1 to add, 1 to change, 1 to remove$/);
});

test('a key removed from env is reported as removed', () => {
  const live = parseConfig(base).services;
  const desired = parseConfig(base.replace('env: { LOG_LEVEL: info }', 'env: {}')).services;
  const plan = planServices(desired, live);
  const web = plan.changes.find((c) => c.service === 'web');
  assert.ok(web?.kind === 'change');
  assert.deepEqual(web.fields, [{ path: 'env.LOG_LEVEL', from: 'info' }]);
  assert.match(renderPlan(plan), /^ {4}- env\.LOG_LEVEL: "info"$/m);
});
