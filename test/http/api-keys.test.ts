import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticateApiKey, bootstrapFirstAdmin, createAdminKey, hashApiKey, revokeAdminKey } from '../../src/flows/api-keys.js';
import { createTestApp, createTestContext, makeStoreLocation, type TestApp, type TestStoreLocation } from '../support/harness.js';

/**
 * Revoking and rotating API keys (review finding 1): administrator keys are listed without their
 * secret and revoked (never the last one for every tenant); applications get further keys and
 * lose old ones; a revoked key is refused on its next request; every change is audited without
 * the key. And the first start of several nodes at once (finding 2).
 */
let t: TestApp;
/** Every key this file saw, so the audit log and the lists can be searched for them. */
const secrets: string[] = [];

beforeAll(async () => {
  t = await createTestApp();
  secrets.push(t.adminKey, t.appKey);
});
afterAll(async () => {
  await t.close();
});

type Reply = { status: number; body: any };

async function call(key: string, method: 'GET' | 'POST' | 'DELETE', url: string, body?: Record<string, unknown>): Promise<Reply> {
  const response = await t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(body === undefined ? {} : { payload: body }) });
  return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
}

const error = (status: number, code: string, message: string) => ({ status, body: { error: { code, message } } });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEX64 = /[0-9a-f]{64}/i;
const REVOKED = error(401, 'UNAUTHORIZED', 'authorization: the API key is not valid or was revoked');

/** Neither a key of this file nor any SHA-256 hex (a stored hash) appears in `value`. */
function expectNoSecret(value: unknown): void {
  const text = JSON.stringify(value);
  expect(text).not.toMatch(HEX64);
  expect(text).not.toMatch(/cs[ak]_[A-Za-z0-9_-]{43}/);
  for (const secret of secrets) {
    expect(text).not.toContain(secret);
    expect(text).not.toContain(hashApiKey(secret));
  }
}

async function newAdminKey(name: string, tenant?: string, key = t.adminKey): Promise<{ id: string; api_key: string }> {
  // Lists are oldest first: each key gets its own creation time.
  t.clock.advance(1000);
  const created = await call(key, 'POST', `/v1/admin/admin-keys${tenant === undefined ? '' : `?tenant=${encodeURIComponent(tenant)}`}`, { name });
  expect(created.status).toBe(201);
  secrets.push(created.body.api_key);
  return created.body;
}

const works = async (key: string) => (await call(key, 'GET', '/v1/admin/tenants')).status;
const appWorks = async (key: string) => (await call(key, 'POST', '/v1/preauth', { username: 'nobody@contoso.com' })).status;

