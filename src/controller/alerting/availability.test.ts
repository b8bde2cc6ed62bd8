import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  allowedDowntimeMs,
  compose,
  nines,
  parallel,
  replicasNeeded,
  requiredInParallel,
  requiredInSeries,
  series,
} from './availability.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} ≈ ${b}`);

describe('availability (seed 004)', () => {
  it('three three-nines components in series ≈ 0.997, failing a three-nines SLA', () => {
    // 0.999³ = 0.997002999
    close(series(0.999, 0.999, 0.999), 0.997002999);
    assert.equal(series(0.999, 0.999, 0.999).toFixed(3), '0.997');
    assert.ok(series(0.999, 0.999, 0.999) < 0.999);
  });

  it('two zones of 0.99 in parallel = 0.9999', () => {
    // 1 − (1 − 0.99)² = 1 − 0.0001
    close(parallel(0.99, 0.99), 0.9999);
  });

  it('nests: LB → (2 zones of app) → db', () => {
    const a = compose({
      kind: 'series',
      parts: [
        { kind: 'component', name: 'lb', availability: 0.9995 },
        {
          kind: 'parallel',
          parts: [
            { kind: 'component', name: 'app-a', availability: 0.99 },
            { kind: 'component', name: 'app-b', availability: 0.99 },
          ],
        },
        { kind: 'component', name: 'db', availability: 0.9995 },
      ],
    });
    // 0.9995 × 0.9999 × 0.9995 = 0.99890027…
    close(a, 0.9995 * 0.9999 * 0.9995);
    assert.throws(() => compose({ kind: 'component', name: 'x', availability: 1.2 }), RangeError);
  });

  it('what each component needs for an SLO', () => {
    // three in series for 0.999: 0.999^(1/3) ≈ 0.99966656
    close(requiredInSeries(0.999, 3), 0.999 ** (1 / 3));
    assert.ok(series(...[1, 2, 3].map(() => requiredInSeries(0.999, 3))) >= 0.999 - 1e-12);
    // two replicas for 0.9999: 1 − 0.0001^(1/2) = 0.99
    close(requiredInParallel(0.9999, 2), 0.99);
    // EC2's 0.9995 per instance to reach 0.9999: 1 − 0.0005^n ≥ 0.9999 → n = 2 (0.99999975)
    assert.equal(replicasNeeded(0.9995, 0.9999), 2);
    assert.equal(replicasNeeded(0.9, 0.99999), 5); // 0.1^5 = 1e-5
    assert.equal(replicasNeeded(0.999, 0.99), 1);
  });

  it('nines and downtime', () => {
    close(nines(0.999), 3);
    // 0.1 % of 30 days = 43.2 minutes
    close(allowedDowntimeMs(0.999), 43.2 * 60_000, 1e-3);
  });
});
