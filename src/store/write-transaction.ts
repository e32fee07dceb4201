import { sql, type Kysely, type Transaction } from 'kysely';
import type { Dialect } from './database.js';
import type { Database } from './schema.js';

/**
 * A transaction that reads before it writes and must not fail when another process (a CLI next
 * to the server) commits in between. SQLite begins transactions deferred: the first read takes a
 * WAL snapshot, and a later write then fails at once with SQLITE_BUSY_SNAPSHOT if someone else
 * committed — busy_timeout does not help. Writing first takes the write lock up front (waiting
 * busy_timeout for it), so the rest of the transaction runs alone. PostgreSQL needs nothing.
 */
export async function writeTransaction<T>(db: Kysely<Database>, dialect: Dialect, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    if (dialect === 'sqlite') await sql`update audit_head set seq = seq where id = 1`.execute(trx);
    return work(trx);
  });
}
