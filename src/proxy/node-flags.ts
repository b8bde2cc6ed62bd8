/**
 * Optional V8 flags for a proxy process that has one core to itself and cares more about its latency
 * tail than about its last 10 % of throughput (docs/operations.md; bench/proxy prints a row with them).
 *
 * Measured with bench/proxy's setup (proxy pinned alone on one core, wrk -c50, every feature on), on
 * a quiet machine: default flags 30.6 µs per request, p99 5.9–11 ms; with these flags 33.6 µs per
 * request (−9 % requests/s), p99 3.8–5.0 ms. `--max-semi-space-size=2` alone changed neither. Why: V8's
 * parallel and concurrent GC threads compete with the event loop for the proxy's one core, and with the
 * default 16 MB semi-spaces a scavenge every ~50 ms pauses 3–6 ms, which every request in flight waits
 * out; single-threaded with 2 MB semi-spaces it is ~0.65 ms every ~7 ms, on the main thread (hence the
 * CPU). Heap sizing cannot be changed once V8 runs, hence process flags.
 */
export const LATENCY_NODE_FLAGS: readonly string[] = ['--single-threaded-gc', '--max-semi-space-size=2'];
