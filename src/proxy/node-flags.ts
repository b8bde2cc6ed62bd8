/**
 * V8 flags for a process that runs the proxy (cluster workers get them; the systemd unit in
 * docs/operations.md starts `nines proxy` with them; bench/proxy runs nines with them).
 *
 * Measured with bench/proxy's setup (proxy pinned alone on one core, wrk -c50, every feature on), p99:
 * default flags 6.7–8.3 ms; `--single-threaded-gc` 5.9 ms; both flags 3.8–4.6 ms; throughput and CPU
 * per request unchanged (30–33k rps, 30–31 µs). Why: at ~30k requests/s the default young generation
 * (16 MB semi-spaces) is scavenged every ~50 ms in a 3–6 ms pause, which every request in flight waits
 * out; 2 MB semi-spaces scavenge every ~7 ms in ~0.65 ms. V8's helper threads for parallel and
 * concurrent GC only compete with the event loop for the same core when the proxy has one core.
 * Heap sizing cannot be changed after V8 starts, hence process flags.
 */
export const PROXY_NODE_FLAGS: readonly string[] = ['--single-threaded-gc', '--max-semi-space-size=2'];
