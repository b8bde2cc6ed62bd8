import { MetricsText } from '../../core/exposition.js';
import { hostMetricsText } from '../../core/signals-text.js';
import type { Signals } from './signals.js';

/**
 * The controller's `/metrics`: the fleet as one scrape. Host counters keep node_exporter's names with
 * `host`/`hostname` labels; everything the controller derives or decides is `nines_<signal>`.
 */

/** Signals that are counters by nature; everything else is a gauge. */
const COUNTERS: Record<string, string> = { instance_restarts: 'nines_instance_restarts_total' };

const HELP: Record<string, string> = {
  host_up: '1 when the host reported within the down-after time.',
  host_report_age_seconds: "Seconds since the host's last report.",
  instance_healthy: "1 when the instance passes its agent's readiness probe.",
  instance_running: '1 when the instance process is running.',
  instance_restarts: 'Restarts of the instance after it exited.',
  service_requests_per_second: 'Answers per second over the last minute, all proxies.',
  service_error_ratio: 'Share of 5xx answers over the last 5 minutes, all proxies.',
  service_up: '0 when the service has no healthy instance.',
  service_latency_p50_seconds: 'Median answer time over the last 5 minutes, all proxies.',
  service_latency_p90_seconds: '90th percentile answer time over the last 5 minutes, all proxies.',
  service_latency_p99_seconds: '99th percentile answer time over the last 5 minutes, all proxies.',
  service_release_requests_per_second: "Answers per second of the release's instances over the last minute.",
  service_release_error_ratio: "Share of 5xx answers of the release's instances over the last 5 minutes.",
  service_release_latency_p50_seconds:
    "Median answer time of the release's instances over the last 5 minutes.",
  service_release_latency_p90_seconds:
    "90th percentile answer time of the release's instances over the last 5 minutes.",
  service_release_latency_p99_seconds:
    "99th percentile answer time of the release's instances over the last 5 minutes.",
  service_state: 'Service state: 0 up, 1 degraded, 2 down, 3 unknown.',
  check_up: '0 when the check is down (quorum of locations failing).',
  check_state: 'Check state: 0 up, 1 degraded, 2 down, 3 unknown.',
  check_failing_locations: 'Locations whose last result failed.',
  check_location_up: "1 when the location's last result passed.",
  check_latency_seconds: "Duration of the location's last probe.",
  check_cert_days_left: "Days until the certificate seen by the location's last probe expires.",
};

export function controllerMetricsText(
  signals: Signals,
  extra: { checkResultsReceived: number } = { checkResultsReceived: 0 },
): string {
  const out = new MetricsText();
  for (const s of signals.current()) {
    const counter = COUNTERS[s.signal];
    const name = counter ?? `nines_${s.signal}`;
    out.add(
      name,
      counter ? 'counter' : 'gauge',
      HELP[s.signal] ?? `nines signal ${s.signal}.`,
      s.labels,
      s.value,
    );
  }
  out.declare(
    'nines_service_requests_total',
    'counter',
    'Answers the proxies gave since this controller started.',
  );
  out.declare(
    'nines_service_failed_requests_total',
    'counter',
    '5xx answers the proxies gave since this controller started.',
  );
  for (const name of signals.serviceNames()) {
    const t = signals.serviceTotals(name);
    if (!t) continue;
    out.add('nines_service_requests_total', 'counter', '', { service: name }, t.requests);
    out.add('nines_service_failed_requests_total', 'counter', '', { service: name }, t.failed);
  }
  out.declare(
    'nines_service_release_requests_total',
    'counter',
    "Answers the release's instances gave through the proxies since this controller started.",
  );
  out.declare(
    'nines_service_release_failed_requests_total',
    'counter',
    "5xx answers the release's instances gave through the proxies since this controller started.",
  );
  for (const { service, release } of signals.releaseKeys()) {
    const t = signals.releaseTotals(service, release);
    if (!t) continue;
    out.add('nines_service_release_requests_total', 'counter', '', { service, release }, t.requests);
    out.add('nines_service_release_failed_requests_total', 'counter', '', { service, release }, t.failed);
  }
  out.add(
    'nines_check_results_received_total',
    'counter',
    'Check results received from agents.',
    {},
    extra.checkResultsReceived,
  );
  for (const id of signals.hostIds()) {
    const h = signals.latestHost(id);
    const name = signals.hostName(id);
    if (h) hostMetricsText(h, out, { host: id, hostname: name ?? id });
  }
  const mem = process.memoryUsage();
  const cpu = process.cpuUsage();
  out.add('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', {}, mem.rss);
  out.add(
    'process_cpu_seconds_total',
    'counter',
    'Total user and system CPU time spent in seconds.',
    {},
    (cpu.user + cpu.system) / 1e6,
  );
  out.add('nodejs_heap_used_bytes', 'gauge', 'V8 heap in use in bytes.', {}, mem.heapUsed);
  return out.text();
}
