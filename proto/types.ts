// Friendly names for the generated message types. Inputs (what you build and
// send) are the plain names; outputs (what decoding yields, with defaults
// filled in) carry the `Out` suffix.
export type { AgentMessage, AgentMessage__Output as AgentMessageOut } from './gen/drover/v1/AgentMessage.js';
export type { ServerMessage, ServerMessage__Output as ServerMessageOut } from './gen/drover/v1/ServerMessage.js';
export type { Hello, Hello__Output as HelloOut } from './gen/drover/v1/Hello.js';
export type { Welcome, Welcome__Output as WelcomeOut } from './gen/drover/v1/Welcome.js';
export type { Heartbeat, Heartbeat__Output as HeartbeatOut } from './gen/drover/v1/Heartbeat.js';
export type { Facts, Facts__Output as FactsOut } from './gen/drover/v1/Facts.js';
export type { StepEvent, StepEvent__Output as StepEventOut } from './gen/drover/v1/StepEvent.js';
export type { StepPhase } from './gen/drover/v1/StepPhase.js';
export type { LogChunk, LogChunk__Output as LogChunkOut } from './gen/drover/v1/LogChunk.js';
export type { LogStream } from './gen/drover/v1/LogStream.js';
export type { Assign, Assign__Output as AssignOut } from './gen/drover/v1/Assign.js';
export type { Release, Release__Output as ReleaseOut } from './gen/drover/v1/Release.js';
export type { DepStatus } from './gen/drover/v1/DepStatus.js';
export type { Cancel, Cancel__Output as CancelOut } from './gen/drover/v1/Cancel.js';
export type { Plan, Plan__Output as PlanOut } from './gen/drover/v1/Plan.js';
export type { PlanStep, PlanStep__Output as PlanStepOut } from './gen/drover/v1/PlanStep.js';
export type { Target, Target__Output as TargetOut } from './gen/drover/v1/Target.js';
export type { RetryPolicy, RetryPolicy__Output as RetryPolicyOut } from './gen/drover/v1/RetryPolicy.js';
export type { AgentInfo, AgentInfo__Output as AgentInfoOut } from './gen/drover/v1/AgentInfo.js';
export type { AgentState } from './gen/drover/v1/AgentState.js';
export type { RunInfo, RunInfo__Output as RunInfoOut } from './gen/drover/v1/RunInfo.js';
export type { RunStatus } from './gen/drover/v1/RunStatus.js';
export type { StepInfo, StepInfo__Output as StepInfoOut } from './gen/drover/v1/StepInfo.js';
export type { StepStatus } from './gen/drover/v1/StepStatus.js';
export type { RunEvent, RunEvent__Output as RunEventOut } from './gen/drover/v1/RunEvent.js';
export type { LogLine, LogLine__Output as LogLineOut } from './gen/drover/v1/LogLine.js';
export type { ErrorDetail, ErrorDetail__Output as ErrorDetailOut } from './gen/drover/v1/ErrorDetail.js';
export type { Problem, Problem__Output as ProblemOut } from './gen/drover/v1/Problem.js';
export type { SubmitRunRequest__Output as SubmitRunRequestOut } from './gen/drover/v1/SubmitRunRequest.js';
export type { FleetServiceClient, FleetServiceHandlers } from './gen/drover/v1/FleetService.js';
export type { RunServiceClient, RunServiceHandlers } from './gen/drover/v1/RunService.js';
export type { AgentServiceClient, AgentServiceHandlers } from './gen/drover/v1/AgentService.js';
export type { WorkflowServiceClient, WorkflowServiceHandlers } from './gen/drover/v1/WorkflowService.js';
export type { PlanPreview, PlanPreview__Output as PlanPreviewOut } from './gen/drover/v1/PlanPreview.js';
export type { WorkflowInfo, WorkflowInfo__Output as WorkflowInfoOut } from './gen/drover/v1/WorkflowInfo.js';
export type { ValidateWorkflowResponse, ValidateWorkflowResponse__Output as ValidateWorkflowResponseOut } from './gen/drover/v1/ValidateWorkflowResponse.js';
