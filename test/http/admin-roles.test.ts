import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminKey } from '../../src/flows/api-keys.js';
import * as migration011 from '../../src/store/migrations/011-admin-roles.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Administrator roles (issue 5 item 13) through the admin API, on every store of this run
 * (SQLite, and PostgreSQL when configured): what a reader, an authentication_admin and a
 * global_admin may do across every family of admin routes, that a reader never sees a secret,
 * and that no key creates a key with more power than its own.
 */
type Reply = { status: number; body: any };
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

const NEEDS_AUTH_ADMIN_FROM_READER = { code: 'FORBIDDEN', message: 'this needs the authentication_admin or global_admin role; this key is a reader' };
const NEEDS_GLOBAL_FROM_READER = { code: 'FORBIDDEN', message: 'this needs the global_admin role; this key is a reader' };
const NEEDS_GLOBAL_FROM_AUTH = { code: 'FORBIDDEN', message: 'this needs the global_admin role; this key is an authentication_admin' };

for (const dialect of DIALECTS) {
  describe(`administrator roles (${dialect})`, () => {
    let t: TestApp;
    let reader: string;
    let authAdmin: string;
    let scopedGlobal: string;
    let aliceSecret: string;
    const secrets: string[] = [];

    async function as(key: string, method: Method, url: string, body?: unknown): Promise<Reply> {
      const response = await t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(body === undefined ? {} : { payload: body as Record<string, unknown> }) });
      return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
    }
    async function newKey(name: string, role: string | undefined, tenant = 'default'): Promise<{ id: string; api_key: string }> {
      const created = await t.admin('POST', `/v1/admin/admin-keys?tenant=${tenant}`, role === undefined ? { name } : { name, role });
      expect(created.status).toBe(201);
      expect(Object.keys(created.body).sort()).toEqual(['api_key', 'id']);
      secrets.push(created.body.api_key);
      return created.body;
    }

    beforeAll(async () => {
      t = await createTestApp({ dialect });
      secrets.push(t.adminKey, t.appKey);
      reader = (await newKey('auditor', 'reader')).api_key;
      authAdmin = (await newKey('helpdesk', 'authentication_admin')).api_key;
      scopedGlobal = (await newKey('default owner', 'global_admin')).api_key;
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { app_passwords_allowed: true })).status).toBe(200);
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'alice@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
      const enrolled = await t.admin('POST', '/v1/admin/users/alice@contoso.com/methods/totp?tenant=default', {});
      aliceSecret = enrolled.body.secret;
      secrets.push(aliceSecret);
      const activated = await t.admin('POST', `/v1/admin/users/alice@contoso.com/methods/${enrolled.body.method.id}/activate?tenant=default`, { code: totpAt(aliceSecret, t.clock.ms()) });
      expect(activated.body.status).toBe('active');
      const appPassword = await t.admin('POST', '/v1/admin/users/alice@contoso.com/app-passwords?tenant=default', { name: 'iPhone Mail' });
      expect(appPassword.status).toBe(201);
      secrets.push(appPassword.body.password);
    });
    afterAll(async () => {
      await t.close();
    });

    it('keys carry a role: the first key and keys created without one are global_admin, and the list shows each role', async () => {
      const plain = await newKey('no role given', undefined);
      const listed = (await t.admin('GET', '/v1/admin/admin-keys')).body.admin_keys as { id: string; name: string; role: string; tenant: string | null }[];
      expect(listed.map((k) => [k.name, k.role, k.tenant]).sort()).toEqual([
        ['auditor', 'reader', t.tenant.id],
        ['default owner', 'global_admin', t.tenant.id],
        ['first administrator', 'global_admin', null],
        ['helpdesk', 'authentication_admin', t.tenant.id],
        ['no role given', 'global_admin', t.tenant.id],
      ]);
      expect(listed.find((k) => k.id === plain.id)?.role).toBe('global_admin');
      // The body's tenant works like ?tenant=.
      const inBody = await t.admin('POST', '/v1/admin/admin-keys', { name: 'body tenant', role: 'reader', tenant: 'default' });
      expect(inBody.status).toBe(201);
      const row = await t.services.db.selectFrom('api_keys').select(['tenant_id', 'role']).where('id', '=', inBody.body.id).executeTakeFirstOrThrow();
      expect(row).toEqual({ tenant_id: t.tenant.id, role: 'reader' });
    });

    it('a bad role or name is 400 naming the field, and no key is stored', async () => {
      const before = await t.services.db.selectFrom('api_keys').select('id').execute();
      expect(await t.admin('POST', '/v1/admin/admin-keys', { name: 'x', role: 'owner' })).toEqual({
        status: 400,
        body: { error: { code: 'INVALID_INPUT', message: 'role: must be one of reader, authentication_admin, global_admin' } },
      });
      expect((await t.admin('POST', '/v1/admin/admin-keys', { name: '', role: 'reader' })).body.error.message).toMatch(/^name: /);
      expect((await t.admin('POST', '/v1/admin/admin-keys', { name: 'x', role: 'reader', tenant: 'default', extra: 1 })).status).toBe(400);
      expect(await t.admin('POST', '/v1/admin/admin-keys?tenant=default', { name: 'x', tenant: 'other' })).toEqual({
        status: 400,
        body: { error: { code: 'INVALID_INPUT', message: 'tenant: given twice (body and ?tenant=) with different values' } },
      });
      expect(await t.services.db.selectFrom('api_keys').select('id').execute()).toEqual(before);
    });

    it('a reader reads every family but the outbox, and writes nothing (403 naming the role it needs)', async () => {
      for (const url of [
        '/v1/admin/users',
        '/v1/admin/users/alice@contoso.com',
        '/v1/admin/users/alice@contoso.com/methods',
        '/v1/admin/users/alice@contoso.com/app-passwords',
        '/v1/admin/tokens',
        '/v1/admin/settings',
        '/v1/admin/applications',
        '/v1/admin/admin-keys',
        '/v1/admin/tenants',
        '/v1/admin/audit',
        '/v1/admin/bypasses',
        '/v1/admin/blocked-users',
        '/v1/admin/policies',
        '/v1/admin/reports/sign-ins',
        '/v1/admin/status',
      ]) {
        expect((await as(reader, 'GET', url)).status, url).toBe(200);
      }
      expect(await as(reader, 'GET', '/v1/admin/outbox')).toEqual({ status: 403, body: { error: NEEDS_AUTH_ADMIN_FROM_READER } });

      const writes: [Method, string, unknown][] = [
        ['POST', '/v1/admin/users', { username: 'bob@contoso.com' }],
        ['PUT', '/v1/admin/users/alice@contoso.com/state', { state: 'disabled' }],
        ['POST', '/v1/admin/users/alice@contoso.com/bypass', { reason: 'lost phone' }],
        ['POST', '/v1/admin/users/alice@contoso.com/unlock', undefined],
        ['DELETE', '/v1/admin/users/alice@contoso.com/app-passwords', undefined],
        ['POST', '/v1/admin/users/alice@contoso.com/methods/totp', {}],
      ];
      for (const [method, url, body] of writes) expect(await as(reader, method, url, body), url).toEqual({ status: 403, body: { error: NEEDS_AUTH_ADMIN_FROM_READER } });
      for (const [method, url, body] of [
        ['PATCH', '/v1/admin/settings', { remember_mfa_days: 30 }],
        ['POST', '/v1/admin/applications', { name: 'sneaky' }],
        ['POST', '/v1/admin/admin-keys', { name: 'sneaky', role: 'reader' }],
        ['POST', '/v1/admin/tenants', { name: 'sneaky' }],
        ['POST', '/v1/admin/policies', { name: 'sneaky' }],
        ['POST', '/v1/admin/webhooks', { url: 'https://example.com/hook' }],
      ] as [Method, string, unknown][]) {
        expect(await as(reader, method, url, body), url).toEqual({ status: 403, body: { error: NEEDS_GLOBAL_FROM_READER } });
      }
      // Nothing changed.
      expect(await t.countUsers(t.tenant.id)).toBe(1);
      expect((await t.admin('GET', '/v1/admin/settings?tenant=default')).body.remember_mfa_days).not.toBe(30);
      expect((await t.admin('GET', '/v1/admin/users/alice@contoso.com/app-passwords?tenant=default')).body.app_passwords).toHaveLength(1);
    });

    it('a reader never sees a secret: every GET of the admin API, answered for a reader, holds none', async () => {
      const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
      const ids = { user: 'alice@contoso.com', id: 'x', method: 'x', device: 'x', type: 'mobile', language: 'en', kind: 'x', keyId: 'x' };
      let read = 0;
      for (const [path, operations] of Object.entries(doc.paths)) {
        if (!path.startsWith('/v1/admin/') || operations['get'] === undefined) continue;
        const url = path.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent((ids as Record<string, string>)[name] ?? 'x'));
        const reply = await t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${reader}` } });
        expect(reply.statusCode, url).toBeLessThan(500);
        if (reply.statusCode === 200) read++;
        for (const secret of secrets) expect(reply.body, url).not.toContain(secret);
      }
      expect(read).toBeGreaterThan(10);
    });

    it('an authentication_admin manages users and their methods, and nothing of the tenant or its keys', async () => {
      expect((await as(authAdmin, 'POST', '/v1/admin/users', { username: 'carol@contoso.com', mfa_state: 'enabled' })).status).toBe(201);
      expect((await as(authAdmin, 'PUT', '/v1/admin/users/carol@contoso.com/state', { state: 'enforced' })).status).toBe(200);
      const enrolled = await as(authAdmin, 'POST', '/v1/admin/users/carol@contoso.com/methods/totp', {});
      expect(enrolled.status).toBe(201);
      secrets.push(enrolled.body.secret);
      expect((await as(authAdmin, 'POST', '/v1/admin/users/carol@contoso.com/app-passwords', { name: 'Outlook' })).status).toBe(201);
      expect((await as(authAdmin, 'POST', '/v1/admin/users/carol@contoso.com/bypass', { reason: 'new phone', seconds: 300 })).status).toBe(201);
      // Allowed, and answered by the flow: carol has nothing to unlock.
      expect((await as(authAdmin, 'POST', '/v1/admin/users/carol@contoso.com/unlock')).body.error.code).toBe('CONFLICT');
      expect((await as(authAdmin, 'GET', '/v1/admin/outbox')).status).toBe(200);
      expect((await as(authAdmin, 'GET', '/v1/admin/settings')).status).toBe(200);
      expect((await as(authAdmin, 'GET', '/v1/admin/audit')).status).toBe(200);
      for (const [method, url, body] of [
        ['PATCH', '/v1/admin/settings', { remember_mfa_days: 30 }],
        ['POST', '/v1/admin/applications', { name: 'sneaky' }],
        ['DELETE', `/v1/admin/applications/test app`, undefined],
        ['POST', '/v1/admin/admin-keys', { name: 'sneaky', role: 'reader' }],
        ['DELETE', '/v1/admin/admin-keys/x', undefined],
        ['POST', '/v1/admin/tenants', { name: 'sneaky' }],
        ['DELETE', '/v1/admin/tenants/default', undefined],
        ['POST', '/v1/admin/policies', { name: 'sneaky' }],
        ['POST', '/v1/admin/webhooks', { url: 'https://example.com/hook' }],
        ['POST', '/v1/admin/named-locations', { name: 'sneaky' }],
      ] as [Method, string, unknown][]) {
        expect(await as(authAdmin, method, url, body), url).toEqual({ status: 403, body: { error: NEEDS_GLOBAL_FROM_AUTH } });
      }
      expect((await t.admin('GET', '/v1/admin/settings?tenant=default')).body.remember_mfa_days).not.toBe(30);
      expect((await t.admin('GET', '/v1/admin/applications?tenant=default')).body.applications).toHaveLength(1);
    });

    it('a global_admin of one tenant does everything in it', async () => {
      expect((await as(scopedGlobal, 'PATCH', '/v1/admin/settings', { remember_mfa_days: 14 })).status).toBe(200);
      expect((await as(scopedGlobal, 'POST', '/v1/admin/applications', { name: 'vpn' })).status).toBe(201);
      expect((await as(scopedGlobal, 'POST', '/v1/admin/users', { username: 'dave@contoso.com' })).status).toBe(201);
      expect((await as(scopedGlobal, 'GET', '/v1/admin/outbox')).status).toBe(200);
      const minted = await as(scopedGlobal, 'POST', '/v1/admin/admin-keys', { name: 'minted reader', role: 'reader' });
      expect(minted.status).toBe(201);
      secrets.push(minted.body.api_key);
      expect(await as(minted.body.api_key, 'DELETE', `/v1/admin/users/dave@contoso.com`)).toEqual({ status: 403, body: { error: NEEDS_AUTH_ADMIN_FROM_READER } });
      expect((await as(scopedGlobal, 'DELETE', `/v1/admin/admin-keys/${minted.body.id}`)).status).toBe(204);
    });

    it('escalation is refused: only a global_admin makes keys, and a tenant’s key never one for every tenant', async () => {
      const before = await t.services.db.selectFrom('api_keys').select('id').where('kind', '=', 'admin').execute();
      for (const role of ['global_admin', 'authentication_admin', 'reader']) {
        expect(await as(authAdmin, 'POST', '/v1/admin/admin-keys', { name: 'escalate', role })).toEqual({ status: 403, body: { error: NEEDS_GLOBAL_FROM_AUTH } });
        expect(await as(reader, 'POST', '/v1/admin/admin-keys', { name: 'escalate', role })).toEqual({ status: 403, body: { error: NEEDS_GLOBAL_FROM_READER } });
      }
      const firstId = (await t.services.db.selectFrom('api_keys').select('id').where('name', '=', 'first administrator').executeTakeFirstOrThrow()).id;
      expect(await as(authAdmin, 'DELETE', `/v1/admin/admin-keys/${firstId}`)).toEqual({ status: 403, body: { error: NEEDS_GLOBAL_FROM_AUTH } });
      // A tenant's global_admin: its keys are its tenant's, never every tenant's.
      expect((await as(scopedGlobal, 'DELETE', `/v1/admin/admin-keys/${firstId}`)).status).toBe(403);
      expect((await t.admin('POST', '/v1/admin/tenants', { name: 'elsewhere' })).status).toBe(201);
      expect((await as(scopedGlobal, 'POST', '/v1/admin/admin-keys', { name: 'escalate', tenant: 'elsewhere' })).status).toBe(404);
      expect(await t.services.db.selectFrom('api_keys').select('id').where('kind', '=', 'admin').execute()).toEqual(before);
      // The flows refuse too, whatever the transport.
      const scoped = { kind: 'admin', keyId: 'k', tenantId: t.tenant.id, role: 'global_admin', name: 'n' } as const;
      await expect(createAdminKey(t.services, scoped, null, 'everywhere', 'reader')).rejects.toMatchObject({ code: 'FORBIDDEN', message: 'a tenant administrator key can only create keys for its own tenant' });
      await expect(createAdminKey(t.services, { ...scoped, role: 'authentication_admin' }, t.tenant.id, 'x', 'reader')).rejects.toMatchObject({ code: 'FORBIDDEN' });
      await expect(createAdminKey(t.services, { ...scoped, tenantId: null, role: 'reader' }, null, 'x', 'reader')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    });

    it('migration 011: every key that existed becomes global_admin, application keys have none, and down() undoes it', async () => {
      const db = t.services.db as unknown as Kysely<any>;
      await migration011.down(db);
      await db
        .insertInto('api_keys')
        .values({ id: 'old-admin', kind: 'admin', tenant_id: null, application_id: null, name: 'from before roles', key_hash: 'f'.repeat(64), created_at: 0, revoked_at: null })
        .execute();
      await migration011.up(db);
      const rows = await t.services.db.selectFrom('api_keys').select(['kind', 'role']).where((eb) => eb.or([eb('id', '=', 'old-admin'), eb('kind', '=', 'application')])).execute();
      expect([...new Set(rows.map((r) => `${r.kind} ${r.role}`))].sort()).toEqual(['admin global_admin', 'application null']);
      // The column refuses a role that does not exist, whatever writes it.
      await expect(t.services.db.updateTable('api_keys').set({ role: 'owner' as 'reader' }).where('id', '=', 'old-admin').execute()).rejects.toThrow();
      await t.services.db.deleteFrom('api_keys').where('id', '=', 'old-admin').execute();
    });
  });
}
