import { randomBytes, randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, verifyAuditChain, type AuditEntry } from '../../src/store/audit-log.js';
import { approveAtOnce, consumeOtpCounter, reserveAttempt, type LockoutPolicy, type Reservation } from '../../src/store/attempts.js';
import { MIGRATION_NAMES, openStore, type Store } from '../../src/store/database.js';
import { preparedQuery } from '../../src/store/prepared-query.js';
import { DIALECTS, makeStoreLocation, TEST_PG_URL, type TestStoreLocation } from '../support/harness.js';

/**
 * The store contract (STYLE.md: one storage suite run against every database). Every case runs
 * on SQLite and, when COUNTERSIGN_TEST_DATABASE_URL is set, on PostgreSQL, with TWO stores
 * opened on the same location by `openStore`: one in this thread, one in a worker thread with
 * its own event loop — two SQLite connections to one file, or two PostgreSQL pools — so the
 * atomic statements are raced truly in parallel, as two nodes (or a CLI and a server) race them.
 *
 * Why a worker: SQLite connections are synchronous, so two connections in ONE thread never run a
 * statement at the same time, and a transaction that holds the write lock across an `await`
 * (appendAudit) blocks the other connection's busy handler — and with it the only thread —
 * until `database is locked`. Separate threads behave like separate processes.
 */
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const POLICY: LockoutPolicy = { threshold: 10, resetMinutes: 10, lockoutMinutes: 15 };

/** The operations raced, whichever thread the store lives in. */
interface StoreClient {
  consume(methodId: string, counter: number, nowMs: number): Promise<boolean>;
  reserve(tenantId: string, username: string, policy: LockoutPolicy, nowMs: number): Promise<Reservation>;
  /** PostgreSQL only: approveAtOnce. */
  approve(tenantId: string, username: string, methodId: string, counter: number, nowMs: number): Promise<{ id: string } | undefined>;
  append(key: Buffer, entry: AuditEntry, nowMs: number): Promise<number>;
  close(): Promise<void>;
}

function localClient(store: Store): StoreClient {
  return {
    consume: (methodId, counter, nowMs) => consumeOtpCounter(store.db, methodId, counter, nowMs),
    reserve: (tenantId, username, policy, nowMs) => reserveAttempt(store.db, tenantId, username, policy, nowMs),
    approve: (tenantId, username, methodId, counter, nowMs) => approveAtOnce(store.db, tenantId, username, methodId, counter, nowMs),
    append: (key, entry, nowMs) => appendAudit(store.db, key, entry, new Date(nowMs)),
    close: () => store.close(),
  };
}

