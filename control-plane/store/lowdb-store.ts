/**
 * The embedded default Store: one JSON document (lowdb) in the data dir, a
 * change log next to it, and per-run log files.
 *
 * Puts mark records dirty; one write at a time runs, at most every
 * `coalesceMs`, carrying every change made before it started. A write
 * appends only what changed — an agent, a run's own fields, the steps that
 * changed, a new workflow version — to the change log and fdatasyncs it, so
 * its cost follows the size of the change, not the size of the state. The
 * document itself (temp file, fsync, rename: DurableJsonFile) is rewritten
 * only once the log has grown past it, and on open and close; each rewrite
 * starts a new log generation. Loading reads the document and replays the
 * logs of its generation and later.
 *
 * Why: rewriting the whole document on every coalesced write made every
 * acknowledged agent message cost a serialisation of the whole state (every
 * agent, every kept run with its plan), which is what a fleet-scale fan-out
 * spent most of its time on (docs/performance.md).
 *
 * A write that fails (a full, read-only or failing disk) makes the store
 * unhealthy: its flush waiters are told, nothing is lost from memory, and it
 * tries again by itself, RETRY_MIN_MS doubling to RETRY_MAX_MS, until a
 * write succeeds; flushes asked for meanwhile wait for those tries.
 */
import { join } from 'node:path';
import { Low } from 'lowdb';
import type { Logger } from '../log.js';
import { ChangeLog, changeLogFile } from './change-log.js';
import { describeError, nodeDisk, type Disk } from './disk.js';
import { DurableJsonFile } from './durable-json-file.js';
import { DurableWrites } from './durable-writes.js';
import { DocumentStore, emptyDoc, type Change, type Doc } from './state-document.js';
import type { StoreHealth, Store } from './store.js';


export interface LowdbStoreOptions {
  dataDir: string;
  /** Delay that lets many changes share one write. */
  coalesceMs?: number;
  /** Finished runs kept (with their logs); older ones are pruned. */
  maxRuns?: number;
  /**
   * The document is rewritten once the change log is bigger than the
   * document and than this; a restart replays at most about this much.
   */
  compactMinBytes?: number;
  /** The file system (tests inject failures). */
  disk?: Disk;
  /** Write failures, recoveries and unreadable records are logged here. */
  log?: Logger;
  /** Told how long each durable write took (a batch: log files synced, change log or document written), in seconds. */
  onWrite?: (seconds: number) => void;
}

/** Default of `compactMinBytes`. */
const COMPACT_MIN_BYTES = 16 * 1024 * 1024;

export class LowdbStore extends DocumentStore implements Store {
  private db: Low<Doc>;
  private file: DurableJsonFile<Doc>;
  private readonly logBase: string;
  private log: ChangeLog | undefined;
  private readonly writes: DurableWrites;
  private readonly compactMinBytes: number;
  private readonly dataDir: string;
  private readonly disk: Disk;
  private readonly logger: Logger | undefined;
  /** The generation of the document on disk: the logs it needs start there. */
  private diskGen = 0;

  /** Set after a failed write: the next write rewrites the document, which carries everything. */
  private snapshotDue = false;
  /** A batch drained from the dirty sets missed the change log: until a document is written, those changes are only in memory. */
  private unlogged = false;

  constructor(opts: LowdbStoreOptions) {
    const disk = opts.disk ?? nodeDisk;
    disk.mkdirSync(opts.dataDir, 0o700);
    super({ dataDir: opts.dataDir, disk, log: opts.log, maxRuns: opts.maxRuns ?? 1000 });
    this.dataDir = opts.dataDir;
    this.disk = disk;
    this.logger = opts.log;
    this.file = new DurableJsonFile<Doc>(join(opts.dataDir, 'state.json'), this.disk);
    this.db = new Low<Doc>(this.file, emptyDoc());
    this.logBase = changeLogFile(opts.dataDir);
    this.writes = new DurableWrites({
      coalesceMs: opts.coalesceMs ?? 10,
      log: opts.log,
      onWrite: opts.onWrite,
      write: () => this.writeOnce(),
      unhealthy: (err, sinceMs) => {
        const { code, message } = describeError(err);
        return {
          state: { healthy: false, dir: this.dataDir, code, message, sinceMs },
          fields: { dir: this.dataDir, code, err: message, pendingLogBytes: this.logs.pendingBytes },
          message: `cannot write the data dir ${this.dataDir} (${code}: ${message}); new runs are refused and agents' messages stay unacknowledged until a write succeeds; retrying by itself`,
        };
      },
      afterFailure: () => {
        if (this.logs.backlogFull) {
          this.logger?.error({ pendingLogBytes: this.logs.pendingBytes }, 'log records waiting for the disk passed their bound; agents are asked to keep new messages in their journals until writes succeed');
        }
      },
      recovered: { fields: { dir: opts.dataDir }, message: 'the data dir can be written again; taking new runs and acknowledging agents again' },
    });
    this.compactMinBytes = opts.compactMinBytes ?? COMPACT_MIN_BYTES;
  }

