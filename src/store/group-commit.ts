import { CompiledQuery, type Kysely } from 'kysely';
import { appendAuditRows, createAuditWriter, type AuditEntry, type PendingAudit } from './audit-log.js';
import type { Store } from './database.js';
import type { Database } from './schema.js';

/**
 * Short write transactions that commit together (group commit), each with the audit records it
 * produced.
 *
 * `run(work)` gives `work` a database handle inside a transaction and a `record` function for
 * audit entries; the work is atomic (it commits or rolls back as a whole, its audit records
 * with it) and the promise settles only after the commit. Work must only use the handle it is
 * given and must not wait for anything but that handle: it runs while the transaction is open.
 *
 * On SQLite (one connection, one writer) every piece of work and every audit record that
 * arrives during one turn of the event loop goes into one transaction: each piece of work in
 * a savepoint of its own, the audit records appended once at the end, one commit for all. So
 * a verification's decision and its audit record are stored by the same commit, and a busy
 * server pays for one commit per turn instead of one per request.
 *
 * On PostgreSQL each piece of work is its own transaction (the pool runs them side by side),
 * and audit records go to the audit writer's group commit after it: holding the audit chain's
 * head row inside every transaction would make them all wait for each other. The audit writer
 * appends through the store's own audit connection (`Store.auditDb`), so a batch never waits in
 * the pool's line behind the requests it is holding up.
 */
export interface GroupCommit {
  run<T>(work: (db: Kysely<Database>, record: (entry: AuditEntry) => void) => Promise<T>): Promise<T>;
  /** Appends one audit record; settles when it is committed. */
  audit(entry: AuditEntry): Promise<void>;
  /**
   * Calls `listener` with the audit records of every commit, after the commit and outside it (on
   * a later turn of the event loop), so a subscriber never slows or fails a write. In-process
   * only and not durable: a subscriber that must not miss an event (flows/events.ts) treats the
   * call as a wake-up and reads the committed records from `audit_events` by seq. Returns the
   * unsubscribe function.
   */
  subscribe(listener: CommitListener): () => void;
}

/** Told of the audit records one commit stored (in this process). */
export type CommitListener = (records: readonly PendingAudit[]) => void;

/** Hands committed records to listeners without touching the commit: one size check when nobody listens. */
function commitListeners() {
  const listeners = new Set<CommitListener>();
  return {
    subscribe: (listener: CommitListener): (() => void) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    listening: (): boolean => listeners.size > 0,
    committed(records: readonly PendingAudit[]): void {
      if (listeners.size === 0 || records.length === 0) return;
      setImmediate(() => {
        for (const listener of listeners) {
          try {
            listener(records);
          } catch {
            // A subscriber's failure is its own; the write was committed.
          }
        }
      });
    },
  };
}

export function createGroupCommit(store: Store, auditKey: Buffer, clock: () => Date): GroupCommit {
  return store.dialect === 'sqlite' ? sqliteGroupCommit(store.db, auditKey, clock) : separateCommits(store.db, store.auditDb ?? store.db, auditKey, clock);
}

function separateCommits(db: Kysely<Database>, auditDb: Kysely<Database>, auditKey: Buffer, clock: () => Date): GroupCommit {
  const appendAudit = createAuditWriter(auditDb, auditKey);
  const listeners = commitListeners();
  return {
    async run(work) {
      const records: AuditEntry[] = [];
      const result = await db.transaction().execute((trx) => work(trx, (entry) => records.push(entry)));
      const now = clock();
      await Promise.all(records.map((entry) => appendAudit(entry, now)));
      if (listeners.listening()) listeners.committed(records.map((entry) => ({ entry, at: now.getTime() })));
      return result;
    },
    audit: async (entry) => {
      const now = clock();
      await appendAudit(entry, now);
      listeners.committed([{ entry, at: now.getTime() }]);
    },
    subscribe: listeners.subscribe,
  };
}

interface Job {
  work: ((db: Kysely<Database>, record: (entry: AuditEntry) => void) => Promise<unknown>) | undefined;
  audit: PendingAudit[];
  result?: unknown;
  error?: unknown;
  failed: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

const statement = (text: string) => CompiledQuery.raw(text);
// BEGIN IMMEDIATE takes the write lock at once (waiting busy_timeout for another process), so a
// job that reads before it writes never meets SQLITE_BUSY_SNAPSHOT (see write-transaction.ts).
const BEGIN = statement('begin immediate');
const COMMIT = statement('commit');
const ROLLBACK = statement('rollback');
const SAVEPOINT = statement('savepoint job');
const RELEASE = statement('release job');
const ROLLBACK_JOB = statement('rollback to job');

function sqliteGroupCommit(db: Kysely<Database>, auditKey: Buffer, clock: () => Date): GroupCommit {
  let queue: Job[] = [];
  let scheduled = false;
  const listeners = commitListeners();

  async function flush(): Promise<void> {
    scheduled = false;
    const jobs = queue;
    queue = [];
    try {
      await db.connection().execute(async (conn) => {
        await conn.executeQuery(BEGIN);
        try {
          const audit: PendingAudit[] = [];
          for (const job of jobs) {
            if (job.work !== undefined) await runJob(conn, job);
            if (!job.failed) audit.push(...job.audit);
          }
          if (audit.length > 0) await appendAuditRows(conn, auditKey, audit);
          await conn.executeQuery(COMMIT);
        } catch (error) {
          await conn.executeQuery(ROLLBACK).catch(() => undefined);
          throw error;
        }
      });
    } catch (error) {
      // Nothing of this batch was committed: every job fails, including those that had worked.
      for (const job of jobs) job.reject(error);
      return;
    }
    for (const job of jobs) {
      if (job.failed) job.reject(job.error);
      else job.resolve(job.result);
    }
    if (listeners.listening()) listeners.committed(jobs.flatMap((job) => (job.failed ? [] : job.audit)));
  }

  async function runJob(conn: Kysely<Database>, job: Job): Promise<void> {
    await conn.executeQuery(SAVEPOINT);
    const now = clock().getTime();
    try {
      job.result = await job.work?.(conn, (entry) => job.audit.push({ entry, at: now }));
      await conn.executeQuery(RELEASE);
    } catch (error) {
      // This job alone is undone; the others in the batch go on.
      await conn.executeQuery(ROLLBACK_JOB);
      await conn.executeQuery(RELEASE);
      job.failed = true;
      job.error = error;
    }
  }

  function enqueue(job: Omit<Job, 'resolve' | 'reject' | 'failed'>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      queue.push({ ...job, failed: false, resolve, reject });
      if (!scheduled) {
        scheduled = true;
        // Wait for the rest of this turn of the event loop: requests being handled right now
        // join the same transaction. Kysely queues the flush behind a batch still committing.
        setImmediate(() => void flush());
      }
    });
  }

  return {
    run<T>(work: (db: Kysely<Database>, record: (entry: AuditEntry) => void) => Promise<T>): Promise<T> {
      return enqueue({ work, audit: [] }) as Promise<T>;
    },
    audit: async (entry) => {
      await enqueue({ work: undefined, audit: [{ entry, at: clock().getTime() }] });
    },
    subscribe: listeners.subscribe,
  };
}
