#!/usr/bin/env node
// Runs the compiled suite with node's test runner. Unit tests run two at a time. End-to-end tests
// (*.e2e.test.js: real processes under real load) run two at a time too — they wait far more than they
// compute (a whole serial run used 0.6 of the machine's 2 cores) — except the files whose assertions
// are timings (a takeover within the lease + 2 s, a maintenance window within 20 % of its plan, network
// namespaces): those say `nines-test: serial` and run alone, first. Ends with one "N passed, N failed" line.
// Usage: npm test [-- substring …]   (only files whose path contains one of the substrings)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);
const files = readdirSync(join(root, 'dist'), { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.test.js'))
  .map((f) => join(root, 'dist', f))
  .filter(
    (f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s.replace(/\.ts$/, ''))),
  )
  .sort();
// Unit files that use PostgreSQL run one at a time: Kysely's migrator and introspection read every
// schema of the database, and another file dropping its schema meanwhile fails them ("schema … does not
// exist").
const usesPg = (f) => readFileSync(f, 'utf8').includes('NINES_TEST_PG_URL');
const unitAll = files.filter((f) => !f.endsWith('.e2e.test.js'));
const unit = unitAll.filter((f) => !usesPg(f));
const unitPg = unitAll.filter(usesPg);
const e2eAll = files.filter((f) => f.endsWith('.e2e.test.js'));
const serial = (f) => /nines-test: serial/.test(readFileSync(f, 'utf8'));
const e2eSerial = e2eAll.filter(serial);
const e2e = e2eAll.filter((f) => !serial(f));
const tapDir = mkdtempSync(join(tmpdir(), 'nines-tests-'));
const totals = { pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0 };
let status = 0;
for (const [name, list, concurrency] of [
  ['unit', unit, 2],
  ['unit (PostgreSQL)', unitPg, 1],
  ['e2e (alone)', e2eSerial, 1],
  ['e2e', e2e, 2],
]) {
  if (list.length === 0) continue;
  const tap = join(tapDir, `${name.replace(/\W+/g, '-')}.tap`);
  console.log(`\n== ${name} tests: ${list.length} files ==`);
  const r = spawnSync(
    process.execPath,
    [
      '--test',
      `--test-concurrency=${concurrency}`,
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      '--test-reporter=tap',
      `--test-reporter-destination=${tap}`,
      ...list,
    ],
    { stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test' } },
  );
  if (r.status !== 0) status = 1;
  const text = readFileSync(tap, 'utf8');
  for (const k of Object.keys(totals)) {
    const m = new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text);
    if (m) totals[k] += Number(m[1]);
  }
}
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
console.log(`\n${totals.pass} passed, ${totals.fail + totals.cancelled} failed, ${totals.skipped} skipped`);
process.exit(status);
