/**
 * The audit log's hash chain: each record (one JSON line) carries in `prev`
 * the SHA-256 of the previous line's exact text, and a `seq` one above the
 * previous one. An edited line breaks the link to the next one; a deleted
 * line breaks the seq and the link; a deleted tail is caught against the head
 * (the last seq and hash, kept beside the log). Shared by the control plane
 * (which writes and verifies the log) and the CLI (`drover audit verify --file`).
 */
import { createHash } from 'node:crypto';

/** `prev` of the first record. */
export const GENESIS = '0'.repeat(64);

export interface ChainRecord {
  seq: number;
  /** ISO time. */
  time: string;
  actor: { kind: string; id: string };
  action: string;
  target: string;
  from: string;
  result: string;
  detail?: Record<string, string>;
  prev: string;
}

/** What the log's last record was, kept beside the log (`audit.head`). */
export interface ChainHead {
  seq: number;
  hash: string;
}

export interface ChainProblem {
  /** 1-based line of the file (0: the file as a whole). */
  line: number;
  message: string;
}

export function hashLine(line: string): string {
  return createHash('sha256').update(line).digest('hex');
}

/** The line of a record: fixed key order, so the text (and its hash) depends only on the content. */
export function recordLine(r: ChainRecord): string {
  const { seq, time, actor, action, target, from, result, detail, prev } = r;
  return JSON.stringify({ seq, time, actor: { kind: actor.kind, id: actor.id }, action, target, from, result, ...(detail && Object.keys(detail).length ? { detail } : {}), prev });
}

/** Checks every link of a log's text; `head`, when known, catches a deleted tail. */
export function verifyChain(text: string, head?: ChainHead): { records: number; problems: ChainProblem[] } {
  const problems: ChainProblem[] = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  else if (lines.length) problems.push({ line: lines.length, message: `line ${lines.length} does not end with a newline (a torn or edited last record)` });
  let prevHash = GENESIS;
  let prevSeq = 0;
  lines.forEach((line, i) => {
    const n = i + 1;
    let r: ChainRecord;
    try {
      r = JSON.parse(line) as ChainRecord;
    } catch {
      problems.push({ line: n, message: `line ${n} is not a JSON record (edited or corrupt)` });
      prevHash = hashLine(line);
      prevSeq++;
      return;
    }
    if (typeof r.seq !== 'number' || typeof r.prev !== 'string') {
      problems.push({ line: n, message: `line ${n} is not an audit record (no seq or prev)` });
    } else {
      if (r.seq !== prevSeq + 1) {
        problems.push({ line: n, message: `line ${n} has seq ${r.seq} after seq ${prevSeq}: ${r.seq > prevSeq + 1 ? `${r.seq - prevSeq - 1} record(s) before it were deleted` : 'records were reordered or repeated'}` });
      }
      if (r.prev !== prevHash) {
        const continuous = r.seq === prevSeq + 1 && n > 1;
        problems.push(
          continuous
            ? { line: n - 1, message: `line ${n - 1} (seq ${prevSeq}) was edited: the hash that line ${n} carries for it does not match its text` }
            : { line: n, message: `line ${n} (seq ${r.seq}) does not chain to the line before it: ${n === 1 ? 'the first record was deleted or replaced' : 'records between them were deleted'}` },
        );
      } else if (recordLine(r) !== line) {
        // The link holds, but the line is not as the writer formats it: this line itself was edited.
        problems.push({ line: n, message: `line ${n} (seq ${r.seq}) was edited: it is not in the form the control plane writes` });
      }
      prevSeq = r.seq;
    }
    prevHash = hashLine(line);
  });
  if (head && head.seq > 0) {
    if (prevSeq < head.seq) problems.push({ line: lines.length, message: `the log ends at seq ${prevSeq} but the control plane wrote up to seq ${head.seq}: the last ${head.seq - prevSeq} record(s) were deleted` });
    else if (prevSeq === head.seq && prevHash !== head.hash) problems.push({ line: lines.length, message: `the last record (seq ${prevSeq}) is not the one the control plane wrote (line ${lines.length} was edited)` });
  }
  return { records: lines.length, problems };
}
