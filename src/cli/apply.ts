import { dirname, resolve } from 'node:path';
import type { DeployRecord, EventRecord, ServiceRecord } from '../controller/store/types.js';
import { loadConfigFile, type NinesConfig, type ServiceSpec } from '../core/config.js';
import { type ConfigPlan, planServices, renderPlan } from '../core/config-diff.js';
import { applyAlerting } from './alerts.js';
import { applyChecks } from './checks.js';
import type { Client } from './client.js';
import { deployResultLine, followDeploy, release } from './commands.js';
import { applyDrillSchedules } from './drill.js';
import type { Out } from './output.js';

/**
 * Config as code: `nines plan` / `nines apply` / `nines diff` compare `nines.yaml` with what the
 * controller runs. `nines up` applies its file through the same function, so the laptop and the
 * fleet converge the same way.
 */

/** Fields the reconciler acts on at once; every other field is used for instances started later. */
const IMMEDIATE = new Set(['instances']);

export const REMOVE_NOTE = '(not in the file; apply leaves it running — `nines scale NAME 0` stops it)';

export async function livePlan(client: Client, config: NinesConfig): Promise<ConfigPlan> {
  const { services } = await client.get<{ services: ServiceRecord[] }>('/v1/services');
  const live: Record<string, ServiceSpec> = {};
  for (const s of services) live[s.name] = s.spec;
  return planServices(config.services, live);
}

export function loadForPlan(file: string): { config: NinesConfig; baseDir: string } {
  const path = resolve(file);
  return { config: loadConfigFile(path), baseDir: dirname(path) };
}

/** Apply the plan's additions and changes; a new service with a `source` and no release gets v1 deployed. */
export async function applyPlan(
  client: Client,
  plan: ConfigPlan,
  baseDir: string,
  out: Out,
): Promise<{ applied: string[]; deploys: DeployRecord[] }> {
  const applied: string[] = [];
  const deploys: DeployRecord[] = [];
  for (const c of plan.changes) {
    if (c.kind === 'remove') continue;
    await client.put(`/v1/services/${encodeURIComponent(c.service)}`, c.spec);
    applied.push(c.service);
    if (c.kind === 'change') {
      const later = c.fields.filter((f) => !IMMEDIATE.has(f.path.split('.')[0] ?? ''));
      if (later.length > 0) {
        out.line(
          `${c.service}: ${later.map((f) => f.path).join(', ')} apply to instances started from now on ` +
            '(the next deploy or restart)',
        );
      }
    }
    const d = await deployFirstRelease(client, c.service, c.spec, baseDir, out);
    if (d) deploys.push(d);
  }
  return { applied, deploys };
}

/** `nines up`: apply the whole file, including services identical to the file but never deployed. */
export async function applyConfig(
  client: Client,
  config: NinesConfig,
  baseDir: string,
  out: Out,
): Promise<void> {
  // Alerting first: the first deploys already run under the file's rules and deploy grace.
  await applyAlerting(client, config);
  const plan = await livePlan(client, config);
  await applyPlan(client, plan, baseDir, out);
  await applyChecks(client, config, out);
  await applyDrillSchedules(client, config, out);
  for (const name of plan.unchanged) {
    const spec = config.services[name];
    if (spec) await deployFirstRelease(client, name, spec, baseDir, out);
  }
}

async function deployFirstRelease(
  client: Client,
  name: string,
  spec: ServiceSpec,
  baseDir: string,
  out: Out,
): Promise<DeployRecord | undefined> {
  const { service } = await client.get<{ service: ServiceRecord }>(
    `/v1/services/${encodeURIComponent(name)}`,
  );
  if (service.currentRelease || !spec.source) return undefined;
  const releases = await client.get<{ releases: unknown[] }>(
    `/v1/services/${encodeURIComponent(name)}/releases`,
  );
  if (releases.releases.length === 0) {
    out.line(`packing ${spec.source} as ${name} v1`);
    await release(client, name, resolve(baseDir, spec.source), 'v1');
  }
  out.line(`deploying ${name} v1 (${spec.instances} instances)`);
  const { deploy } = await client.post<{ deploy: DeployRecord }>(
    `/v1/services/${encodeURIComponent(name)}/deploys`,
    { version: 'v1' },
  );
  const done = await followDeploy(client, deploy, out);
  out.line(deployResultLine(done));
  return done;
}

/**
 * `nines diff`: the plan read the other way round — what changed on the controller since the file
 * was applied (someone ran `nines scale` or `nines mode` by hand) — with who did it, from the events.
 */
/** Events that record a person's change to a service's spec (not the reconciler's own work). */
const BY_HAND = new Set(['service.created', 'service.updated']);

export async function renderDrift(client: Client, plan: ConfigPlan): Promise<string> {
  if (plan.changes.length === 0) return 'no drift: the controller matches the file';
  const lines = [
    'the controller differs from the file (what `nines apply` would do):',
    renderPlan(plan, { removeNote: '(on the controller, not in the file)' }),
  ];
  const { events } = await client.get<{ events: EventRecord[] }>('/v1/events?limit=200');
  for (const c of plan.changes) {
    if (c.kind === 'add') continue;
    const last = events.find((e) => e.subject === c.service && BY_HAND.has(e.kind));
    if (last) {
      lines.push(`  ${c.service}: last changed ${new Date(last.at).toISOString()} — ${last.message}`);
    }
  }
  return lines.join('\n');
}