// Plain JavaScript run by the worker: it loads the TypeScript store through tsx, as bin/countersign.js does.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { pathToFileURL } = require('node:url');
const { createRequire } = require('node:module');
const load = (async () => {
  const tsx = createRequire(workerData.root + '/package.json').resolve('tsx/esm/api').replace(/\\.cjs$/, '.mjs');
  (await import(pathToFileURL(tsx).href)).register();
  const src = (file) => import(pathToFileURL(workerData.root + '/src/store/' + file).href);
  const [database, attempts, audit] = await Promise.all([src('database.ts'), src('attempts.ts'), src('audit-log.ts')]);
  return { database, attempts, audit };
})();
let store;
parentPort.on('message', async ({ id, op, args }) => {
  try {
    const { database, attempts, audit } = await load;
    let value;
    if (op === 'ready') value = true;
    else if (op === 'open') value = Boolean(store = await database.openStore({ dataDir: workerData.dataDir, databaseUrl: workerData.databaseUrl }));
    else if (op === 'consume') value = await attempts.consumeOtpCounter(store.db, ...args);
    else if (op === 'reserve') value = await attempts.reserveAttempt(store.db, ...args);
    else if (op === 'approve') value = await attempts.approveAtOnce(store.db, ...args);
    else if (op === 'append') value = await audit.appendAudit(store.db, Buffer.from(args[0]), args[1], new Date(args[2]));
    else if (op === 'close') value = await store.close();
    parentPort.postMessage({ id, ok: true, value });
  } catch (error) {
    parentPort.postMessage({ id, ok: false, error: String((error && error.stack) || error) });
  }
});
`;

interface WorkerReply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

/** A store in a worker thread; `open` runs openStore there (after the worker has loaded, so opens can be raced). */
async function workerClient(location: TestStoreLocation): Promise<StoreClient & { open(): Promise<void> }> {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { root: process.cwd(), dataDir: location.dataDir, databaseUrl: location.databaseUrl } });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let next = 0;
  worker.on('message', (reply: WorkerReply) => {
    const waiter = pending.get(reply.id);
    pending.delete(reply.id);
    if (reply.ok) waiter?.resolve(reply.value);
    else waiter?.reject(new Error(`store worker: ${reply.error ?? 'failed'}`));
  });
  worker.on('error', (error) => {
    for (const waiter of pending.values()) waiter.reject(error);
    pending.clear();
  });
  const call = (op: string, ...args: unknown[]) =>
    new Promise<unknown>((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, op, args });
    });
  await call('ready');
  return {
    open: async () => {
      await call('open');
    },
    consume: async (...args) => (await call('consume', ...args)) as boolean,
    reserve: async (...args) => (await call('reserve', ...args)) as Reservation,
    approve: async (...args) => (await call('approve', ...args)) as { id: string } | undefined,
    append: async (key, entry, nowMs) => (await call('append', new Uint8Array(key), entry, nowMs)) as number,
    close: async () => {
      await call('close');
      await worker.terminate();
    },
  };
}

/** The migrations Kysely recorded as applied. */
it('MIGRATION_NAMES lists the migrations in order', () => {
  expect(MIGRATION_NAMES).toEqual(['001-initial', '002-notifications', '003-store-meta', '004-challenge-application', '005-telephony', '006-push', '007-access-controls', '008-policies', '009-usage', '010-webhooks', '011-admin-roles', '012-enrollment']);
});

async function migrationNames(store: Store): Promise<string[]> {
  const result = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(store.db);
  return result.rows.map((r) => r.name);
}

/** Splits `count` calls alternately over the two stores and runs them all at once. */
async function race<T>(clients: readonly [StoreClient, StoreClient], count: number, run: (client: StoreClient, i: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => run(clients[i % 2] as StoreClient, i)));
}

for (const dialect of DIALECTS) {
  describe(`store contract on ${dialect} (two stores on one location, two threads)`, () => {
    let location: TestStoreLocation;
    let store: Store;
    let clients: readonly [StoreClient, StoreClient];
    const tenantId = randomUUID();
    const auditKey = randomBytes(32);

    beforeAll(async () => {
      location = await makeStoreLocation(dialect);
      // Opened one after the other: the first applies the migrations, the second finds them done.
      store = await openStore({ dataDir: location.dataDir, databaseUrl: location.databaseUrl });
      const worker = await workerClient(location);
      await worker.open();
      clients = [localClient(store), worker];
      await store.db.insertInto('tenants').values({ id: tenantId, name: 'contract', settings: '{}', created_at: NOW }).execute();
      await store.db.insertInto('data_keys').values({ id: 'dek-contract', kek_id: 'kek-contract', wrapped_key: 'unused', active: 1, created_at: NOW }).execute();
    });

    afterAll(async () => {
      await clients[1].close();
      await store.close();
      await location.drop();
    });

    async function addUser(username: string): Promise<string> {
      const id = randomUUID();
      await store.db
        .insertInto('users')
        .values({
          id,
          tenant_id: tenantId,
          username,
          display_name: null,
          email: null,
          mfa_state: 'enforced',
          status: 'active',
          blocked_reason: null,
          blocked_until: null,
          failed_since: null,
          locked_until: null,
          created_at: NOW,
          updated_at: NOW,
        })
        .execute();
      return id;
    }

    async function addMethod(userId: string, counter: number): Promise<string> {
      const id = randomUUID();
      await store.db
        .insertInto('methods')
        .values({
          id,
          tenant_id: tenantId,
          user_id: userId,
          type: 'totp',
          status: 'active',
          label: 'Authenticator app',
          otp_kind: 'totp',
          algorithm: 'SHA1',
          digits: 6,
          period: 30,
          counter,
          secret: 'unused',
          key_id: 'dek-contract',
          serial: null,
          manufacturer: null,
          model: null,
          created_at: NOW,
          activated_at: NOW,
          last_used_at: null,
        })
        .execute();
      return id;
    }

    async function counterOf(methodId: string): Promise<number> {
      return Number((await store.db.selectFrom('methods').select('counter').where('id', '=', methodId).executeTakeFirstOrThrow()).counter);
    }

    async function lockStateOf(userId: string): Promise<{ failed_count: number; failed_since: number | null; locked_until: number | null }> {
      const row = await store.db.selectFrom('users').select(['failed_count', 'failed_since', 'locked_until']).where('id', '=', userId).executeTakeFirstOrThrow();
      return {
        failed_count: Number(row.failed_count),
        failed_since: row.failed_since === null ? null : Number(row.failed_since),
        locked_until: row.locked_until === null ? null : Number(row.locked_until),
      };
    }

    it('OTP-02: consumeOtpCounter raced 50 times over two stores for one step consumes it exactly once', async () => {
      const step = Math.floor(NOW / 30_000);
      const methodId = await addMethod(await addUser('race-consume@contoso.com'), step - 1);
      const results = await race(clients, 50, (client) => client.consume(methodId, step, NOW));
      expect(results.filter((r) => r)).toHaveLength(1);
      expect(results.filter((r) => !r)).toHaveLength(49);
      expect(await counterOf(methodId)).toBe(step + 1);
      expect(await clients[0].consume(methodId, step, NOW)).toBe(false);
      expect(await clients[1].consume(methodId, step, NOW)).toBe(false);
    });

    it('OTP-02: a lower step after a higher one is refused, from either store', async () => {
      const step = Math.floor(NOW / 30_000);
      const methodId = await addMethod(await addUser('lower-step@contoso.com'), step - 1);
      expect(await clients[0].consume(methodId, step + 1, NOW)).toBe(true);
      expect(await clients[1].consume(methodId, step, NOW)).toBe(false);
      expect(await clients[0].consume(methodId, step - 1, NOW)).toBe(false);
      expect(await counterOf(methodId)).toBe(step + 2);
      expect(await clients[1].consume(methodId, step + 2, NOW)).toBe(true);
      expect(await counterOf(methodId)).toBe(step + 3);
    });

    it('OTP-02: 25 steps each submitted twice, all at once: no step is consumed twice and the counter ends past the highest winner', async () => {
      const base = Math.floor(NOW / 30_000);
      const methodId = await addMethod(await addUser('many-steps@contoso.com'), base);
      const steps = Array.from({ length: 50 }, (_, i) => base + (i % 25));
      const results = await race(clients, 50, (client, i) => client.consume(methodId, steps[i] ?? -1, NOW));
      const won = steps.filter((_, i) => results[i] === true);
      expect(new Set(won).size).toBe(won.length);
      expect(won.length).toBeGreaterThanOrEqual(1);
      expect(await counterOf(methodId)).toBe(Math.max(...won) + 1);
    });

    it('OTP-06: reserveAttempt raced 50 times over two stores with threshold 10: exactly 10 reservations, the user ends locked', async () => {
      const userId = await addUser('race-reserve@contoso.com');
      const results = await race(clients, 50, (client) => client.reserve(tenantId, 'race-reserve@contoso.com', POLICY, NOW));
      const reserved = results.filter((r) => r.reserved);
      expect(reserved).toHaveLength(10);
      expect(results.filter((r) => !r.reserved)).toHaveLength(40);
      // Exactly one reservation — the 10th — set the lockout.
      expect(reserved.filter((r) => r.reserved && r.lockedNow)).toHaveLength(1);
      const lockedUntil = NOW + POLICY.lockoutMinutes * 60_000;
      expect(await lockStateOf(userId)).toEqual({ failed_count: 0, failed_since: null, locked_until: lockedUntil });
      // Locked on both stores until the lockout ends; then a failure starts a new count.
      expect(await clients[0].reserve(tenantId, 'race-reserve@contoso.com', POLICY, lockedUntil - 1)).toEqual({ reserved: false });
      expect(await clients[1].reserve(tenantId, 'race-reserve@contoso.com', POLICY, lockedUntil - 1)).toEqual({ reserved: false });
      const after = await clients[1].reserve(tenantId, 'race-reserve@contoso.com', POLICY, lockedUntil);
      expect(after.reserved && after.lockedNow).toBe(false);
      expect(await lockStateOf(userId)).toEqual({ failed_count: 1, failed_since: lockedUntil, locked_until: null });
    });

    it('RL-01: reserveAttempt counts failures per user across stores and starts a new count resetMinutes after the first failure', async () => {
      const userId = await addUser('reset-count@contoso.com');
      for (let i = 0; i < 9; i++) {
        const r = await (clients[i % 2] as StoreClient).reserve(tenantId, 'reset-count@contoso.com', POLICY, NOW + i * 1000);
        expect(r.reserved && !r.lockedNow).toBe(true);
      }
      expect(await lockStateOf(userId)).toEqual({ failed_count: 9, failed_since: NOW, locked_until: null });
      const later = NOW + POLICY.resetMinutes * 60_000;
      const r = await clients[1].reserve(tenantId, 'reset-count@contoso.com', POLICY, later);
      expect(r.reserved && !r.lockedNow).toBe(true);
      expect(await lockStateOf(userId)).toEqual({ failed_count: 1, failed_since: later, locked_until: null });
    });

    it('RL-01: the 10th failure inside the reset window locks, whichever store counts it', async () => {
      const userId = await addUser('tenth@contoso.com');
      for (let i = 0; i < 9; i++) await (clients[i % 2] as StoreClient).reserve(tenantId, 'tenth@contoso.com', POLICY, NOW + i * 1000);
      const last = NOW + POLICY.resetMinutes * 60_000 - 1;
      const r = await clients[1].reserve(tenantId, 'tenth@contoso.com', POLICY, last);
      expect(r.reserved && r.lockedNow).toBe(true);
      expect(await lockStateOf(userId)).toEqual({ failed_count: 0, failed_since: null, locked_until: last + POLICY.lockoutMinutes * 60_000 });
    });

    // The verify path's one-statement approval on PostgreSQL (verify-code.ts): the same
    // guarantees as reserveAttempt and consumeOtpCounter in a transaction.
    it.skipIf(dialect !== 'postgres')('OTP-02, OTP-06: approveAtOnce raced 50 times over two stores for one step approves exactly once, and clears the failure count only then', async () => {
      const step = Math.floor(NOW / 30_000);
      const userId = await addUser('race-approve@contoso.com');
      const methodId = await addMethod(userId, step - 1);
      await store.db.updateTable('users').set({ failed_count: 4, failed_since: NOW - 1000 }).where('id', '=', userId).execute();
      const results = await race(clients, 50, (client) => client.approve(tenantId, 'race-approve@contoso.com', methodId, step, NOW));
      expect(results.filter((r) => r !== undefined)).toEqual([{ id: userId }]);
      expect(await counterOf(methodId)).toBe(step + 1);
      expect(await lockStateOf(userId)).toEqual({ failed_count: 0, failed_since: null, locked_until: null });
    });

    it.skipIf(dialect !== 'postgres')('OTP-01, OTP-06, BND-02: approveAtOnce changes nothing when it does not approve: a used step, a locked, blocked or unknown user, a method not active', async () => {
      const step = Math.floor(NOW / 30_000);
      const userId = await addUser('no-approve@contoso.com');
      const methodId = await addMethod(userId, step + 1);
      const failures = { failed_count: 4, failed_since: NOW - 1000, locked_until: null };
      await store.db.updateTable('users').set(failures).where('id', '=', userId).execute();
      // A step already used: the failure count is not cleared.
      expect(await clients[0].approve(tenantId, 'no-approve@contoso.com', methodId, step, NOW)).toBeUndefined();
      expect(await lockStateOf(userId)).toEqual(failures);
      expect(await counterOf(methodId)).toBe(step + 1);
      // Locked out: neither the step is consumed nor the lockout lifted.
      const locked = { failed_count: 0, failed_since: null, locked_until: NOW + 60_000 };
      await store.db.updateTable('users').set(locked).where('id', '=', userId).execute();
      expect(await clients[1].approve(tenantId, 'no-approve@contoso.com', methodId, step + 2, NOW)).toBeUndefined();
      expect(await lockStateOf(userId)).toEqual(locked);
      expect(await counterOf(methodId)).toBe(step + 1);
      // Blocked.
      await store.db.updateTable('users').set({ locked_until: null, status: 'blocked', blocked_reason: 'admin' }).where('id', '=', userId).execute();
      expect(await clients[0].approve(tenantId, 'no-approve@contoso.com', methodId, step + 2, NOW)).toBeUndefined();
      expect(await counterOf(methodId)).toBe(step + 1);
      // Another user's name, or the method not active: nothing.
      await store.db.updateTable('users').set({ status: 'active', blocked_reason: null }).where('id', '=', userId).execute();
      await addUser('other-approve@contoso.com');
      expect(await clients[1].approve(tenantId, 'other-approve@contoso.com', methodId, step + 2, NOW)).toBeUndefined();
      expect(await clients[1].approve(tenantId, 'nobody@contoso.com', methodId, step + 2, NOW)).toBeUndefined();
      await store.db.updateTable('methods').set({ status: 'pending' }).where('id', '=', methodId).execute();
      expect(await clients[0].approve(tenantId, 'no-approve@contoso.com', methodId, step + 2, NOW)).toBeUndefined();
      expect(await counterOf(methodId)).toBe(step + 1);
      // Active again, the step fresh: approved, the count cleared.
      await store.db.updateTable('methods').set({ status: 'active' }).where('id', '=', methodId).execute();
      await store.db.updateTable('users').set(failures).where('id', '=', userId).execute();
      expect(await clients[1].approve(tenantId, 'no-approve@contoso.com', methodId, step + 2, NOW)).toEqual({ id: userId });
      expect(await counterOf(methodId)).toBe(step + 3);
      expect(await lockStateOf(userId)).toEqual({ failed_count: 0, failed_since: null, locked_until: null });
    });

    it.skipIf(dialect !== 'postgres')('OTP-06: approveAtOnce waits for a racing lockout or block and then re-checks the user: it approves nothing', async () => {
      const step = Math.floor(NOW / 30_000);
      for (const change of [{ locked_until: NOW + 60_000 }, { status: 'blocked', blocked_reason: 'admin' }] as const) {
        const username = `racing-${Object.keys(change)[0]}@contoso.com`;
        const userId = await addUser(username);
        const methodId = await addMethod(userId, step - 1);
        // Another node's transaction changes the user and has not committed yet when the code arrives.
        const other = new pg.Client({ connectionString: location.databaseUrl });
        await other.connect();
        try {
          await other.query('begin');
          const [column, value] = Object.entries(change)[0] as [string, string | number];
          await other.query(`update users set ${column} = $1${'blocked_reason' in change ? `, blocked_reason = 'admin'` : ''} where id = $2`, [value, userId]);
          const approval = clients[0].approve(tenantId, username, methodId, step, NOW);
          // The approval waits on the user's row; give it time to get there, then commit the change.
          await new Promise((resolve) => setTimeout(resolve, 200));
          await other.query('commit');
          expect(await approval).toBeUndefined();
        } finally {
          await other.end();
        }
        expect(await counterOf(methodId)).toBe(step - 1);
      }
    });

    it.skipIf(dialect !== 'postgres')('a prepared statement whose table another process changed is prepared again, and the same connection goes on', async () => {
      // One connection, so the second call surely meets the statement the first one prepared.
      const single = await openStore({ dataDir: location.dataDir, databaseUrl: location.databaseUrl, poolSize: 1 });
      const changer = new pg.Client({ connectionString: location.databaseUrl });
      await changer.connect();
      try {
        const tenantRow = preparedQuery((db, id: string) => db.selectFrom('tenants').selectAll().where('id', '=', id));
        expect((await tenantRow(single.db, tenantId)).rows).toHaveLength(1);
        // A migration on another node adds a column to the table the statement reads.
        await changer.query('alter table tenants add column contract_extra integer');
        const after = (await tenantRow(single.db, tenantId)).rows[0] as Record<string, unknown> | undefined;
        expect(after).toMatchObject({ id: tenantId, contract_extra: null });
        expect((await tenantRow(single.db, tenantId)).rows).toHaveLength(1);
      } finally {
        await changer.query('alter table tenants drop column if exists contract_extra');
        await changer.end();
        await single.close();
      }
    });

    it('RL-01: an unknown user or a blocked user gets no reservation', async () => {
      expect(await clients[0].reserve(tenantId, 'nobody@contoso.com', POLICY, NOW)).toEqual({ reserved: false });
      const userId = await addUser('blocked-store@contoso.com');
      await store.db.updateTable('users').set({ status: 'blocked', blocked_reason: 'admin' }).where('id', '=', userId).execute();
      expect(await clients[1].reserve(tenantId, 'blocked-store@contoso.com', POLICY, NOW)).toEqual({ reserved: false });
    });

    it('LOG-03: appendAudit raced 50 times over two stores gives seq 1..50 in one unbroken chain', async () => {
      const seqs = await race(clients, 50, (client, i) => client.append(auditKey, { tenantId, actor: 'system', action: 'contract.race', target: null, detail: { i } }, NOW + i));
      const oneToFifty = Array.from({ length: 50 }, (_, i) => i + 1);
      expect([...seqs].sort((x, y) => x - y)).toEqual(oneToFifty);
      const rows = await store.db.selectFrom('audit_events').select(['seq', 'detail']).orderBy('seq').execute();
      expect(rows.map((r) => Number(r.seq))).toEqual(oneToFifty);
      // Each of the 50 calls is in the chain exactly once.
      expect(rows.map((r) => (JSON.parse(r.detail) as { i: number }).i).sort((x, y) => x - y)).toEqual(oneToFifty.map((n) => n - 1));
      expect(await verifyAuditChain(store.db, auditKey)).toEqual({ ok: true, records: 50 });
      // The chain is keyed: checked with another key, the first record already fails.
      expect(await verifyAuditChain(store.db, randomBytes(32))).toEqual({ ok: false, records: 0, firstBadSeq: 1, problem: 'record 1 was altered' });
    });

    it('migrations applied again are a no-op: a third open changes nothing and lists the migration once', async () => {
      const users = await store.db.selectFrom('users').select('id').orderBy('id').execute();
      const third = await openStore({ dataDir: location.dataDir, databaseUrl: location.databaseUrl });
      try {
        expect(await migrationNames(third)).toEqual([...MIGRATION_NAMES]);
        expect(await third.db.selectFrom('users').select('id').orderBy('id').execute()).toEqual(users);
        const head = await third.db.selectFrom('audit_head').selectAll().execute();
        expect(head.map((h) => ({ id: Number(h.id), seq: Number(h.seq) }))).toEqual([{ id: 1, seq: 50 }]);
      } finally {
        await third.close();
      }
    });
  });

  if (dialect === 'postgres') {
    describe('store contract on postgres: connections dropped by the server', () => {
      it('an idle pooled connection killed by the server (restart, failover) does not crash the process; the next query reconnects', async () => {
        const location = await makeStoreLocation('postgres');
        const store = await openStore({ dataDir: location.dataDir, databaseUrl: location.databaseUrl });
        const admin = new pg.Client({ connectionString: TEST_PG_URL });
        try {
          await store.db.selectFrom('tenants').select('id').execute();
          await admin.connect();
          const database = new URL(location.databaseUrl ?? '').pathname.slice(1);
          const killed = await admin.query<{ killed: boolean }>('select pg_terminate_backend(pid) as killed from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [database]);
          expect(killed.rows.length).toBeGreaterThanOrEqual(1);
          // Let the pool see the dropped socket (an unhandled 'error' event would fail this test file).
          await new Promise((resolve) => setTimeout(resolve, 300));
          expect(await store.db.selectFrom('tenants').select('id').execute()).toEqual([]);
        } finally {
          await admin.end();
          await store.close();
          await location.drop();
        }
      });
    });
  }

  describe(`store contract on ${dialect}: two nodes starting at once on a fresh store`, () => {
    it('migrations raced by two stores on an empty location apply exactly once', async () => {
      const location = await makeStoreLocation(dialect);
      const worker = await workerClient(location);
      const [local, remote] = await Promise.allSettled([openStore({ dataDir: location.dataDir, databaseUrl: location.databaseUrl }), worker.open()]);
      try {
        expect([local.status, remote.status === 'rejected' ? String(remote.reason) : remote.status]).toEqual(['fulfilled', 'fulfilled']);
        if (local.status !== 'fulfilled') return;
        expect(await migrationNames(local.value)).toEqual([...MIGRATION_NAMES]);
        const head = await local.value.db.selectFrom('audit_head').selectAll().execute();
        expect(head.map((h) => ({ id: Number(h.id), seq: Number(h.seq), hash: h.hash }))).toEqual([{ id: 1, seq: 0, hash: '' }]);
      } finally {
        if (remote.status === 'fulfilled') await worker.close();
        if (local.status === 'fulfilled') await local.value.close();
        await location.drop();
      }
    });
  });
}
