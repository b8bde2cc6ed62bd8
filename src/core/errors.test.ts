import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { errorRegistry, isErrorCode, isNinesError, NinesError } from './errors.js';

/** dist/core/errors.test.js → <repo>/docs/errors.md */
const DOC = fileURLToPath(new URL('../../docs/errors.md', import.meta.url));

interface DocEntry {
  code: string;
  status: number | undefined;
  text: string;
}

function parseErrorDoc(md: string): DocEntry[] {
  const entries: DocEntry[] = [];
  const sections = md.split(/^## /m).slice(1);
  for (const section of sections) {
    const [heading = '', ...rest] = section.split('\n');
    const body = rest.join('\n');
    const status = /^HTTP status: (\d{3})$/m.exec(body)?.[1];
    const text = body
      .replace(/^HTTP status: \d{3}$/m, '')
      .trim()
      .replace(/\s+/g, ' ');
    entries.push({ code: heading.trim(), status: status === undefined ? undefined : Number(status), text });
  }
  return entries;
}

describe('docs/errors.md', () => {
  const entries = parseErrorDoc(readFileSync(DOC, 'utf8'));

  it('documents exactly the codes of the registry, once each', () => {
    const documented = entries.map((e) => e.code);
    assert.equal(new Set(documented).size, documented.length, 'a code is documented twice');
    assert.deepEqual([...documented].sort(), Object.keys(errorRegistry).sort());
  });

  it('gives each code the status of the registry', () => {
    for (const e of entries) {
      assert.ok(isErrorCode(e.code), `${e.code} is not in the registry`);
      assert.equal(e.status, errorRegistry[e.code].status, `${e.code}: documented status`);
    }
  });

  it('says something about each code', () => {
    for (const e of entries)
      assert.ok(e.text.length >= 40, `${e.code}: explain when it happens and what to do`);
  });

  it('parses headings and statuses', () => {
    const md = 'intro\n## NINES_E_A\n\nHTTP status: 418\n\nText here.\n## NINES_E_B\nno status\n';
    assert.deepEqual(parseErrorDoc(md), [
      { code: 'NINES_E_A', status: 418, text: 'Text here.' },
      { code: 'NINES_E_B', status: undefined, text: 'no status' },
    ]);
  });
});

describe('NinesError', () => {
  it('takes its status from the registry and serializes to the error body', () => {
    const err = new NinesError('NINES_E_RELEASE_EXISTS', 'release v1 of web already exists', {
      service: 'web',
      version: 'v1',
    });
    assert.ok(err instanceof Error);
    assert.ok(isNinesError(err));
    assert.equal(err.name, 'NinesError');
    assert.equal(err.status, 409);
    assert.deepEqual(err.toBody(), {
      error: {
        code: 'NINES_E_RELEASE_EXISTS',
        message: 'release v1 of web already exists',
        details: { service: 'web', version: 'v1' },
      },
    });
    assert.deepEqual(JSON.parse(JSON.stringify(err.toBody())), err.toBody());
  });

  it('omits details when there are none, keeps falsy details', () => {
    const body = new NinesError('NINES_E_NOT_FOUND', 'no route').toBody();
    assert.deepEqual(body, { error: { code: 'NINES_E_NOT_FOUND', message: 'no route' } });
    assert.equal(Object.hasOwn(body.error, 'details'), false);
    assert.deepEqual(new NinesError('NINES_E_VALIDATION', 'bad', null).toBody().error.details, null);
    assert.deepEqual(new NinesError('NINES_E_VALIDATION', 'bad', 0).toBody().error.details, 0);
  });

  it('has a status for every code, and isErrorCode/isNinesError reject strangers', () => {
    for (const [code, { status }] of Object.entries(errorRegistry)) {
      assert.ok(isErrorCode(code));
      assert.ok(status >= 400 && status <= 599, code);
      assert.equal(new NinesError(code as keyof typeof errorRegistry, 'm').status, status);
    }
    assert.equal(isErrorCode('NINES_E_NOPE'), false);
    assert.equal(isErrorCode('toString'), false);
    assert.equal(isErrorCode(42), false);
    assert.equal(isNinesError(new Error('x')), false);
    assert.equal(isNinesError({ code: 'NINES_E_INTERNAL' }), false);
  });
});
