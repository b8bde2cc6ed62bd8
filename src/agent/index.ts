export { Agent, type AgentOptions, REPORT_COALESCE_MS } from './agent.js';
export { ArtifactCache, isSafeSegment } from './artifacts.js';
export {
  attemptAfterCrash,
  backoffDelayMs,
  controllerRetryDelayMs,
  RESTART_BACKOFF,
  restartDelayMs,
} from './backoff.js';
export { ControllerClient, ControllerHttpError, hostDesiredStateSchema } from './client.js';
export { type HealthState, initialHealth, nextHealth } from './health.js';
export { type CurrentInstance, type PlanAction, planInstances } from './plan.js';
export { isProcessAlive, processStartTime } from './procfs.js';
export { agentPaths, type InstanceRecord } from './state.js';
export { InstanceSupervisor } from './supervisor.js';
