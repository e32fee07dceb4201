import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import { preparedQuery } from './prepared-query.js';
import type { Database } from './schema.js';

/**
 * The audit log (SECURITY.md LOG-03): append-only and hash-chained. Each record carries
 * HMAC-SHA256(audit key, its own fields ‖ the previous record's hash), and `seq` runs without
 * gaps, so an edited, inserted or deleted row breaks the chain at that point. The audit key
 * lives in the keyring, not in the database: whoever can write the database cannot re-forge
 * the chain. Records never hold a code, seed, password or key: callers pass identifiers only.
 */
export interface AuditEntry {
  tenantId: string | null;
  /** Who acted: `admin-key:<id>`, `application:<id>`, `cli`, `system`. */
  actor: string;
  /** What happened, dotted: `user.created`, `verification.approved`, `otp.replay`, … */
  action: string;
  /** What it happened to: a user, method, tenant or key id. */
  target: string | null;
  detail?: Record<string, string | number | boolean | null>;
}

export interface AuditRecord {
  seq: number;
  at: string;
  tenantId: string | null;
  actor: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown>;
}

export type AuditVerification =
  | { ok: true; records: number }
  | { ok: false; records: number; firstBadSeq: number; problem: string };

function recordHash(key: Buffer, row: { seq: number; at: number; tenant_id: string | null; actor: string; action: string; target: string | null; detail: string; prev_hash: string }): string {
  const canonical = JSON.stringify([row.seq, row.at, row.tenant_id, row.actor, row.action, row.target, row.detail, row.prev_hash]);
  return createHmac('sha256', key).update(canonical).digest('hex');
}

export async function appendAudit(db: Kysely<Database>, key: Buffer, entry: AuditEntry, now: Date): Promise<number> {
  const [seq] = await appendBatch(db, key, [{ entry, at: now.getTime() }]);
  return seq ?? 0;
}

async function appendBatch(db: Kysely<Database>, key: Buffer, batch: readonly PendingAudit[]): Promise<number[]> {
  return db.transaction().execute((trx) => appendAuditRows(trx, key, batch));
}

/** An audit entry waiting to be appended, with its time in epoch milliseconds. */
export interface PendingAudit {
  readonly entry: AuditEntry;
  readonly at: number;
}

/**
 * Appends records inside the caller's transaction (which must be able to write): the chain head
 * is written first, so concurrent appenders, in this process or another, queue on it (SQLite's
 * write lock, PostgreSQL's row lock) and the chain never forks.
 */
export async function appendAuditRows(trx: Kysely<Database>, key: Buffer, batch: readonly PendingAudit[]): Promise<number[]> {
  const [head] = (await advanceHead(trx, batch.length)).rows;
  if (head === undefined) throw new Error('audit log: the chain head row is missing');
  let seq = Number(head.seq) - batch.length;
  let prevHash = head.hash;
  const rows = batch.map(({ entry, at }) => {
    seq++;
    const row = { seq, at, tenant_id: entry.tenantId, actor: entry.actor, action: entry.action, target: entry.target, detail: JSON.stringify(entry.detail ?? {}), prev_hash: prevHash };
    prevHash = recordHash(key, row);
    return { ...row, hash: prevHash };
  });
  for (let i = 0; i < rows.length; i += 100) await trx.insertInto('audit_events').values(rows.slice(i, i + 100)).execute();
  await setHeadHash(trx, prevHash);
  return rows.map((r) => r.seq);
}

// The chain head is written by every append: prepared once (PostgreSQL plans them once per connection).
const advanceHead = preparedQuery((db, count: number) =>
  db
    .updateTable('audit_head')
    .set((eb) => ({ seq: eb('seq', '+', count) }))
    .where('id', '=', 1)
    .returning(['seq', 'hash']),
);
const setHeadHash = preparedQuery((db, hash: string) => db.updateTable('audit_head').set({ hash }).where('id', '=', 1));

/**
 * Appends with group commit: records that arrive while a batch is being written go together in
 * the next transaction. Each caller's promise settles only when its record is committed, so an
 * answer is never sent before its audit record is stored; under load, one commit carries many.
 */
export function createAuditWriter(db: Kysely<Database>, key: Buffer): (entry: AuditEntry, now: Date) => Promise<void> {
  let queue: { entry: AuditEntry; at: number; resolve: () => void; reject: (error: unknown) => void }[] = [];
  let flushing = false;
  async function flush(): Promise<void> {
    flushing = true;
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      try {
        await appendBatch(db, key, batch);
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
    flushing = false;
  }
  return (entry, now) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ entry, at: now.getTime(), resolve, reject });
      if (!flushing) {
        flushing = true;
        // Wait for the rest of this turn of the event loop: requests being handled right now add
        // their records to the same batch.
        setImmediate(() => void flush());
      }
    });
}

/** Walks the whole chain in order; names the first record that is missing, edited or out of place. */
export async function verifyAuditChain(db: Kysely<Database>, key: Buffer, pageSize = 5000): Promise<AuditVerification> {
  let expectedSeq = 1;
  let prevHash = '';
  for (;;) {
    const rows = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('seq', '>=', expectedSeq)
      .orderBy('seq')
      .limit(pageSize)
      .execute();
    for (const raw of rows) {
      const row = { ...raw, seq: Number(raw.seq), at: Number(raw.at) };
      if (row.seq !== expectedSeq) {
        return { ok: false, records: expectedSeq - 1, firstBadSeq: expectedSeq, problem: `record ${expectedSeq} is missing (deleted)` };
      }
      if (row.prev_hash !== prevHash) {
        return { ok: false, records: expectedSeq - 1, firstBadSeq: row.seq, problem: `record ${row.seq} does not follow record ${row.seq - 1}` };
      }
      const expected = Buffer.from(recordHash(key, row), 'hex');
      const actual = Buffer.from(row.hash, 'hex');
      if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
        return { ok: false, records: expectedSeq - 1, firstBadSeq: row.seq, problem: `record ${row.seq} was altered` };
      }
      prevHash = row.hash;
      expectedSeq++;
    }
    if (rows.length < pageSize) break;
  }
  const head = await db.selectFrom('audit_head').selectAll().where('id', '=', 1).executeTakeFirst();
  const headSeq = Number(head?.seq ?? 0);
  if (headSeq !== expectedSeq - 1 || (head?.hash ?? '') !== prevHash) {
    return { ok: false, records: expectedSeq - 1, firstBadSeq: expectedSeq, problem: `record ${expectedSeq} is missing (the log ends early)` };
  }
  return { ok: true, records: expectedSeq - 1 };
}

export async function listAudit(
  db: Kysely<Database>,
  filter: { tenantId?: string | undefined; afterSeq?: number; limit: number },
): Promise<AuditRecord[]> {
  let query = db.selectFrom('audit_events').selectAll().orderBy('seq', 'desc').limit(filter.limit);
  if (filter.tenantId !== undefined) query = query.where('tenant_id', '=', filter.tenantId);
  if (filter.afterSeq !== undefined) query = query.where('seq', '<', filter.afterSeq);
  const rows = await query.execute();
  return rows.map((r) => ({
    seq: Number(r.seq),
    at: new Date(Number(r.at)).toISOString(),
    tenantId: r.tenant_id,
    actor: r.actor,
    action: r.action,
    target: r.target,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
  }));
}
