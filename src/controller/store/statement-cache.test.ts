import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { withStatementCache } from './sqlite.js';

test('the statement cache reuses compiled statements, bounded, and never shares a busy one', () => {
  const raw = new Database(':memory:');
  const db = withStatementCache(raw, 2);
  try {
    raw.exec('create table t (a integer); insert into t values (1), (2), (3)');
    const s1 = db.prepare('select a from t order by a');
    assert.equal(db.prepare('select a from t order by a'), s1, 'same SQL, same statement');
    // While one iterates, the same query elsewhere gets its own statement.
    const it = (s1 as unknown as Database.Statement).iterate();
    it.next();
    const s2 = db.prepare('select a from t order by a');
    assert.notEqual(s2, s1);
    assert.deepEqual((s2 as unknown as Database.Statement).all(), [{ a: 1 }, { a: 2 }, { a: 3 }]);
    it.return?.();
    // Bounded: the least recently used goes.
    db.prepare('select 1');
    db.prepare('select 2');
    assert.notEqual(db.prepare('select a from t order by a'), s1);
  } finally {
    db.close();
  }
});

test('a cached statement follows a schema change (a migration adding a column)', () => {
  const raw = new Database(':memory:');
  const db = withStatementCache(raw);
  try {
    raw.exec('create table t (a integer); insert into t values (1)');
    const all = () => (db.prepare('select * from t') as unknown as Database.Statement).all();
    assert.deepEqual(all(), [{ a: 1 }]);
    raw.exec('alter table t add column b text');
    assert.deepEqual(all(), [{ a: 1, b: null }]);
  } finally {
    db.close();
  }
});
