/**
 * What pino must never write: credentials and secret values, wherever a log call might carry them
 * (a request's headers, a desired instance's `secrets`, a body with a `value`). Used by every logger the
 * planes create (`cli/planes.ts`); values are replaced, so a log line still shows that the field was there.
 *
 * pino's paths are exact (a `*` is one level), so the shapes that reach a log call are listed.
 */
export const REDACT_PATHS: readonly string[] = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'secrets',
  '*.secrets',
  'spec.secrets',
  '*.spec.secrets',
  'instances[*].secrets',
  '*.instances[*].secrets',
  'secret',
  '*.secret',
  'value',
  'body.value',
  'token',
  '*.token',
  'key',
  '*.key',
  'credentials',
  '*.credentials',
  'secretAccessKey',
  '*.secretAccessKey',
];

export const CENSOR = '[redacted]';

/** pino's `redact` option. */
export const redactOptions = { paths: [...REDACT_PATHS], censor: CENSOR };
