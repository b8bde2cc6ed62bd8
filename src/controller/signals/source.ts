import type { Sample } from '../alerting/lifecycle.js';
import type { SignalSource } from '../alerting/sources.js';
import type { Signals } from './signals.js';

/**
 * The alert evaluator's view of `Signals`: host metrics, service states and black-box checks as one
 * more source. Signals another source already offers under the same name are left out (`exclude`),
 * so a rule on `host_up` sees one series per host, not two.
 */
export function signalsSource(signals: Signals, exclude: readonly string[] = []): SignalSource {
  const skip = new Set(exclude);
  return {
    name: 'signals',
    collect(): Sample[] {
      const out: Sample[] = [];
      for (const s of signals.current()) {
        if (!skip.has(s.signal)) out.push({ signal: s.signal, labels: s.labels, value: s.value });
      }
      return out;
    },
  };
}
