/**
 * The one registry of nines error codes. Every error that leaves a plane carries one of these codes and
 * its HTTP status. `docs/errors.md` documents each code; `errors.test.ts` keeps the two in sync.
 */
export const errorRegistry = {
  NINES_E_INTERNAL: { status: 500, title: 'Internal error' },
  NINES_E_AUTH_REQUIRED: { status: 401, title: 'Authentication required' },
  NINES_E_AUTH_INVALID: { status: 401, title: 'Invalid credentials' },
  NINES_E_FORBIDDEN: { status: 403, title: 'Not allowed for this role' },
  NINES_E_NOT_FOUND: { status: 404, title: 'No such route' },
  NINES_E_BAD_REQUEST: { status: 400, title: 'Malformed request' },
  NINES_E_VALIDATION: { status: 400, title: 'Payload failed validation' },
  NINES_E_PAYLOAD_TOO_LARGE: { status: 413, title: 'Request body too large' },
  NINES_E_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported content type' },
  NINES_E_METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed' },
  NINES_E_CONFIG_INVALID: { status: 400, title: 'Invalid nines.yaml' },
  NINES_E_CONFIG_NOT_FOUND: { status: 400, title: 'Config file not found' },
  NINES_E_SERVICE_NOT_FOUND: { status: 404, title: 'No such service' },
  NINES_E_INSTANCE_NOT_FOUND: { status: 404, title: 'No such instance' },
  NINES_E_RELEASE_NOT_FOUND: { status: 404, title: 'No such release' },
  NINES_E_RELEASE_EXISTS: { status: 409, title: 'Release version already exists' },
  NINES_E_DEPLOY_NOT_FOUND: { status: 404, title: 'No such deploy' },
  NINES_E_DEPLOY_IN_PROGRESS: { status: 409, title: 'Another deploy holds the service lock' },
  NINES_E_NO_ROLLBACK_TARGET: { status: 409, title: 'No earlier stable release to roll back to' },
  NINES_E_ARTIFACT_CHECKSUM: { status: 422, title: 'Artifact checksum mismatch' },
  NINES_E_ARTIFACT_UNSAFE: { status: 422, title: 'Artifact contains unsafe entries' },
  NINES_E_ARTIFACT_INVALID: { status: 422, title: 'Artifact is not a readable tar.gz' },
  NINES_E_ARTIFACT_TOO_LARGE: { status: 413, title: 'Artifact exceeds the size limit' },
  NINES_E_INVALID_TRANSITION: { status: 409, title: 'State transition not allowed' },
  NINES_E_HOST_NOT_FOUND: { status: 404, title: 'No such host' },
  NINES_E_UNAVAILABLE: { status: 503, title: 'Controller not ready' },
  NINES_E_NO_ROUTE: { status: 404, title: 'No service matches this host and path' },
  NINES_E_NO_HEALTHY_UPSTREAM: { status: 503, title: 'No healthy instance to route to' },
  NINES_E_UPSTREAM_CONNECT: { status: 502, title: 'Could not connect to an instance' },
  NINES_E_UPSTREAM_RESET: { status: 502, title: 'Instance closed the connection before answering' },
  NINES_E_UPSTREAM_TIMEOUT: { status: 504, title: 'Instance did not answer in time' },
  NINES_E_READ_ONLY: { status: 503, title: 'Service is read-only: this method is refused for now' },
  NINES_E_MAINTENANCE: { status: 503, title: 'Service is in maintenance' },
  NINES_E_PAUSED: { status: 503, title: 'Service paused for a switch that did not complete in time' },
  NINES_E_HEADERS_TOO_LARGE: { status: 431, title: 'Request header fields too large' },
  NINES_E_UNREACHABLE: { status: 503, title: 'Controller unreachable (reported by the CLI)' },
  NINES_E_TIMEOUT: { status: 504, title: 'Gave up waiting (reported by the CLI)' },
  NINES_E_AGENT_PROVISION: { status: 500, title: 'Agent could not provision an instance' },
  NINES_E_SIGNATURE_INVALID: { status: 401, title: 'Request signature does not verify' },
  NINES_E_SIGNATURE_EXPIRED: { status: 401, title: 'Signed request outside the time window' },
  NINES_E_REPLAY: { status: 401, title: 'Signed request replayed (nonce already used)' },
  NINES_E_HOST_REVOKED: { status: 403, title: 'Host has been revoked' },
  NINES_E_ACK_INVALID: { status: 401, title: 'Acknowledge link does not verify' },
  NINES_E_ACK_EXPIRED: { status: 410, title: 'Acknowledge link has expired' },
  NINES_E_ALERT_NOT_FOUND: { status: 404, title: 'No such alert' },
  NINES_E_DELIVERY_FAILED: { status: 502, title: 'Notification channel did not accept the message' },
  NINES_E_CHECK_NOT_FOUND: { status: 404, title: 'No such check' },
  NINES_E_CHANNEL_NOT_FOUND: { status: 404, title: 'No such notification channel' },
  NINES_E_SILENCE_NOT_FOUND: { status: 404, title: 'No such silence (or it already ended)' },
  NINES_E_NO_CAPACITY: { status: 409, title: 'No host can take the instance' },
  NINES_E_DISRUPTION_BUDGET: { status: 409, title: 'Would break the disruption budget (minAvailable)' },
  NINES_E_ZONE_NOT_FOUND: { status: 404, title: 'No such zone' },
  NINES_E_HOST_TASK_FAILED: { status: 502, title: 'A command run on a host through its agent failed' },
  NINES_E_HOST_DOWN: { status: 409, title: 'Host is down (no heartbeat)' },
  NINES_E_PATCH_NOT_FOUND: { status: 404, title: 'No such host patch' },
  NINES_E_SECRET_NOT_FOUND: { status: 404, title: 'No such secret or variable' },
  NINES_E_SECRETS_KEY: {
    status: 500,
    title: 'Secrets key missing, unreadable or not the one the secrets were sealed with',
  },
  NINES_E_ARTIFACT_STORAGE: {
    status: 502,
    title: 'Object storage (S3) refused or failed an artifact operation',
  },
  NINES_E_NOT_LEADER: { status: 503, title: 'This controller is a follower; ask the leader' },
  NINES_E_FENCED: { status: 409, title: 'Write refused: this controller lost its leadership (fencing)' },
  NINES_E_BACKUP_INVALID: {
    status: 400,
    title: 'Backup cannot be read (wrong key, damaged or not a backup)',
  },
  NINES_E_HAPROXY_UNREACHABLE: { status: 502, title: 'HAProxy Runtime API did not answer' },
  NINES_E_DRILL_REFUSED: { status: 409, title: 'Drill target is outside the fleet nines manages' },
  NINES_E_DRILL_NOT_FOUND: { status: 404, title: 'No such drill' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorRegistry;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorRegistry, code);
}

/** The JSON body of every error response. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

export class NinesError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'NinesError';
    this.code = code;
    this.status = errorRegistry[code].status;
    this.details = details;
  }

  toBody(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

export function isNinesError(err: unknown): err is NinesError {
  return err instanceof NinesError;
}
