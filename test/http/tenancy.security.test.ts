import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Tenancy as an attack surface (SPEC: "Nothing crosses tenants"). Tenant A is the harness's
 * default tenant with its application (t.api) and the administrator key for every tenant
 * (t.admin). Tenant B is made here with its own application and an administrator key scoped
 * to B. Each test plays B as an attacker going after A's users, challenges, settings and
 * tenant, and checks that A's data is not only hidden but also unchanged.
 */
let t: TestApp;
let tenantA: { id: string; name: string };
let tenantB: { id: string; name: string };
let appB: string;
let adminB: string;
let alice: { id: string; secret: string; methodId: string };

type Reply = Awaited<ReturnType<TestApp['admin']>>;

async function as(key: string, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, body?: unknown): Promise<Reply> {
  const response = await t.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}`, ...(typeof body === 'string' ? { 'content-type': 'text/csv' } : {}) },
    ...(body === undefined ? {} : typeof body === 'string' ? { payload: body } : { payload: body as Record<string, unknown> }),
  });
  return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
}

const notFound = (message: string) => ({ status: 404, body: { error: { code: 'NOT_FOUND', message } } });
const forbidden = (message: string) => ({ status: 403, body: { error: { code: 'FORBIDDEN', message } } });

/** Creates a user with an active TOTP method in a tenant, through the given admin key. */
async function userWithTotp(key: string, tenant: string, username: string): Promise<{ id: string; secret: string; methodId: string }> {
  const created = await as(key, 'POST', `/v1/admin/users?tenant=${tenant}`, { username, mfa_state: 'enforced' });
  expect(created.status).toBe(201);
  const enrolled = await as(key, 'POST', `/v1/admin/users/${username}/methods/totp?tenant=${tenant}`, {});
  expect(enrolled.status).toBe(201);
  const activated = await as(key, 'POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate?tenant=${tenant}`, {
    code: totpAt(enrolled.body.secret, t.clock.ms()),
  });
  expect(activated.body.status).toBe('active');
  t.clock.advance(30_000); // the activation code's step is used; move to a fresh one
  return { id: created.body.id, secret: enrolled.body.secret, methodId: enrolled.body.method.id };
}

beforeAll(async () => {
  t = await createTestApp();
  tenantA = { id: t.tenant.id, name: t.tenant.name };
  const b = await t.admin('POST', '/v1/admin/tenants', { name: 'fabrikam' });
  expect(b.status).toBe(201);
  tenantB = { id: b.body.id, name: b.body.name };
  const application = await t.admin('POST', `/v1/admin/applications?tenant=${tenantB.name}`, { name: 'fabrikam app' });
  expect(application.status).toBe(201);
  appB = application.body.api_key;
  const key = await t.admin('POST', `/v1/admin/admin-keys?tenant=${tenantB.id}`, { name: 'fabrikam admin' });
  expect(key.status).toBe(201);
  adminB = key.body.api_key;
  alice = await userWithTotp(t.adminKey, tenantA.name, 'alice@contoso.com');
});
afterAll(async () => {
  await t.close();
});

/** Alice as tenant A's administrator sees her: what an attack must leave as it was. */
async function aliceAsSeenByA(): Promise<unknown> {
  const seen = await t.admin('GET', `/v1/admin/users/alice@contoso.com?tenant=${tenantA.name}`);
  expect(seen.status).toBe(200);
  return seen.body;
}

