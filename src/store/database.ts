import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Migration, type MigrationProvider, type SqliteDatabase as SqliteDialectDatabase } from 'kysely';
import pg from 'pg';
import { CountersignError } from '../core/errors.js';
import * as initial from './migrations/001-initial.js';
import * as notifications from './migrations/002-notifications.js';
import * as storeMeta from './migrations/003-store-meta.js';
import * as challengeApplication from './migrations/004-challenge-application.js';
import * as telephony from './migrations/005-telephony.js';
import * as push from './migrations/006-push.js';
import * as accessControls from './migrations/007-access-controls.js';
import * as policies from './migrations/008-policies.js';
import * as usage from './migrations/009-usage.js';
import * as webhooks from './migrations/010-webhooks.js';
import * as adminRoles from './migrations/011-admin-roles.js';
import * as enrollment from './migrations/012-enrollment.js';
import type { Database } from './schema.js';
import { preparedStatementNames } from './prepared-query.js';

export type Dialect = 'sqlite' | 'postgres';

export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  /** Where the store is, for people: a file path or a PostgreSQL URL without its password. */
  readonly location: string;
  /**
   * What the audit chain is appended through when appends are not part of the caller's own
   * transaction (group-commit.ts). On PostgreSQL a pool of one connection of its own: the chain
   * takes one append at a time anyway, and on the main pool each append would wait in line
   * behind every request's queries. SQLite appends in the group commit, on `db`.
   */
  readonly auditDb?: Kysely<Database>;
  close(): Promise<void>;
}

/** Every migration, in order. One set runs on both SQLite and PostgreSQL. */
const MIGRATIONS: Record<string, Migration> = {
  '001-initial': initial,
  '002-notifications': notifications,
  '003-store-meta': storeMeta,
  '004-challenge-application': challengeApplication,
  '005-telephony': telephony,
  '006-push': push,
  '007-access-controls': accessControls,
  '008-policies': policies,
  '009-usage': usage,
  '010-webhooks': webhooks,
  '011-admin-roles': adminRoles,
  '012-enrollment': enrollment,
};

/** The names of every migration, in order (what a fully migrated store lists once each). */
export const MIGRATION_NAMES: readonly string[] = Object.keys(MIGRATIONS);

const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(MIGRATIONS),
};

// PostgreSQL returns BIGINT (int8, OID 20) as a string; our bigints are epoch milliseconds and
// OTP counters, far below 2^53, so numbers are exact.
const PG_INT8 = 20;
const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown =>
    oid === PG_INT8 ? (value: string) => Number(value) : (pg.types.getTypeParser as (oid: number, format?: string) => unknown)(oid, format)) as typeof pg.types.getTypeParser,
};

export interface OpenStoreOptions {
  dataDir: string;
  databaseUrl: string | undefined;
  /** PostgreSQL pool size. */
  poolSize?: number;
}

/** Opens the store (SQLite in dataDir, or PostgreSQL) and applies pending migrations. */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const { store, exclusively } = options.databaseUrl === undefined ? openSqlite(options.dataDir) : { store: openPostgres(options.databaseUrl, options.poolSize ?? 10), exclusively: undefined };
  try {
    await migrate(store.db, exclusively);
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

/** Runs `work` holding the store's write lock, as one transaction (SQLite: see openSqlite). */
type Exclusively = (work: () => Promise<void>) => Promise<void>;

function openSqlite(dataDir: string): { store: Store; exclusively: Exclusively } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, 'countersign.db');
  const sqlite = new SqliteDatabase(file);
  // The file holds users' emails, phones and sealed seeds: readable by the service account only
  // (SQLite gives its -wal and -shm files the same mode).
  chmodSync(file, 0o600);
  // WAL lets a CLI and a running server share the file; busy_timeout makes a writer wait for
  // another process's transaction instead of failing at once.
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 10000');
  sqlite.pragma('foreign_keys = ON');
  // A larger page cache and memory-mapped reads keep the working set of a busy server (users,
  // methods, their indexes) out of read syscalls.
  sqlite.pragma('cache_size = -65536');
  sqlite.pragma('mmap_size = 268435456');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  // Kysely migrates SQLite with neither a lock nor a transaction (it assumes one connection). A
  // server and a CLI starting on a fresh data dir at once would both apply 001 and one would
  // fail, and a crash midway would leave half a schema. So the migration runs holding the write
  // lock (BEGIN IMMEDIATE: another process waits busy_timeout, then finds nothing to do) and
  // commits or rolls back as a whole.
  const exclusively: Exclusively = async (work) => {
    sqlite.exec('BEGIN IMMEDIATE');
    try {
      await work();
      sqlite.exec('COMMIT');
    } catch (error) {
      if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
      throw error;
    }
  };
  return { store: { db, dialect: 'sqlite', location: file, close: () => db.destroy() }, exclusively };
}

