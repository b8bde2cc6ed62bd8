import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  budgetSpent,
  burnRate,
  type Counts,
  DEFAULT_BURN_WINDOWS,
  errorBudgetRemaining,
  evaluateBurnRates,
  worstBurn,
} from './burnrate.js';
import { DAY, HOUR, MINUTE } from './types.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} ≈ ${b}`);

describe('burn rate', () => {
  it('objective 0.999, 2 % errors → burn 20', () => {
    // allowed error ratio = 1 − 0.999 = 0.001; observed = 200 / 10 000 = 0.02; 0.02 / 0.001 = 20
    close(burnRate(0.999, { good: 9_800, total: 10_000 }), 20);
  });

  it('burn 1 spends exactly the budget; no traffic burns nothing', () => {
    // 0.1 % errors against a 99.9 % objective: 0.001 / 0.001 = 1
    close(burnRate(0.999, { good: 999_000, total: 1_000_000 }), 1);
    assert.equal(burnRate(0.999, { good: 0, total: 0 }), 0);
    assert.throws(() => burnRate(1, { good: 1, total: 1 }), RangeError);
  });

  it('the workbook table spends 2 %, 5 % and 10 % of a 30-day budget', () => {
    const [p1, p6, t3] = DEFAULT_BURN_WINDOWS;
    // 14.4 × 1 h / 720 h = 0.02 ; 6 × 6 h / 720 h = 0.05 ; 1 × 72 h / 720 h = 0.1
    close(budgetSpent(p1!.factor, p1!.longMs), 0.02);
    close(budgetSpent(p6!.factor, p6!.longMs), 0.05);
    close(budgetSpent(t3!.factor, t3!.longMs), 0.1);
  });

  it('pages only when both the long and the short window burn fast enough', () => {
    // objective 0.999. 1 h: 2 % errors → 20 ≥ 14.4; 5 min: 2 % → 20 ≥ 14.4 → page-1h fires.
    // 6 h: 0.5 % → 5 < 6 → page-6h quiet. 3 d: 0.2 % → 2 ≥ 1, 6 h: 5 ≥ 1 → ticket fires.
    const counts = new Map<number, Counts>([
      [HOUR, { good: 9_800, total: 10_000 }],
      [5 * MINUTE, { good: 980, total: 1_000 }],
      [6 * HOUR, { good: 59_700, total: 60_000 }],
      [30 * MINUTE, { good: 4_900, total: 5_000 }],
      [3 * DAY, { good: 998_000, total: 1_000_000 }],
    ]);
    const a = evaluateBurnRates(0.999, (ms) => counts.get(ms) ?? { good: 0, total: 0 });
    assert.deepEqual(
      a.map((x) => [x.window.name, x.firing]),
      [
        ['page-1h', true],
        ['page-6h', false],
        ['ticket-3d', true],
      ],
    );
    close(a[0]!.longBurn, 20);
    close(a[1]!.longBurn, 5); // 300 / 60 000 = 0.005 → 5
    close(a[1]!.shortBurn, 20); // 100 / 5 000 = 0.02 → 20
    close(a[2]!.longBurn, 2); // 2 000 / 1 000 000 = 0.002 → 2
    assert.equal(worstBurn(a)?.window.name, 'page-1h');
  });

  it('a burst that has stopped does not page: the 5-minute window is clean', () => {
    // 1 h: 3 % errors → 30; 5 min: 0 errors → 0 < 14.4
    const a = evaluateBurnRates(0.999, (ms) =>
      ms === HOUR ? { good: 970, total: 1000 } : { good: 100, total: 100 },
    );
    assert.equal(a[0]!.firing, false);
    assert.equal(worstBurn(a), undefined);
  });

  it('error budget remaining', () => {
    // 99.9 % over 1 000 000 requests allows 1 000 bad; 250 bad → 75 % left; 2 000 bad → −100 %
    close(errorBudgetRemaining(0.999, { good: 999_750, total: 1_000_000 }), 0.75);
    close(errorBudgetRemaining(0.999, { good: 998_000, total: 1_000_000 }), -1);
  });
});
