import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit, verifyAuditChain } from '../../src/store/audit-log.js';
import { openStore, type Store } from '../../src/store/database.js';
import { createGroupCommit, type GroupCommit } from '../../src/store/group-commit.js';
import { preparedQuery } from '../../src/store/prepared-query.js';
import { DIALECTS, makeStoreLocation, type TestStoreLocation } from '../support/harness.js';

/** Group commit and prepared queries, the two pieces the verify path's speed rests on, on every store. */
describe.each(DIALECTS)('group commit and prepared queries on %s', (dialect) => {
  let location: TestStoreLocation;
  let store: Store;
  let writes: GroupCommit;
  const auditKey = randomBytes(32);
  const clock = () => new Date(Date.UTC(2026, 0, 15));

  beforeAll(async () => {
    location = await makeStoreLocation(dialect);
    store = await openStore({ dataDir: location.dataDir, databaseUrl: location.databaseUrl });
    writes = createGroupCommit(store, auditKey, clock);
  });
  afterAll(async () => {
    await store.close();
    await location.drop();
  });

  const addTenant = (name: string) => (db: Store['db']) => db.insertInto('tenants').values({ id: randomUUID(), name, settings: '{}', created_at: 1 }).execute();
  const tenantNames = async () => (await store.db.selectFrom('tenants').select('name').orderBy('name').execute()).map((r) => r.name);

  it('work arriving together commits; a piece that throws is undone alone, with its audit records', async () => {
    const failure = new Error('refused by this piece of work');
    const results = await Promise.allSettled([
      writes.run(async (db, record) => {
        await addTenant('gc-a')(db);
        record({ tenantId: null, actor: 'system', action: 'test.a', target: null });
        return 'a';
      }),
      writes.run(async (db, record) => {
        await addTenant('gc-b')(db);
        record({ tenantId: null, actor: 'system', action: 'test.b', target: null });
        throw failure;
      }),
      writes.audit({ tenantId: null, actor: 'system', action: 'test.alone', target: null }),
      writes.run(async (db, record) => {
        await addTenant('gc-c')(db);
        record({ tenantId: null, actor: 'system', action: 'test.c', target: null });
        return 'c';
      }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(results[0]).toMatchObject({ value: 'a' });
    expect(results[1]).toMatchObject({ reason: failure });
    expect(await tenantNames()).toEqual(['gc-a', 'gc-c']);
    const actions = (await listAudit(store.db, { limit: 10 })).map((r) => r.action).sort();
    expect(actions).toEqual(['test.a', 'test.alone', 'test.c']);
    expect(await verifyAuditChain(store.db, auditKey)).toEqual({ ok: true, records: 3 });
  });

  it('a piece whose statement fails (a unique key) is refused alone; the other piece commits', async () => {
    // Two pieces insert the same unique name together: the second one's statement fails.
    const before = await tenantNames();
    const results = await Promise.allSettled([
      writes.run(async (db) => addTenant('gc-d')(db)),
      writes.run(async (db) => addTenant('gc-d')(db)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    expect(await tenantNames()).toEqual([...before, 'gc-d'].sort());
  });

  it('a prepared query runs with new values each time, and a builder that changes its argument is refused', async () => {
    const byName = preparedQuery((db, name: string) => db.selectFrom('tenants').select(['name']).where('name', '=', name).where('created_at', '=', 1));
    expect((await byName(store.db, 'gc-a')).rows).toEqual([{ name: 'gc-a' }]);
    expect((await byName(store.db, 'gc-c')).rows).toEqual([{ name: 'gc-c' }]);
    expect((await byName(store.db, 'nobody')).rows).toEqual([]);
    // Inside a transaction too (the same compiled form serves it).
    expect(await store.db.transaction().execute(async (trx) => (await byName(trx, 'gc-d')).rows)).toEqual([{ name: 'gc-d' }]);
    const changed = preparedQuery((db, name: string) => db.selectFrom('tenants').select('name').where('name', '=', `${name}!`));
    await expect(changed(store.db, 'gc-a')).rejects.toThrow(/did not reach the SQL unchanged/);
  });
});
