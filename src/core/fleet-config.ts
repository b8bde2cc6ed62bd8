import { z } from 'zod';
import { duration } from './duration.js';

/**
 * The fleet part of a service's spec: how many instances may exist (min/max around `instances`),
 * where they may go (zone spreading, host label constraints), how the agent restarts a crashing one
 * before the controller moves it elsewhere, and target-tracking autoscaling. Defaults keep a service
 * that says nothing about any of this exactly as it was.
 */

export const placementSchema = z.strictObject({
  /** Largest allowed difference in the service's instance count between two eligible zones. */
  maxSkew: z.number().int().min(1).max(1000).default(1),
  /** Host labels an instance's host must carry, e.g. `{ disk: ssd }`. */
  constraints: z.record(z.string().min(1), z.string()).default({}),
  /**
   * Disruption budget for drains, patches and evacuations: an instance on a draining host is stopped
   * without a replacement only while this many stay serving. Default: the instance count (always move
   * first).
   */
  minAvailable: z.number().int().min(0).max(1000).optional(),
});
export type PlacementSpec = z.infer<typeof placementSchema>;

export const restartPolicySchema = z.strictObject({
  /** Restarts the agent tries within `interval`; one more crash and the instance is `failed`. */
  attempts: z.number().int().min(0).max(1000).default(5),
  interval: duration.default(60_000),
});
export type RestartPolicySpec = z.infer<typeof restartPolicySchema>;

export const autoscaleSchema = z.strictObject({
  /** `cpu`: percent of one core per instance. `rps`: requests per second per instance, from the proxies. */
  metric: z.enum(['cpu', 'rps']),
  target: z.number().positive(),
  /** Scale down only to the highest recommendation seen within this window (no flapping). */
  scaleDownStabilization: duration.default(300_000),
  /** At most this many instances added per decision. */
  scaleUpStep: z.number().int().min(1).max(1000).default(4),
});
export type AutoscaleSpec = z.infer<typeof autoscaleSchema>;

export const scalingSchema = z
  .strictObject({
    min: z.number().int().min(0).max(1000).default(0),
    max: z.number().int().min(0).max(1000).default(1000),
    autoscale: autoscaleSchema.optional(),
  })
  .refine((s) => s.min <= s.max, { message: 'scaling.min must not exceed scaling.max' });
export type ScalingSpec = z.infer<typeof scalingSchema>;

export const placementDefault: PlacementSpec = placementSchema.parse({});
export const restartDefault: RestartPolicySpec = restartPolicySchema.parse({});
export const scalingDefault: ScalingSpec = scalingSchema.parse({});

/** The fleet fields of a spec, with defaults for specs stored before they existed. */
export function fleetSpec(spec: {
  placement?: PlacementSpec | undefined;
  restart?: RestartPolicySpec | undefined;
  scaling?: ScalingSpec | undefined;
}): { placement: PlacementSpec; restart: RestartPolicySpec; scaling: ScalingSpec } {
  return {
    placement: spec.placement ?? placementDefault,
    restart: spec.restart ?? restartDefault,
    scaling: spec.scaling ?? scalingDefault,
  };
}

/** `instances` must lie within scaling min/max; the message names both. */
export function instancesOutOfRange(instances: number, scaling: ScalingSpec | undefined): string | undefined {
  if (!scaling) return undefined;
  if (instances < scaling.min || instances > scaling.max) {
    return `instances (${instances}) must lie within scaling.min (${scaling.min}) and scaling.max (${scaling.max})`;
  }
  return undefined;
}
