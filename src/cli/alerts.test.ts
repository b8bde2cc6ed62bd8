import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alertingConfigOf, alertingConfigSchema } from '../core/alerting-config.js';
import { parseConfig } from '../core/config.js';
import { alertingChanges, renderAlertingDrift } from './alerts.js';
import type { Client } from './client.js';

const yaml = (objective: string, forSpan: string, extra = '') => `services:
  web:
    command: node server.js
    slo: { objective: "${objective}" }
alerts:
  down:
    signal: instance_healthy
    condition: "< 1"
    for: ${forSpan}
${extra}`;

/** A controller that runs `applied` (as GET /v1/alerting/config answers it). */
const controller = (applied: string) => {
  const config = alertingConfigSchema.parse(
    JSON.parse(JSON.stringify(alertingConfigOf(parseConfig(applied)))),
  );
  return { get: async () => ({ config }) } as unknown as Client;
};

test('alerting drift field by field, from the controller to the file, with the file names of slos', async () => {
  const file = parseConfig(
    yaml('99.9%', '2m', 'channels:\n  hook: { kind: webhook, url: "http://127.0.0.1:9/h" }\n'),
  );
  const none = await alertingChanges(
    controller(yaml('99.9%', '2m', 'channels:\n  hook: { kind: webhook, url: "http://127.0.0.1:9/h" }\n')),
    file,
  );
  assert.deepEqual(none, []);
  assert.equal(renderAlertingDrift(none), undefined);

  const fields = await alertingChanges(controller(yaml('99.5%', '1m')), file);
  assert.deepEqual(
    fields.map((f) => f.path),
    ['alerts.down.for', 'channels.hook', 'services.web.slo.objective'],
  );
  assert.deepEqual(fields[0], { path: 'alerts.down.for', from: 60_000, to: 120_000 });
  const text = renderAlertingDrift(fields) ?? '';
  assert.match(text, /^~ alerting: alerts, channels, services differ/);
  assert.match(text, /^ {4}~ alerts\.down\.for: 60000 → 120000$/m);
  assert.match(text, /^ {4}\+ channels\.hook: \{/m);
  assert.match(text, /^ {4}~ services\.web\.slo\.objective: 0\.995 → 0\.999$/m);

  // A rule removed from the file shows as removed.
  const gone = await alertingChanges(
    controller(yaml('99.9%', '2m')),
    parseConfig('services:\n  web:\n    command: node server.js\n    slo: { objective: "99.9%" }\n'),
  );
  assert.deepEqual(
    gone.map((f) => [f.path, 'to' in f]),
    [['alerts.down', false]],
  );
});