describe('administrator keys', () => {
  it('the list shows id, name, tenant, created_at, revoked_at — never the key or its hash', async () => {
    const second = await newAdminKey('list second');
    const secondAt = new Date(t.clock.ms()).toISOString();
    const listed = await t.admin('GET', '/v1/admin/admin-keys');
    expect(listed.status).toBe(200);
    expect(listed.body.admin_keys).toContainEqual({ id: expect.stringMatching(UUID), name: 'first administrator', tenant: null, role: 'global_admin', created_at: '2026-01-15T12:00:00.000Z', revoked_at: null });
    expect(listed.body.admin_keys).toContainEqual({ id: second.id, name: 'list second', tenant: null, role: 'global_admin', created_at: secondAt, revoked_at: null });
    for (const row of listed.body.admin_keys) expect(Object.keys(row).sort()).toEqual(['created_at', 'id', 'name', 'revoked_at', 'role', 'tenant']);
    expectNoSecret(listed.body);
  });

  it('a revoked key gets 401 on its very next request; revoking it again is 409, an unknown id 404', async () => {
    const doomed = await newAdminKey('doomed');
    const doomedAt = new Date(t.clock.ms()).toISOString();
    expect(await works(doomed.api_key)).toBe(200);
    t.clock.advance(60_000);
    const revokedAt = new Date(t.clock.ms()).toISOString();
    expect(await t.admin('DELETE', `/v1/admin/admin-keys/${doomed.id}`)).toEqual({ status: 204, body: undefined });
    expect(await call(doomed.api_key, 'GET', '/v1/admin/tenants')).toEqual(REVOKED);
    expect(await t.admin('DELETE', `/v1/admin/admin-keys/${doomed.id}`)).toEqual(error(409, 'CONFLICT', `administrator key ${doomed.id} is already revoked`));
    const listed = (await t.admin('GET', '/v1/admin/admin-keys')).body.admin_keys;
    expect(listed.find((k: { id: string }) => k.id === doomed.id)).toEqual({ id: doomed.id, name: 'doomed', tenant: null, role: 'global_admin', created_at: doomedAt, revoked_at: revokedAt });
    expect(await t.admin('DELETE', '/v1/admin/admin-keys/00000000-0000-0000-0000-000000000000')).toEqual(
      error(404, 'NOT_FOUND', 'administrator key 00000000-0000-0000-0000-000000000000 not found'),
    );
    // An application key is not an administrator key, whatever its id.
    const appKeyId = (await t.services.db.selectFrom('api_keys').select('id').where('kind', '=', 'application').executeTakeFirstOrThrow()).id;
    expect((await t.admin('DELETE', `/v1/admin/admin-keys/${appKeyId}`)).status).toBe(404);
    expect(await appWorks(t.appKey)).toBe(200);
    // Applications cannot touch administrator keys.
    expect(await t.api('GET', '/v1/admin/admin-keys')).toEqual(error(403, 'FORBIDDEN', 'this endpoint needs an administrator key'));
    expect(await call(t.appKey, 'DELETE', `/v1/admin/admin-keys/${doomed.id}`)).toEqual(error(403, 'FORBIDDEN', 'this endpoint needs an administrator key'));
  });

  it('the last active key for every tenant cannot be revoked (409), but can once another exists', async () => {
    const fresh = await createTestApp();
    try {
      secrets.push(fresh.adminKey, fresh.appKey);
      const del = (key: string, id: string) => fresh.app.inject({ method: 'DELETE', url: `/v1/admin/admin-keys/${id}`, headers: { authorization: `Bearer ${key}` } });
      const create = async (name: string, query = '', key = fresh.adminKey, role?: string) => {
        const response = await fresh.app.inject({ method: 'POST', url: `/v1/admin/admin-keys${query}`, headers: { authorization: `Bearer ${key}` }, payload: role === undefined ? { name } : { name, role } });
        expect(response.statusCode).toBe(201);
        const body = response.json<{ id: string; api_key: string }>();
        secrets.push(body.api_key);
        return body;
      };
      const [first] = (await fresh.admin('GET', '/v1/admin/admin-keys')).body.admin_keys as { id: string }[];
      const firstId = first?.id ?? '';
      const last = `administrator key ${firstId} is the last active global_admin key for every tenant; create another (countersign admin-key create --role global_admin) before revoking it`;
      const refused = await del(fresh.adminKey, firstId);
      expect({ status: refused.statusCode, body: refused.json() }).toEqual(error(409, 'CONFLICT', last));
      // A key limited to one tenant does not count, nor one for every tenant that cannot manage keys.
      await create('scoped', '?tenant=default');
      const reader = await create('reader', '', fresh.adminKey, 'reader');
      expect((await del(fresh.adminKey, firstId)).statusCode).toBe(409);
      // Such a key is revoked freely.
      expect((await del(fresh.adminKey, reader.id)).statusCode).toBe(204);
      expect((await fresh.admin('GET', '/v1/admin/tenants')).status).toBe(200);

      const second = await create('second');
      expect((await del(second.api_key, firstId)).statusCode).toBe(204);
      expect((await fresh.admin('GET', '/v1/admin/tenants')).status).toBe(401);
      expect((await del(second.api_key, second.id)).statusCode).toBe(409);

      // Two revocations at once of the last two: one wins, the other is refused — never both.
      // (At the flow level, so that neither request is refused earlier for its own key.)
      const cli = { kind: 'cli' } as const;
      for (let round = 0; round < 5; round++) {
        const extra = await createAdminKey(fresh.services, cli, null, `extra ${round}`);
        secrets.push(extra.api_key);
        const active = await fresh.services.db.selectFrom('api_keys').select('id').where('kind', '=', 'admin').where('tenant_id', 'is', null).where('revoked_at', 'is', null).execute();
        expect(active.length).toBe(2);
        const outcomes = await Promise.allSettled(active.map((k) => revokeAdminKey(fresh.services, cli, k.id)));
        expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
        expect(outcomes.find((o) => o.status === 'rejected')).toMatchObject({ reason: { code: 'CONFLICT' } });
      }
      const active = (await fresh.services.db.selectFrom('api_keys').select('id').where('kind', '=', 'admin').where('tenant_id', 'is', null).where('revoked_at', 'is', null).execute()).length;
      expect(active).toBe(1);
    } finally {
      await fresh.close();
    }
  });

  it('a tenant administrator key sees and revokes its own tenant’s keys only', async () => {
    for (const name of ['keys-a', 'keys-b']) expect((await t.admin('POST', '/v1/admin/tenants', { name })).status).toBe(201);
    const a1 = await newAdminKey('a1', 'keys-a');
    const a2 = await newAdminKey('a2', 'keys-a');
    const b1 = await newAdminKey('b1', 'keys-b');
    const tenantA = (await call(a1.api_key, 'GET', '/v1/admin/tenants')).body.tenants[0].id as string;

    const seen = await call(a1.api_key, 'GET', '/v1/admin/admin-keys');
    expect(seen.status).toBe(200);
    expect(seen.body.admin_keys.map((k: { id: string; tenant: string }) => [k.id, k.tenant])).toEqual([
      [a1.id, tenantA],
      [a2.id, tenantA],
    ]);
    expectNoSecret(seen.body);
    // Every-tenant administrators see them all.
    const all = (await t.admin('GET', '/v1/admin/admin-keys')).body.admin_keys.map((k: { id: string }) => k.id);
    expect(all).toEqual(expect.arrayContaining([a1.id, a2.id, b1.id]));

    const firstId = (await t.services.db.selectFrom('api_keys').select('id').where('name', '=', 'first administrator').executeTakeFirstOrThrow()).id;
    expect(await call(a1.api_key, 'DELETE', `/v1/admin/admin-keys/${b1.id}`)).toEqual(error(404, 'NOT_FOUND', `administrator key ${b1.id} not found`));
    expect(await call(a1.api_key, 'DELETE', `/v1/admin/admin-keys/${firstId}`)).toEqual(error(403, 'FORBIDDEN', 'a tenant administrator key cannot revoke keys for every tenant'));
    expect(await works(b1.api_key)).toBe(200);
    expect(await works(t.adminKey)).toBe(200);

    expect(await call(a1.api_key, 'DELETE', `/v1/admin/admin-keys/${a2.id}`)).toEqual({ status: 204, body: undefined });
    expect(await works(a2.api_key)).toBe(401);
    // An every-tenant administrator revokes any tenant's key.
    expect((await t.admin('DELETE', `/v1/admin/admin-keys/${b1.id}`)).status).toBe(204);
    expect(await works(b1.api_key)).toBe(401);
    // A tenant key may revoke itself (it is not a key for every tenant).
    expect((await call(a1.api_key, 'DELETE', `/v1/admin/admin-keys/${a1.id}`)).status).toBe(204);
    expect(await works(a1.api_key)).toBe(401);
  });
});

