/**
 * A signal that aborts after `ms` (reason: a `TimeoutError` DOMException, like `AbortSignal.timeout`)
 * or when `parent` aborts (its reason). Use it instead of `AbortSignal.any([parent,
 * AbortSignal.timeout(ms)])`: on Node 20 a timeout signal referenced only by a composite is garbage
 * collected and never fires (nodejs/node#57736), which left the agent waiting 45 s on a stalled
 * controller instead of failing over after 5 s. Here the timer holds the controller strongly; the
 * listener on `parent` is removed when the timer fires, so a long-lived parent does not collect them.
 */
export function deadline(ms: number, parent?: AbortSignal): AbortSignal {
  const ac = new AbortController();
  if (parent?.aborted) {
    ac.abort(parent.reason);
    return ac.signal;
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
  return ac.signal;
}