  /** Loads the state; returns a description when it had to recover from the backup, else ''. */
  async open(): Promise<string> {
    await this.db.read();
    this.samples.open();
    const fresh = this.file.bytes === 0;
    // The document object stays lowdb's: db.write() writes what the shared code changes.
    this.adopt(this.db.data);
    const data = this.doc;
    const gen = data.changeGen ?? 0;
    this.diskGen = gen;
    const gens = ChangeLog.generations(this.logBase, this.disk).filter((g) => g >= gen);
    let replayed = 0;
    let unreadable = 0;
    for (const g of gens) {
      const read = ChangeLog.read(this.logBase, g, this.disk);
      for (const change of read.changes) this.replay(change as Change);
      replayed += read.changes.length;
      unreadable += read.unreadable;
    }
    this.recount();
    this.log = new ChangeLog(this.logBase, Math.max(gen, ...gens), this.disk);
    // Start from a whole document: a new data dir, or logs replayed (a crash, or a recovery).
    // A disk that cannot take it now loses nothing (the logs it would replace stay): the next write tries again.
    if (fresh || replayed > 0 || this.file.recovered) await this.snapshot('');
    const notes: string[] = [];
    if (this.file.recovered) {
      notes.push(this.file.recovered, replayed ? `${replayed} changes logged after it were replayed on top.` : 'Changes after that generation are lost unless agents resend them.');
    }
    if (unreadable) notes.push(`${unreadable} unreadable line${unreadable === 1 ? '' : 's'} in the change logs (${this.logBase}.*) ${unreadable === 1 ? 'was' : 'were'} skipped; the state they changed may be older than it was.`);
    return notes.join(' ');
  }

  health(): StoreHealth {
    return this.writes.health();
  }

  flush(): Promise<void> {
    return this.writes.flush();
  }

  /** One last write, then a whole document if it can; a disk that still fails gives up here (nothing unwritten was acknowledged). */
  async close() {
    await this.writes.finish();
    const health = this.writes.health();
    // Leave a whole document behind: the next start replays nothing.
    if (this.log && health.healthy && (this.log.size > 0 || this.snapshotDue)) await this.snapshot(this.drain()).catch(() => undefined);
    if (!health.healthy) this.logger?.error({ dir: this.dataDir, code: health.code }, 'closing with changes not written: the data dir still cannot be written; agents resend what was not acknowledged');
    this.writes.rejectWaiting();
    this.log?.close();
    this.logs.close();
    await this.samples.close();
  }

  /**
   * Rewrites the document as a new generation. `batch` (drained in the same
   * tick as the document is serialised) also goes to the current log, so the
   * previous document plus the logs since it stays a complete state: that is
   * what a recovery from `state.json.bak` loads.
   */
  private async snapshot(batch: string) {
    const log = this.log!;
    const previousGen = this.diskGen;
    const next = new ChangeLog(this.logBase, log.generation + 1, this.disk);
    this.doc.changeGen = next.generation;
    // Serialised now, synchronously (DurableJsonFile.write stringifies before its first await).
    const doc = this.db.write();
    const [appended, wrote] = await Promise.allSettled([log.append(batch), doc]);
    // From here on changes go to the new generation, whatever happened: the
    // document on disk is either the old one (whose logs are all kept) or the new one.
    log.close();
    this.log = next;
    if (wrote.status === 'fulfilled') {
      this.snapshotDue = false;
      this.unlogged = false;
      this.diskGen = next.generation;
      // The document replaced is now state.json.bak; it needs its logs, older ones are done.
      for (const g of ChangeLog.generations(this.logBase, this.disk)) if (g < previousGen) ChangeLog.remove(this.logBase, g, this.disk);
      return;
    }
    this.snapshotDue = true;
    if (appended.status === 'rejected') this.unlogged = true;
    // Changes no log holds are only in memory: without the document this write did not make them durable.
    if (this.unlogged) throw wrote.reason;
  }

  protected touch() {
    this.writes.touch();
  }

  /** One write: log files synced, then the batch appended to the change log, or a new document when the log has outgrown the last one (or a write failed). */
  private async writeOnce() {
    this.prune();
    await this.logs.sync();
    const batch = this.drain();
    const log = this.log!;
    if (this.snapshotDue || log.size + batch.length > Math.max(this.compactMinBytes, this.file.bytes)) return this.snapshot(batch);
    try {
      await log.append(batch);
    } catch (err) {
      // What the batch held is no longer marked dirty: the next write rewrites the document.
      this.snapshotDue = true;
      this.unlogged = true;
      throw err;
    }
  }
}