describe('application keys', () => {
  it('rotation: a new key works, the old one too until revoked, then 401; lists never show a key', async () => {
    const created = await t.admin('POST', '/v1/admin/applications?tenant=default', { name: 'rotating' });
    const appId: string = created.body.id;
    const createdAt = new Date(t.clock.ms()).toISOString();
    const oldKey: string = created.body.api_key;
    secrets.push(oldKey);
    const base = `/v1/admin/applications/${appId}/keys?tenant=default`;
    const listed = await t.admin('GET', base);
    expect(listed).toEqual({ status: 200, body: { keys: [{ id: expect.stringMatching(UUID), name: 'rotating', created_at: createdAt, revoked_at: null }] } });
    const oldId: string = listed.body.keys[0].id;

    t.clock.advance(1000);
    const rotated = await t.admin('POST', base);
    expect(rotated).toEqual({ status: 201, body: { id: expect.stringMatching(UUID), api_key: expect.stringMatching(/^csk_[A-Za-z0-9_-]{43}$/) } });
    const newKey: string = rotated.body.api_key;
    secrets.push(newKey);
    expect(await appWorks(newKey)).toBe(200);
    expect(await appWorks(oldKey)).toBe(200);

    // By name too, with a name for the key.
    t.clock.advance(1000);
    const named = await t.admin('POST', '/v1/admin/applications/rotating/keys?tenant=default', { name: 'spare' });
    expect(named.status).toBe(201);
    secrets.push(named.body.api_key);
    const three = await t.admin('GET', '/v1/admin/applications/rotating/keys?tenant=default');
    expect(three.body.keys.map((k: { id: string; name: string }) => [k.id, k.name])).toEqual([
      [oldId, 'rotating'],
      [rotated.body.id, 'rotating'],
      [named.body.id, 'spare'],
    ]);
    expectNoSecret(three.body);

    t.clock.advance(1000);
    const revokedAt = new Date(t.clock.ms()).toISOString();
    expect(await t.admin('DELETE', `/v1/admin/applications/${appId}/keys/${oldId}?tenant=default`)).toEqual({ status: 204, body: undefined });
    expect(await call(oldKey, 'POST', '/v1/preauth', { username: 'nobody@contoso.com' })).toEqual(REVOKED);
    expect(await appWorks(newKey)).toBe(200);
    expect((await t.admin('GET', base)).body.keys[0]).toEqual({ id: oldId, name: 'rotating', created_at: createdAt, revoked_at: revokedAt });
    expect(await t.admin('DELETE', `/v1/admin/applications/${appId}/keys/${oldId}?tenant=default`)).toEqual(error(409, 'CONFLICT', `key ${oldId} of application ${appId} is already revoked`));
    // The other application of the tenant is untouched.
    expect(await appWorks(t.appKey)).toBe(200);
  });

  it('refuses unknown applications, another application’s key, bad bodies, and other tenants', async () => {
    const base = '/v1/admin/applications';
    expect(await t.admin('GET', `${base}/nowhere/keys?tenant=default`)).toEqual(error(404, 'NOT_FOUND', 'application nowhere not found'));
    expect(await t.admin('POST', `${base}/nowhere/keys?tenant=default`, {})).toEqual(error(404, 'NOT_FOUND', 'application nowhere not found'));
    expect(await t.admin('POST', `${base}/rotating/keys?tenant=default`, { name: '' })).toEqual(error(400, 'INVALID_INPUT', 'name: must NOT have fewer than 1 characters'));
    expect(await t.admin('POST', `${base}/rotating/keys?tenant=default`, { label: 'x' })).toEqual(error(400, 'INVALID_INPUT', 'label: is not a known field'));
    expect(await t.admin('GET', `${base}/rotating/keys`)).toEqual(error(400, 'INVALID_INPUT', 'tenant: is required (query parameter ?tenant=ID_OR_NAME)'));
    // The key of `test app` is not a key of `rotating`.
    const testAppKey = (await t.admin('GET', `${base}/test%20app/keys?tenant=default`)).body.keys[0].id as string;
    expect(await t.admin('DELETE', `${base}/rotating/keys/${testAppKey}?tenant=default`)).toEqual(error(404, 'NOT_FOUND', `key ${testAppKey} of application rotating not found`));
    expect(await appWorks(t.appKey)).toBe(200);

    // A tenant administrator cannot reach another tenant's application keys.
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'keys-c' })).status).toBe(201);
    const other = await t.admin('POST', '/v1/admin/applications?tenant=keys-c', { name: 'c app' });
    secrets.push(other.body.api_key);
    const scoped = await newAdminKey('default only', 'default');
    expect(await call(scoped.api_key, 'GET', `${base}/${other.body.id}/keys?tenant=keys-c`)).toEqual(error(404, 'NOT_FOUND', 'tenant keys-c not found'));
    expect(await call(scoped.api_key, 'GET', `${base}/${other.body.id}/keys`)).toEqual(error(404, 'NOT_FOUND', `application ${other.body.id} not found`));
    expect(await call(scoped.api_key, 'POST', `${base}/${other.body.id}/keys`, {})).toEqual(error(404, 'NOT_FOUND', `application ${other.body.id} not found`));
    const otherKeyId = (await t.admin('GET', `${base}/${other.body.id}/keys?tenant=keys-c`)).body.keys[0].id as string;
    expect(await call(scoped.api_key, 'DELETE', `${base}/${other.body.id}/keys/${otherKeyId}`)).toEqual(error(404, 'NOT_FOUND', `application ${other.body.id} not found`));
    expect(await appWorks(other.body.api_key)).toBe(200);
    // Its own tenant's, it can.
    expect((await call(scoped.api_key, 'GET', `${base}/rotating/keys`)).status).toBe(200);
    // Applications cannot manage keys.
    expect(await t.api('POST', `${base}/rotating/keys?tenant=default`, {})).toEqual(error(403, 'FORBIDDEN', 'this endpoint needs an administrator key'));
  });
});

