/** The compiled plan as the control plane's domain code sees it. */
export interface StepPlan {
  id: string;
  needs: string[];
  run: string;
  env: Record<string, string>;
  target: { labels: Record<string, string>; agent: string };
  timeoutMs: number;
  retry: { attempts: number; backoff: 'fixed' | 'exponential'; initialMs: number; maxMs: number; jitter: number; retryOn: number[] };
  when: string;
  continueOnError: boolean;
  isFinally: boolean;
}

export interface RunPlan {
  workflow: string;
  hash: string;
  params: Record<string, string>;
  deadlineMs: number;
  steps: StepPlan[];
}
