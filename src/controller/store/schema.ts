import type { ColumnType } from 'kysely';

/**
 * The store's tables as Kysely sees them. Kept portable between SQLite and PostgreSQL: JSON is stored as
 * text, booleans as integers (0/1), times and other large numbers as `bigint` epoch milliseconds. The pg
 * driver returns `bigint` columns as strings, so every such column is read through `num()`.
 */

/** A `bigint` column: written as a number, read as whatever the driver returns (pg: string). */
export type Int8 = ColumnType<number | string | bigint, number, number>;
export type Int8Null = ColumnType<number | string | bigint | null, number | null, number | null>;

export interface ServicesTable {
  name: string;
  /** JSON of ServiceSpec. */
  spec: string;
  current_release: string | null;
  locked_by: string | null;
  created_at: Int8;
  updated_at: Int8;
  /** 0003: live | read-only | maintenance | pause (the default applies on insert). */
  mode: ColumnType<string, string | undefined, string>;
  /** 0003: JSON of ServiceModeOptions, or null. */
  mode_options: string | null;
  /** 0010: JSON of TrafficSplit (canary weights, blue-green preview/standby), or null. */
  traffic: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface ReleasesTable {
  service: string;
  version: string;
  sha256: string;
  size: Int8;
  /** JSON of ServiceSpec. */
  spec: string;
  /** 0 or 1. */
  stable: number;
  created_by: string;
  created_at: Int8;
  seq: Int8;
}

export interface DeploysTable {
  id: string;
  service: string;
  from_version: string | null;
  to_version: string;
  strategy: string;
  kind: string;
  state: string;
  reason: string | null;
  created_by: string;
  created_at: Int8;
  started_at: Int8Null;
  finished_at: Int8Null;
  /** Seq of the last event appended to this deploy; bumping it serializes concurrent appends. */
  last_event_seq: number;
  /** 0004: answers the proxies gave for the service during the deploy, and how many were 5xx. */
  requests: Int8Null;
  failed_requests: Int8Null;
  /** 0010: JSON of DeployOptions (per-deploy overrides), or null. */
  options: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface DeployEventsTable {
  deploy_id: string;
  seq: number;
  at: Int8;
  type: string;
  message: string;
  /** JSON object or null. */
  data: string | null;
}

export interface InstancesTable {
  id: string;
  service: string;
  release_version: string;
  host_id: string;
  desired: string;
  route: string;
  deploy_id: string | null;
  /** JSON of ObservedInstance or null. */
  observed: string | null;
  created_at: Int8;
  updated_at: Int8;
}

export interface HostsTable {
  id: string;
  name: string;
  zone: string;
  /** JSON object of string → string. */
  labels: string;
  address: string;
  registered_at: Int8;
  last_seen_at: Int8;
  /** Hex HMAC key for signed requests (0002); null until the host registers with a token. */
  auth_key: string | null;
  revoked_at: Int8Null;
}

export interface EventsTable {
  id: Int8;
  at: Int8;
  kind: string;
  subject: string;
  message: string;
  data: string | null;
}

export interface TokensTable {
  id: string;
  hash: string;
  role: string;
  name: string;
  created_at: Int8;
  revoked_at: Int8Null;
  expires_at: Int8Null;
}

export interface CountersTable {
  name: string;
  value: Int8;
}

/** 0007: operational fleet state by key (`host:<id>`, `zone:<name>`): JSON values. */
export interface FleetMetaTable {
  key: string;
  value: string;
  updated_at: Int8;
}

export interface SecretsTable {
  service: string;
  environment: string;
  name: string;
  kind: string;
  value: string;
  version: number;
  updated_at: Int8;
  updated_by: string;
}

/** 0009: one row per lease (`controller`): who leads, its URL, the fencing token, when it expires. */
export interface LeaderLeaseTable {
  name: string;
  holder: string;
  url: string;
  token: Int8;
  acquired_at: Int8;
  renewed_at: Int8;
  expires_at: Int8;
}

export interface Database {
  services: ServicesTable;
  releases: ReleasesTable;
  deploys: DeploysTable;
  deploy_events: DeployEventsTable;
  instances: InstancesTable;
  hosts: HostsTable;
  events: EventsTable;
  tokens: TokensTable;
  counters: CountersTable;
  fleet_meta: FleetMetaTable;
  secrets: SecretsTable;
  leader_lease: LeaderLeaseTable;
  drills: DrillsTable;
}

/** `nines drill` results (migration 0011_drills); `result` is the JSON of the drill's report. */
export interface DrillsTable {
  id: string;
  service: string;
  scenario: string;
  outcome: string;
  created_by: string;
  started_at: Int8;
  finished_at: Int8;
  result: string;
}