describe('requests that share a key lookup', () => {
  it('each sees a revocation made before it arrived, while lookups of that key wait for the connection', async () => {
    const key = await newAdminKey('shared lookup');
    const { services } = t;
    expect(await authenticateApiKey(services, key.api_key)).toMatchObject({ kind: 'admin' });
    const early: Promise<unknown>[] = [];
    const late: Promise<unknown>[] = [];
    // Take every connection of the store (SQLite has one, the PostgreSQL pool ten), so that the
    // lookups wait for one; revoke the key through a held one in between.
    const size = services.store.dialect === 'sqlite' ? 1 : 10;
    const held: (typeof services.db)[] = [];
    let allHeld = () => {};
    const ready = new Promise<void>((resolve) => (allHeld = resolve));
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const holders = Array.from({ length: size }, () =>
      services.db.connection().execute(async (connection) => {
        held.push(connection);
        if (held.length === size) allHeld();
        await gate;
      }),
    );
    await ready;
    for (let i = 0; i < 25; i++) early.push(authenticateApiKey(services, key.api_key));
    await held[0]?.updateTable('api_keys').set({ revoked_at: Date.now() }).where('id', '=', key.id).execute();
    for (let i = 0; i < 25; i++) late.push(authenticateApiKey(services, key.api_key));
    release();
    await Promise.all(holders);
    // Every lookup was still waiting when the key was revoked: none may answer from before it.
    for (const answer of await Promise.all([...early, ...late])) expect(answer).toBeUndefined();
    expect(await works(key.api_key)).toBe(401);
  });

  it('nothing is kept after a shared read: the next request reads the key again', async () => {
    const key = await newAdminKey('after a shared read');
    const { services } = t;
    // Fifty at once all get the same answer; the next one reads again.
    const answers = await Promise.all(Array.from({ length: 50 }, () => authenticateApiKey(services, key.api_key)));
    for (const answer of answers) expect(answer).toMatchObject({ kind: 'admin' });
    await services.db.updateTable('api_keys').set({ revoked_at: Date.now() }).where('id', '=', key.id).execute();
    expect(await authenticateApiKey(services, key.api_key)).toBeUndefined();
  });
});

