/** Counting helpers for the fault suite: side-effect files and the control plane's stored logs. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Non-empty lines of a side-effect file (empty when it does not exist yet). */
export function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

export interface StoredLog {
  t: number;
  step: string;
  attempt: string;
  stream: string;
  text: string;
}

/** The log records the control plane stored for a run, straight from its data dir. */
export async function storedLogs(dataDir: string, runId: string): Promise<StoredLog[]> {
  return lines(join(dataDir, 'logs', `${runId}.ndjson`)).map((l) => JSON.parse(l) as StoredLog);
}
