/** The drover SDK: a client of the control plane, the typed workflow builder, its errors and domain types. */
export { DroverClient, resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from './client.js';
export { DEFAULT_ADDRESS, DEFAULT_CONNECT_TIMEOUT_MS } from './connection.js';
export { FleetApi, type ListAgentsOptions } from './fleet.js';
export { RunsApi, type LaunchOptions, type ListRunsOptions, type LogsOptions, type RerunOptions } from './runs.js';
export { RunHandle, type RunEventsOptions } from './run-handle.js';
export { WorkflowsApi } from './workflows.js';
export { AccessApi, type AgentCredential, type CreateEnrollTokenOptions, type CreateTokenOptions, type Role, type TokenInfo } from './access.js';
export { SecretsApi, type SecretInfo } from './secrets.js';
export { SchedulesApi, type Schedule, type ListSchedulesOptions } from './schedules.js';
export { AuditApi, type AuditRecord, type AuditVerification, type ListAuditOptions } from './audit.js';
export { StatsApi, type GetStatsOptions } from './stats.js';
export { DevicesApi, type AddDeviceOptions, type ListDevicesOptions } from './devices.js';
export { formatWorkflowRef, parseWorkflowRef, type ParsedWorkflowRef } from './source.js';
export * from './builder.js';
export { encodeParams, parseParamArgs } from './params.js';
export * from './errors.js';
export { fromGrpcError } from './grpc-errors.js';
export * from './types.js';
