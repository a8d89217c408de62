import type { RegisteredWorkflow } from '../../types.js';
import { formatAgo } from '../format.js';
import { plainView, type View } from '../output.js';
import { cli } from '../invocation.js';
import { renderTable } from '../table.js';

/** Descriptions longer than this are cut in the `workflow list` table (`-o json` has them whole). */
export const DESCRIPTION_WIDTH = 60;

function shortDescription(text: string): string {
  const line = text.split('\n')[0].trim();
  if (!line) return '-';
  return line.length > DESCRIPTION_WIDTH ? `${line.slice(0, DESCRIPTION_WIDTH - 1)}…` : line;
}

/** The `drover workflow list` table; wide adds the latest version's content hash. */
export function workflowsTable(workflows: readonly RegisteredWorkflow[], view: View = plainView()): string {
  if (workflows.length === 0) return `no workflows registered; store one with: ${cli()} workflow apply FILE\n`;
  const head = ['NAME', 'LATEST', 'VERSIONS', 'UPDATED', 'DESCRIPTION'];
  if (view.wide) head.splice(4, 0, 'HASH');
  return renderTable(
    head,
    workflows.map((w) => {
      const row: (string | number)[] = [w.name, w.version, w.versions, formatAgo(w.createdAt, view.now), shortDescription(w.description)];
      if (view.wide) row.splice(4, 0, w.hash || '-');
      return row;
    }),
  );
}

/** The header of `drover workflow show`, before the source. */
export function workflowHeader(w: RegisteredWorkflow, nowMs: number = Date.now()): string {
  const latest = w.version >= w.versions ? 'latest' : `latest is ${w.versions}`;
  const lines = [
    `Workflow:     ${w.name}`,
    `Version:      ${w.version} (${latest})`,
    `Stored:       ${w.createdAt ? `${new Date(w.createdAt).toISOString()} (${formatAgo(w.createdAt, nowMs)})` : '-'}`,
    `Hash:         ${w.hash || '-'}`,
    `Description:  ${w.description.trim() || '-'}`,
    `Preview:      ${cli()} plan ${w.name}@${w.version}`,
  ];
  return lines.join('\n') + '\n';
}

/** What `drover workflow apply` says about one file. */
export function applyLine(w: RegisteredWorkflow): string {
  return w.changed ? `${w.name}: version ${w.version} stored\n` : `${w.name}: unchanged (version ${w.version})\n`;
}
