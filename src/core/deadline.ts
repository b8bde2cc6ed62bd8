/**
 * A signal that aborts after `ms` (reason: a `TimeoutError` DOMException, like `AbortSignal.timeout`)
 * or when `parent` aborts (its reason). Use it instead of `AbortSignal.any([parent,
 * AbortSignal.timeout(ms)])`: on Node 20 a timeout signal referenced only by a composite is garbage
 * collected and never fires (nodejs/node#57736), which left the agent waiting 45 s on a stalled
 * controller instead of failing over after 5 s. Here the timer holds the controller strongly; the
 * listener on `parent` is removed when the timer fires, so a long-lived parent does not collect them.
 */
export function deadline(ms: number, parent?: AbortSignal): AbortSignal {
  return arm(ms, parent).signal;
}

/**
 * Runs `fn` with a `deadline(ms, parent)` signal and disarms it when `fn` settles: the timer is
 * cleared and the listener on `parent` removed at once. Use it for calls on a long-lived parent
 * signal: a listener left until its timer fires piled up on the agent's signal (a report every
 * half second with a 5 s deadline: "MaxListenersExceededWarning: 11 abort listeners").
 */
export async function withDeadline<T>(
  ms: number,
  parent: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const d = arm(ms, parent);
  try {
    return await fn(d.signal);
  } finally {
    d.disarm();
  }
}

function arm(ms: number, parent?: AbortSignal): { signal: AbortSignal; disarm: () => void } {
  const ac = new AbortController();
  if (parent?.aborted) {
    ac.abort(parent.reason);
    return { signal: ac.signal, disarm: () => {} };
  }
  const onParent = (): void => {
    clearTimeout(timer);
    ac.abort(parent?.reason);
  };
  const timer = setTimeout(() => {
    parent?.removeEventListener('abort', onParent);
    ac.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError'));
  }, ms);
  // Like AbortSignal.timeout: the deadline alone does not keep the process alive.
  timer.unref();
  parent?.addEventListener('abort', onParent, { once: true });
  return {
    signal: ac.signal,
    disarm: () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParent);
    },
  };
}