describe('audit', () => {
  it('every revocation and creation is recorded, and no record holds a key or its hash', async () => {
    const rows = await t.services.db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
    const actions = rows.map((r) => r.action);
    for (const action of ['admin_key.created', 'admin_key.revoked', 'application_key.created', 'application_key.revoked']) expect(actions).toContain(action);
    const rotatedRevoked = rows.filter((r) => r.action === 'application_key.revoked');
    expect(rotatedRevoked.length).toBe(1);
    expect(rotatedRevoked[0]?.actor).toMatch(/^admin-key:/);
    expect(rows.filter((r) => r.action === 'admin_key.revoked').length).toBe(4);
    expect(rows.filter((r) => r.action === 'application_key.created').length).toBe(2);
    expect(secrets.length).toBeGreaterThan(10);
    for (const row of rows) {
      for (const secret of secrets) {
        expect(JSON.stringify(row)).not.toContain(secret);
        expect(JSON.stringify(row)).not.toContain(hashApiKey(secret));
      }
      expect(row.detail).not.toMatch(HEX64);
    }
    // Through the API, for the tenant.
    const listed = await t.admin('GET', '/v1/admin/audit?tenant=default&limit=1000');
    expect(listed.body.records.map((r: { action: string }) => r.action)).toEqual(expect.arrayContaining(['application_key.created', 'application_key.revoked']));
    expectNoSecret(listed.body.records.map((r: { detail: unknown; action: string; target: string }) => ({ action: r.action, detail: r.detail })));
  });
});