/**
 * Kysely prepares every query anew; preparing costs more than running a small statement on
 * better-sqlite3. The same SQL text reuses its prepared statement (a bounded LRU, since IN lists
 * of different lengths make different texts).
 */
function withStatementCache(sqlite: SqliteDatabase.Database, size = 500): SqliteDialectDatabase {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string) {
      let statement = cache.get(text);
      if (statement === undefined) {
        statement = sqlite.prepare(text);
        if (cache.size >= size) {
          const oldest = cache.keys().next().value;
          if (oldest !== undefined) cache.delete(oldest);
        }
      } else {
        cache.delete(text);
      }
      cache.set(text, statement);
      return statement;
    },
  };
}

/**
 * A connection that sends the hot path's queries (prepared-query.ts) as named prepared
 * statements: PostgreSQL parses and plans each once per connection, not on every call. Kysely
 * hands pg the SQL text and values; a text that is a prepared query's is sent under its name.
 *
 * A statement prepared before another process changed a table it reads (a migration during a
 * rolling upgrade) fails with "cached plan must not change result type"; it is then prepared
 * again under a new name on this connection and the call retried once, so running servers go
 * on without a restart. (Inside a transaction the failure has already failed the transaction:
 * that call fails, and the connection's next one uses the new name.)
 */
class PreparedStatementClient extends pg.Client {
  /** Names given on this connection instead of a stale statement's. */
  readonly #renamed = new Map<string, string>();
  #renames = 0;

  override query(...args: unknown[]): never {
    const [text, values] = args;
    const shared = typeof text === 'string' && Array.isArray(values) && args.length === 2 ? preparedStatementNames.get(text) : undefined;
    const query = super.query.bind(this) as (...a: unknown[]) => Promise<unknown>;
    if (shared === undefined) return query(...args) as never;
    const name = this.#renamed.get(shared) ?? shared;
    return query({ name, text, values }).catch((error: unknown) => {
      if (!isStalePlan(error)) throw error;
      const fresh = `${shared}_${++this.#renames}`;
      this.#renamed.set(shared, fresh);
      return query({ name: fresh, text, values });
    }) as never;
  }
}

/** PostgreSQL's answer to a prepared statement whose tables changed shape since it was prepared. */
function isStalePlan(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === '0A000' && /cached plan must not change result type/.test(error.message);
}

function openPostgres(url: string, max: number): Store {
  const db = postgresKysely(url, max);
  const auditDb = postgresKysely(url, 1);
  return { db, auditDb, dialect: 'postgres', location: redactUrl(url), close: () => Promise.all([db.destroy(), auditDb.destroy()]).then(() => undefined) };
}

function postgresKysely(url: string, max: number): Kysely<Database> {
  const pool = new pg.Pool({ connectionString: url, max, types: pgTypes, Client: PreparedStatementClient });
  // An idle connection that the server drops (restart, failover, pg_terminate_backend, a proxy's
  // idle timeout) is reported as an 'error' event on the pool; unhandled, it would crash the
  // process. pg has already removed that client, and the next query opens a fresh connection.
  pool.on('error', () => undefined);
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

async function migrate(db: Kysely<Database>, exclusively: Exclusively = (work) => work()): Promise<void> {
  // PostgreSQL: Kysely takes an advisory lock and runs the migrations in a transaction itself.
  await exclusively(async () => {
    const migrator = new Migrator({ db, provider: migrationProvider });
    const { error, results } = await migrator.migrateToLatest();
    if (error !== undefined) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
      throw new CountersignError('INTERNAL', `database migration ${failed} failed: ${error instanceof Error ? error.message : JSON.stringify(error)}`, { cause: error });
    }
  });
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://(unparseable url)';
  }
}