describe('tenant B’s application against tenant A', () => {
  it('TEN-01: B’s application cannot preauth, verify or challenge A’s user, and its attempts do not count against her', async () => {
    const before = await aliceAsSeenByA();
    const code = totpAt(alice.secret, t.clock.ms());
    expect(await as(appB, 'POST', '/v1/preauth', { username: 'alice@contoso.com' })).toMatchObject({ status: 200, body: { result: 'deny', reason: 'unknown_user', methods: [] } });
    expect(await as(appB, 'POST', '/v1/verify', { username: 'alice@contoso.com', code })).toEqual({ status: 200, body: { result: 'denied', reason: 'invalid_code' } });
    for (let i = 0; i < 12; i++) {
      expect((await as(appB, 'POST', '/v1/verify', { username: 'alice@contoso.com', code: '000000' })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    }
    expect(await as(appB, 'POST', '/v1/challenges', { username: 'alice@contoso.com', method: 'totp' })).toEqual(notFound('user alice@contoso.com not found'));
    expect(await as(appB, 'POST', '/v1/challenges', { username: 'alice@contoso.com', method: alice.methodId })).toEqual(notFound('user alice@contoso.com not found'));
    // Twelve failures through B did not lock Alice, nor consume her current code.
    expect(await aliceAsSeenByA()).toEqual(before);
    expect((await t.api('POST', '/v1/preauth', { username: 'alice@contoso.com' })).body).toMatchObject({
      result: 'challenge',
      reason: 'mfa_required',
      methods: [{ id: alice.methodId, type: 'totp', label: 'Authenticator app', default: true }],
    });
    expect((await t.api('POST', '/v1/verify', { username: 'alice@contoso.com', code })).body).toEqual({ result: 'approved', reason: 'approved' });
    t.clock.advance(30_000);
  });

  it('TEN-02: a challenge created by A’s application is 404 to B’s application, to read, to wait on and to answer', async () => {
    const created = await t.api('POST', '/v1/challenges', { username: 'alice@contoso.com', method: 'totp', context: { app: 'VPN' } });
    expect(created.status).toBe(201);
    const id: string = created.body.id;
    const code = totpAt(alice.secret, t.clock.ms());
    expect(await as(appB, 'GET', `/v1/challenges/${id}`)).toEqual(notFound(`challenge ${id} not found`));
    expect(await as(appB, 'GET', `/v1/challenges/${id}?wait=1`)).toEqual(notFound(`challenge ${id} not found`));
    expect(await as(appB, 'POST', `/v1/challenges/${id}/answer`, { code })).toEqual(notFound(`challenge ${id} not found`));
    expect(await as(appB, 'POST', `/v1/challenges/${id}/answer`, { code: '000000' })).toEqual(notFound(`challenge ${id} not found`));
    // Still pending, no attempt used, and A can still answer it with the same code.
    expect(await t.api('GET', `/v1/challenges/${id}`)).toEqual({ status: 200, body: { id, status: 'pending', type: 'totp', expires_at: created.body.expires_at } });
    const row = await t.services.db.selectFrom('challenges').select(['attempts', 'status']).where('id', '=', id).executeTakeFirstOrThrow();
    expect({ attempts: Number(row.attempts), status: row.status }).toEqual({ attempts: 0, status: 'pending' });
    expect((await t.api('POST', `/v1/challenges/${id}/answer`, { code })).body).toEqual({ id, status: 'approved', type: 'totp', expires_at: created.body.expires_at });
    t.clock.advance(30_000);
  });

  it('TEN-03: B’s application cannot use the admin API, even for its own tenant', async () => {
    expect(await as(appB, 'GET', `/v1/admin/users?tenant=${tenantB.name}`)).toEqual(forbidden('this endpoint needs an administrator key'));
    expect(await as(appB, 'GET', `/v1/admin/users?tenant=${tenantA.name}`)).toEqual(forbidden('this endpoint needs an administrator key'));
    expect(await as(appB, 'POST', `/v1/admin/admin-keys?tenant=${tenantB.name}`, { name: 'escalate' })).toEqual(forbidden('this endpoint needs an administrator key'));
  });
});

describe('tenant B’s administrator key against tenant A', () => {
  it('TEN-04: B’s admin key works on B (the control for the tests below)', async () => {
    expect((await as(adminB, 'POST', '/v1/admin/users', { username: 'bob@fabrikam.example' })).status).toBe(201);
    expect((await as(adminB, 'GET', `/v1/admin/users?tenant=${tenantB.name}`)).body.users.map((u: { username: string }) => u.username)).toContain('bob@fabrikam.example');
    expect((await as(adminB, 'GET', `/v1/admin/settings?tenant=${tenantB.id}`)).status).toBe(200);
  });

  it('TEN-05: A’s users are 404 to B’s admin key — by tenant name or id, by username or user id — and stay unchanged', async () => {
    const before = await aliceAsSeenByA();
    for (const ref of [tenantA.name, tenantA.id]) {
      const missing = notFound(`tenant ${ref} not found`);
      expect(await as(adminB, 'GET', `/v1/admin/users?tenant=${ref}`)).toEqual(missing);
      expect(await as(adminB, 'GET', `/v1/admin/users/alice@contoso.com?tenant=${ref}`)).toEqual(missing);
      expect(await as(adminB, 'GET', `/v1/admin/users/${alice.id}?tenant=${ref}`)).toEqual(missing);
      expect(await as(adminB, 'PATCH', `/v1/admin/users/alice@contoso.com?tenant=${ref}`, { email: 'attacker@fabrikam.example' })).toEqual(missing);
      expect(await as(adminB, 'PUT', `/v1/admin/users/alice@contoso.com/state?tenant=${ref}`, { state: 'disabled' })).toEqual(missing);
      expect(await as(adminB, 'POST', `/v1/admin/users/alice@contoso.com/block?tenant=${ref}`)).toEqual(missing);
      expect(await as(adminB, 'DELETE', `/v1/admin/users/alice@contoso.com?tenant=${ref}`)).toEqual(missing);
      expect(await as(adminB, 'GET', `/v1/admin/users/alice@contoso.com/methods?tenant=${ref}`)).toEqual(missing);
      expect(await as(adminB, 'DELETE', `/v1/admin/users/alice@contoso.com/methods/${alice.methodId}?tenant=${ref}`)).toEqual(missing);
      expect(await as(adminB, 'POST', `/v1/admin/users/alice@contoso.com/methods/totp?tenant=${ref}`, {})).toEqual(missing);
      expect(await as(adminB, 'POST', `/v1/admin/users?tenant=${ref}`, { username: 'planted@contoso.com' })).toEqual(missing);
      expect(await as(adminB, 'POST', `/v1/admin/users/import?tenant=${ref}`, 'alice@contoso.com,Pwned,attacker@fabrikam.example,,disabled\n')).toEqual(missing);
      expect(await as(adminB, 'POST', `/v1/admin/users/states?tenant=${ref}`, 'alice@contoso.com,disabled\n')).toEqual(missing);
    }
    // Without ?tenant= the key acts on B, where Alice's id and name mean nothing.
    expect(await as(adminB, 'GET', `/v1/admin/users/${alice.id}`)).toEqual(notFound(`user ${alice.id} not found`));
    expect(await as(adminB, 'PATCH', `/v1/admin/users/${alice.id}`, { email: 'attacker@fabrikam.example' })).toEqual(notFound(`user ${alice.id} not found`));
    expect(await as(adminB, 'DELETE', `/v1/admin/users/${alice.id}`)).toEqual(notFound(`user ${alice.id} not found`));
    expect(await as(adminB, 'DELETE', `/v1/admin/users/${alice.id}/methods/${alice.methodId}`)).toEqual(notFound(`user ${alice.id} not found`));
    expect((await as(adminB, 'GET', '/v1/admin/users?search=contoso')).body).toEqual({ users: [], next_cursor: null });
    // A bulk states file through B naming Alice only reports her as unknown.
    expect(await as(adminB, 'POST', '/v1/admin/users/states', 'alice@contoso.com,disabled\n')).toEqual({
      status: 200,
      body: { changed: 0, refused: [{ line: 1, reason: 'username: alice@contoso.com not found' }] },
    });

    expect(await aliceAsSeenByA()).toEqual(before);
    expect((await t.admin('GET', `/v1/admin/users/alice@contoso.com/methods?tenant=${tenantA.name}`)).body.methods.map((m: { id: string }) => m.id)).toEqual([alice.methodId]);
    expect((await t.admin('GET', `/v1/admin/users/planted@contoso.com?tenant=${tenantA.name}`)).status).toBe(404);
  });

  it('TEN-06: A’s settings, applications and audit are 404 to B’s admin key, and A’s settings stay as they were', async () => {
    const settingsA = await t.admin('GET', `/v1/admin/settings?tenant=${tenantA.name}`);
    expect(settingsA.status).toBe(200);
    const appsA = await t.admin('GET', `/v1/admin/applications?tenant=${tenantA.name}`);
    const appIdA: string = appsA.body.applications[0].id;
    for (const ref of [tenantA.name, tenantA.id]) {
      const missing = notFound(`tenant ${ref} not found`);
      expect(await as(adminB, 'GET', `/v1/admin/settings?tenant=${ref}`)).toEqual(missing);
      expect(await as(adminB, 'PATCH', `/v1/admin/settings?tenant=${ref}`, { lockout_threshold: 1, allowed_methods: ['sms'] })).toEqual(missing);
      expect(await as(adminB, 'GET', `/v1/admin/applications?tenant=${ref}`)).toEqual(missing);
      expect(await as(adminB, 'POST', `/v1/admin/applications?tenant=${ref}`, { name: 'planted app' })).toEqual(missing);
      expect(await as(adminB, 'DELETE', `/v1/admin/applications/${appIdA}?tenant=${ref}`)).toEqual(missing);
      expect(await as(adminB, 'GET', `/v1/admin/audit?tenant=${ref}`)).toEqual(missing);
    }
    // Deleting A's application by id from B's own tenant finds nothing.
    expect(await as(adminB, 'DELETE', `/v1/admin/applications/${appIdA}`)).toEqual(notFound(`application ${appIdA} not found`));
    expect(await as(adminB, 'GET', '/v1/admin/audit/verify')).toEqual(forbidden('only an administrator of every tenant can check the whole chain'));

    expect(await t.admin('GET', `/v1/admin/settings?tenant=${tenantA.name}`)).toEqual(settingsA);
    expect(await t.admin('GET', `/v1/admin/applications?tenant=${tenantA.name}`)).toEqual(appsA);
    expect((await t.api('POST', '/v1/preauth', { username: 'alice@contoso.com' })).status).toBe(200);
    // B's own audit holds no record of A.
    const auditB = await as(adminB, 'GET', '/v1/admin/audit?limit=1000');
    expect(auditB.status).toBe(200);
    expect(auditB.body.records.filter((r: { tenant_id: string | null }) => r.tenant_id !== tenantB.id)).toEqual([]);
    expect(JSON.stringify(auditB.body)).not.toContain(alice.id);
  });

  it('TEN-07: B’s admin key cannot create, list, read or delete other tenants, nor mint a key beyond B', async () => {
    expect(await as(adminB, 'POST', '/v1/admin/tenants', { name: 'takeover' })).toEqual(forbidden('a tenant administrator key cannot create tenants'));
    expect(await as(adminB, 'GET', '/v1/admin/tenants')).toEqual({ status: 200, body: { tenants: [{ id: tenantB.id, name: 'fabrikam', created_at: '2026-01-15T12:00:00.000Z' }] } });
    expect(await as(adminB, 'GET', `/v1/admin/tenants/${tenantA.id}`)).toEqual(notFound(`tenant ${tenantA.id} not found`));
    expect(await as(adminB, 'GET', `/v1/admin/tenants/${tenantA.name}`)).toEqual(notFound(`tenant ${tenantA.name} not found`));
    expect(await as(adminB, 'DELETE', `/v1/admin/tenants/${tenantA.name}`)).toEqual(notFound(`tenant ${tenantA.name} not found`));
    expect(await as(adminB, 'DELETE', `/v1/admin/tenants/${tenantB.name}`)).toEqual(forbidden('a tenant administrator key cannot delete tenants'));
    expect(await as(adminB, 'POST', `/v1/admin/admin-keys?tenant=${tenantA.name}`, { name: 'escalate' })).toEqual(notFound(`tenant ${tenantA.name} not found`));

    // A key B mints for itself (no ?tenant=) is scoped to B as well, never to every tenant.
    const minted = await as(adminB, 'POST', '/v1/admin/admin-keys', { name: 'second fabrikam admin' });
    expect(minted.status).toBe(201);
    const row = await t.services.db.selectFrom('api_keys').select(['kind', 'tenant_id']).where('id', '=', minted.body.id).executeTakeFirstOrThrow();
    expect(row).toEqual({ kind: 'admin', tenant_id: tenantB.id });
    expect((await as(minted.body.api_key, 'GET', '/v1/admin/tenants')).body.tenants.map((x: { id: string }) => x.id)).toEqual([tenantB.id]);
    expect(await as(minted.body.api_key, 'GET', `/v1/admin/users?tenant=${tenantA.name}`)).toEqual(notFound(`tenant ${tenantA.name} not found`));

    expect((await t.admin('GET', `/v1/admin/tenants/${tenantA.name}`)).status).toBe(200);
    expect((await t.admin('GET', '/v1/admin/tenants')).body.tenants.map((x: { name: string }) => x.name)).toEqual(['default', 'fabrikam']);
  });
});

describe('the same username in two tenants', () => {
  it('TEN-08: is two separate users: codes, lockouts, blocks, imports and deletes of one never touch the other', async () => {
    const inA = await userWithTotp(t.adminKey, tenantA.name, 'same@shared.example');
    const inB = await userWithTotp(adminB, tenantB.name, 'same@shared.example');
    expect(inB.id).not.toBe(inA.id);
    expect(inB.secret).not.toBe(inA.secret);

    // A's code does not verify B's user, nor B's code A's user; each verifies its own.
    const codeA = totpAt(inA.secret, t.clock.ms());
    const codeB = totpAt(inB.secret, t.clock.ms());
    expect(codeA).not.toBe(codeB);
    expect((await as(appB, 'POST', '/v1/verify', { username: 'same@shared.example', code: codeA })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect((await t.api('POST', '/v1/verify', { username: 'same@shared.example', code: codeB })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect((await t.api('POST', '/v1/verify', { username: 'same@shared.example', code: codeA })).body).toEqual({ result: 'approved', reason: 'approved' });
    expect((await as(appB, 'POST', '/v1/verify', { username: 'same@shared.example', code: codeB })).body).toEqual({ result: 'approved', reason: 'approved' });

    // A challenge for B's user answered with A's code fails; with B's next code it passes.
    t.clock.advance(30_000);
    const challengeB = await as(appB, 'POST', '/v1/challenges', { username: 'same@shared.example', method: 'totp' });
    expect(challengeB.status).toBe(201);
    expect((await as(appB, 'POST', `/v1/challenges/${challengeB.body.id}/answer`, { code: totpAt(inA.secret, t.clock.ms()) })).body).toMatchObject({ status: 'pending', reason: 'invalid_code' });
    expect((await as(appB, 'POST', `/v1/challenges/${challengeB.body.id}/answer`, { code: totpAt(inB.secret, t.clock.ms()) })).body).toMatchObject({ status: 'approved' });

    // Locking out and blocking B's user leaves A's alone.
    for (let i = 0; i < 10; i++) await as(appB, 'POST', '/v1/verify', { username: 'same@shared.example', code: '000000' });
    expect((await as(appB, 'POST', '/v1/preauth', { username: 'same@shared.example' })).body).toMatchObject({ result: 'deny', reason: 'locked_out', methods: [] });
    expect((await as(adminB, 'POST', '/v1/admin/users/same@shared.example/block')).body.status).toBe('blocked');
    expect((await t.api('POST', '/v1/preauth', { username: 'same@shared.example' })).body).toMatchObject({
      result: 'challenge',
      reason: 'mfa_required',
      methods: [{ id: inA.methodId, type: 'totp', label: 'Authenticator app', default: true }],
    });
    const seenA = await t.admin('GET', `/v1/admin/users/same@shared.example?tenant=${tenantA.name}`);
    expect(seenA.body).toMatchObject({ id: inA.id, status: 'active', failed_count: 0, display_name: null });

    // An import and a delete in B change B's user only.
    expect(await as(adminB, 'POST', '/v1/admin/users/import', 'same@shared.example,Fabrikam Same,same@fabrikam.example,,disabled\n')).toEqual({
      status: 200,
      body: { created: 0, updated: 1, refused: [] },
    });
    expect((await as(adminB, 'GET', '/v1/admin/users/same@shared.example')).body).toMatchObject({ id: inB.id, display_name: 'Fabrikam Same', mfa_state: 'disabled' });
    expect(await t.admin('GET', `/v1/admin/users/same@shared.example?tenant=${tenantA.name}`)).toEqual(seenA);
    expect((await as(adminB, 'DELETE', '/v1/admin/users/same@shared.example')).status).toBe(204);
    expect(await t.admin('GET', `/v1/admin/users/same@shared.example?tenant=${tenantA.name}`)).toEqual(seenA);
    expect((await t.admin('GET', `/v1/admin/users/same@shared.example/methods?tenant=${tenantA.name}`)).body.methods.map((m: { id: string }) => m.id)).toEqual([inA.methodId]);
    t.clock.advance(30_000);
    expect((await t.api('POST', '/v1/verify', { username: 'same@shared.example', code: totpAt(inA.secret, t.clock.ms()) })).body).toEqual({ result: 'approved', reason: 'approved' });
  });
});
