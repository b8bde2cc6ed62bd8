import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configJsonSchemaText } from './config-schema.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('schema/nines.schema.json is the schema generated from the zod definition', () => {
  const committed = readFileSync(join(root, 'schema', 'nines.schema.json'), 'utf8');
  assert.equal(
    committed,
    configJsonSchemaText(),
    'out of date: run `npm run schema` and commit schema/nines.schema.json',
  );
});

test('the example nines.yaml points editors at the schema', () => {
  const yaml = readFileSync(join(root, 'nines.yaml'), 'utf8');
  assert.match(yaml, /^# yaml-language-server: \$schema=\.\/schema\/nines\.schema\.json$/m);
});

test('durations carry a pattern so editors flag "5 seconds" before nines does', () => {
  const schema = JSON.parse(configJsonSchemaText()) as {
    properties: { services: { additionalProperties: { properties: Record<string, unknown> } } };
  };
  const drain = JSON.stringify(schema.properties.services.additionalProperties.properties.drainTimeout);
  assert.match(drain, /"pattern"/);
  const re = new RegExp(
    (JSON.parse(drain) as { anyOf: Array<{ pattern?: string }> }).anyOf.find((a) => a.pattern)?.pattern ??
      '$^',
  );
  assert.ok(re.test('2s') && re.test('1.5m') && re.test('500ms'));
  assert.ok(!re.test('5 seconds'));
});