describe('first start on several nodes at once', () => {
  it('two bootstraps at once, in one process, do not throw', async () => {
    const context = await createTestContext();
    try {
      const results = await Promise.all([bootstrapFirstAdmin(context.services), bootstrapFirstAdmin(context.services)]);
      const keys = results.flatMap((r) => (r === undefined ? [] : [r.apiKey]));
      expect(keys.length).toBeGreaterThanOrEqual(1);
      for (const key of keys) expect(await authenticateApiKey(context.services, key)).toMatchObject({ kind: 'admin', tenantId: null });
      const tenants = await context.services.db.selectFrom('tenants').select('name').execute();
      expect(tenants).toEqual([{ name: 'default' }]);
      expect(await bootstrapFirstAdmin(context.services)).toBeUndefined();
    } finally {
      await context.close();
    }
  });

  it('two nodes (two stores on one database) bootstrapping at once both start', async () => {
    const location = await makeStoreLocation();
    // Opened one after the other (two in-process SQLite openings at once would block each
    // other's migration lock); then both bootstrap at once, and both see no administrator key.
    const one = await createTestContext({ location });
    const two = await createTestContext({ location });
    const nodes = [one, two];
    try {
      const results = await Promise.all(nodes.map((node) => bootstrapFirstAdmin(node.services)));
      expect(results.some((r) => r !== undefined)).toBe(true);
      for (const r of results) if (r !== undefined) expect(await authenticateApiKey(one.services, r.apiKey)).toMatchObject({ kind: 'admin', tenantId: null });
      expect(await one.services.db.selectFrom('tenants').select('name').execute()).toEqual([{ name: 'default' }]);
    } finally {
      for (const node of nodes) await node.close();
      await location.drop();
    }
  });
});

