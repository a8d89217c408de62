/**
 * The dashboard's WebSocket contract (PLAN13 §2, served by control-plane/http):
 * what the page sends and what the server pushes. Data objects are the API's
 * message objects exactly as the gRPC API builds them (camelCase, int64 as
 * numbers, enums as strings), so their types come from proto/, type-only.
 */
import type { AgentInfoOut, DeviceInfoOut, LogLineOut, RunInfoOut, StatsBucketOut, StatsOut, StepInfoOut, WorkflowStatsOut } from '../../proto/types.js';

export type AgentInfo = AgentInfoOut;
export type DeviceInfo = DeviceInfoOut;
export type LogLine = LogLineOut;
export type RunInfo = RunInfoOut;
export type StepInfo = StepInfoOut;

/** The roles a token can carry; operator and admin may cancel. */
export type Role = 'viewer' | 'operator' | 'admin';

/** One CPU/memory reading of an agent (percentages), for the sparklines. */
export interface Sample {
  t: number;
  cpu: number;
  mem: number;
}

/** The four metrics (StatsService.GetStats): a window, `overall`, and one entry per workflow with its trend. */
export type Stats = StatsOut;
export type WorkflowStats = WorkflowStatsOut;
export type StatsBucket = StatsBucketOut;

/** A topic the page subscribes to, as sent. */
export type Subscription =
  | { type: 'subscribe'; topic: 'fleet' }
  | { type: 'subscribe'; topic: 'runs' }
  | { type: 'subscribe'; topic: 'run'; id: string }
  | { type: 'subscribe'; topic: 'logs'; run: string; step: string }
  | { type: 'subscribe'; topic: 'stats'; windowMs?: number };

export type Topic = Subscription['topic'];

export type ClientMessage =
  | { type: 'auth'; token: string }
  | Subscription
  | { type: 'unsubscribe'; topic: Topic }
  | { type: 'cancel'; run: string; reason?: string }
  /** Approve or reject an approval step; the server checks the token is among its approvers. */
  | { type: 'decide'; run: string; step: string; approve: boolean; reason?: string };

export type ServerMessage =
  | { type: 'hello'; name: string; role: Role; tokenId?: string; tokenName?: string }
  | { type: 'error'; code: string; message: string; hint?: string }
  | { type: 'fleet'; agents: AgentInfo[]; devices: DeviceInfo[]; history: Record<string, Sample[]> }
  | { type: 'agent'; agent: AgentInfo; sample?: Sample }
  | { type: 'runs'; runs: RunInfo[] }
  | { type: 'runSummary'; run: RunInfo }
  | { type: 'runDetail'; run: RunInfo }
  | { type: 'step'; runId: string; step: StepInfo }
  | { type: 'logs'; run: string; step: string; lines: LogLine[] }
  | { type: 'stats'; stats: Stats }
  | { type: 'cancelled'; run: RunInfo }
  | { type: 'decided'; run: RunInfo; step: string };
