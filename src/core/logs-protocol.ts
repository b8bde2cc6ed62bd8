import { z } from 'zod';

/**
 * `nines logs`: instance output stays on its host (the agent writes it to a file per instance); the
 * controller relays it on demand. The agent long-polls `GET /v1/agent/logs?hostId&wait` for the log
 * requests open for its host and answers each with `POST /v1/agent/logs/:id` chunks; the controller
 * streams them to the reader. Nothing is stored on the controller.
 */
export interface LogRequest {
  id: string;
  instanceId: string;
  /** Lines of history to send first. */
  tail: number;
  /** Keep sending new output until the reader goes away. */
  follow: boolean;
}

export const logRequestSchema = z.strictObject({
  id: z.string().min(1),
  instanceId: z.string().min(1),
  tail: z.number().int().min(0).max(100_000),
  follow: z.boolean(),
});

export const logRequestsAnswerSchema = z.strictObject({ requests: z.array(logRequestSchema) });

/** Bounded so one chunk cannot balloon the controller's memory; the agent splits larger reads. */
export const LOG_CHUNK_MAX = 64 * 1024;

export const logChunkSchema = z.strictObject({
  data: z.string().max(LOG_CHUNK_MAX * 2),
  /** The agent has sent everything it will (no follow, or the instance's log is gone). */
  done: z.boolean().optional(),
  /** Why nothing (more) comes: e.g. no log file for that instance on this host. */
  error: z.string().max(1000).optional(),
});
export type LogChunk = z.infer<typeof logChunkSchema>;

/** The controller's answer to a chunk: `open: false` tells the agent the reader left. */
export interface LogChunkAnswer {
  open: boolean;
}