describe('the CLI', () => {
  const run = promisify(execFile);
  let location: TestStoreLocation;
  beforeAll(async () => {
    location = await makeStoreLocation();
  });
  afterAll(async () => {
    await location.drop();
  });

  async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const env: NodeJS.ProcessEnv = { ...process.env, COUNTERSIGN_LOG_LEVEL: 'warn' };
    delete env['COUNTERSIGN_DATABASE_URL'];
    if (location.databaseUrl !== undefined) env['COUNTERSIGN_DATABASE_URL'] = location.databaseUrl;
    try {
      const { stdout, stderr } = await run(process.execPath, ['bin/countersign.js', ...args, '--data-dir', location.dataDir], { env });
      return { code: 0, stdout, stderr };
    } catch (failure) {
      const failed = failure as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  it('admin-key list --json shows no key; admin-key revoke revokes, but never the last key for every tenant', { timeout: 120_000 }, async () => {
    const one = JSON.parse((await cli('admin-key', 'create', 'one', '--json')).stdout) as { id: string; api_key: string };
    const two = JSON.parse((await cli('admin-key', 'create', 'two', '--json')).stdout) as { id: string; api_key: string };
    secrets.push(one.api_key, two.api_key);
    const listed = await cli('admin-key', 'list', '--json');
    expect(listed.code).toBe(0);
    const keys = JSON.parse(listed.stdout) as { id: string; name: string; tenant: string | null; revoked_at: string | null }[];
    // Oldest first.
    expect(keys.map((k) => [k.id, k.name, k.tenant, k.revoked_at])).toEqual([
      [one.id, 'one', null, null],
      [two.id, 'two', null, null],
    ]);
    expect(listed.stdout).not.toContain(one.api_key);
    expect(listed.stdout).not.toContain(two.api_key);
    expect(listed.stdout).not.toMatch(HEX64);

    expect(await cli('admin-key', 'revoke', one.id)).toMatchObject({ code: 0, stdout: `revoked administrator key ${one.id}\n` });
    const after = JSON.parse((await cli('admin-key', 'list', '--json')).stdout) as { id: string; revoked_at: string | null }[];
    expect(after.find((k) => k.id === one.id)?.revoked_at).toEqual(expect.any(String));
    expect(after.find((k) => k.id === two.id)?.revoked_at).toBeNull();
    expect(await cli('admin-key', 'revoke', two.id)).toMatchObject({
      code: 1,
      stderr: `countersign: administrator key ${two.id} is the last active global_admin key for every tenant; create another (countersign admin-key create --role global_admin) before revoking it\n`,
    });
    expect(await cli('admin-key', 'revoke', 'nope')).toMatchObject({ code: 1, stderr: 'countersign: administrator key nope not found\n' });
    const human = await cli('admin-key', 'list');
    expect(human.stdout).toContain('(every tenant)');
    expect(human.stdout).toContain('revoked');
  });

  it('app key create / list / revoke', { timeout: 120_000 }, async () => {
    expect((await cli('tenant', 'create', 'cli-keys')).code).toBe(0);
    const app = JSON.parse((await cli('app', 'create', '--tenant', 'cli-keys', 'vpn', '--json')).stdout) as { id: string; api_key: string };
    const created = await cli('app', 'key', 'create', '--tenant', 'cli-keys', 'vpn', '--json');
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout) as { id: string; api_key: string };
    expect(Object.keys(key).sort()).toEqual(['api_key', 'id']);
    expect(key.api_key).toMatch(/^csk_[A-Za-z0-9_-]{43}$/);
    secrets.push(app.api_key, key.api_key);

    const listed = await cli('app', 'key', 'list', '--tenant', 'cli-keys', 'vpn', '--json');
    const keys = JSON.parse(listed.stdout) as { id: string; revoked_at: string | null }[];
    expect(keys.length).toBe(2);
    expect(keys.map((k) => k.id)).toContain(key.id);
    expect(listed.stdout).not.toContain('csk_');
    expect(listed.stdout).not.toMatch(HEX64);

    expect(await cli('app', 'key', 'revoke', '--tenant', 'cli-keys', app.id, key.id)).toMatchObject({ code: 0, stdout: `revoked key ${key.id} of application ${app.id}\n` });
    const after = JSON.parse((await cli('app', 'key', 'list', '--tenant', 'cli-keys', 'vpn', '--json')).stdout) as { id: string; revoked_at: string | null }[];
    expect(after.find((k) => k.id === key.id)?.revoked_at).toEqual(expect.any(String));
    expect(after.filter((k) => k.revoked_at === null).length).toBe(1);
    expect(await cli('app', 'key', 'revoke', '--tenant', 'cli-keys', 'vpn', key.id)).toMatchObject({ code: 1, stderr: `countersign: key ${key.id} of application vpn is already revoked\n` });
  });
});
