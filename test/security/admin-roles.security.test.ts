import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ROUTE_ROLES, isAdminRoute, roleDecision } from '../../src/http/admin-roles.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';

/**
 * Administrators under attack, on every store of this run (SQLite, and PostgreSQL when
 * configured): every admin route, including ones added later, has a role decision and enforces
 * it before the route runs (deny by default); no tenant-scoped key of any role reaches another
 * tenant; and the reason an administrator gives is recorded, or refused when malformed, with
 * nothing stored.
 */
type Reply = { status: number; body: any };
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Every route of the server as [METHOD, url], read from app.printRoutes() (hidden routes included). */
function allRoutes(tree: string): [string, string][] {
  const routes: [string, string][] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^((?:[│ ] {3})*)(?:[└├]── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (match === null) continue;
    const depth = (match[1] ?? '').length / 4;
    stack.length = depth;
    stack.push(match[2] ?? '');
    const url = stack.join('');
    for (const method of (match[3] ?? '').split(', ').filter(Boolean)) routes.push([method, url]);
  }
  return routes;
}

// The outbox's `text` carries codes; it is checked by name below (a greeting's text is no secret).
const SECRET_FIELD = /secret|(^|_)password$|api_key|(^|_)token$|^code$|_hash$|seed|enrollment_url/i;

/** Property names anywhere in a JSON schema. */
function propertyNames(schema: unknown, into: string[] = []): string[] {
  if (schema === null || typeof schema !== 'object') return into;
  for (const [key, value] of Object.entries(schema as Record<string, unknown>)) {
    if (key === 'properties' && value !== null && typeof value === 'object') into.push(...Object.keys(value));
    propertyNames(value, into);
  }
  return into;
}

for (const dialect of DIALECTS) {
  describe(`administrator roles under attack (${dialect})`, () => {
    let t: TestApp;
    const keys: Record<string, string> = {};

    async function as(key: string | undefined, method: Method, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
      const response = await t.app.inject({
        method,
        url,
        headers: { ...(key === undefined ? {} : { authorization: `Bearer ${key}` }), ...headers },
        ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
      });
      return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
    }

    beforeAll(async () => {
      t = await createTestApp({ dialect });
      expect((await t.admin('POST', '/v1/admin/tenants', { name: 'fabrikam' })).status).toBe(201);
      for (const role of ['reader', 'authentication_admin', 'global_admin']) {
        keys[`default ${role}`] = (await t.admin('POST', '/v1/admin/admin-keys?tenant=default', { name: `default ${role}`, role })).body.api_key;
        keys[`fabrikam ${role}`] = (await t.admin('POST', '/v1/admin/admin-keys?tenant=fabrikam', { name: `fabrikam ${role}`, role })).body.api_key;
      }
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'alice@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    });
    afterAll(async () => {
      await t.close();
    });

    it('every /v1/admin route has a role decision, enforced before the route: a reader writes nothing, an authentication_admin nothing of global_admin, no key nothing', async () => {
      const routes = allRoutes(t.app.printRoutes({ commonPrefix: false })).filter(([, url]) => isAdminRoute(url));
      // The walk sees what the OpenAPI document lists (and hidden routes besides).
      const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
      const documented = Object.entries(doc.paths)
        .filter(([path]) => isAdminRoute(path))
        .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`));
      const walked = new Set(routes.map(([m, u]) => `${m} ${u}`));
      expect(documented.filter((r) => !walked.has(r))).toEqual([]);
      expect(routes.length).toBeGreaterThan(50);

      // Every rule of the table names a route that exists (no stale rule hides a mistake).
      for (const rule of ADMIN_ROUTE_ROLES) {
        expect(
          routes.some(([method, url]) => roleDecision(method, url).rule === rule),
          `${rule.methods} ${rule.pattern}`,
        ).toBe(true);
      }

      const fill = (url: string) => url.replace(/:(\w+)/g, 'nobody').replace(/\*$/, 'x');
      for (const [method, url] of routes) {
        if (method === 'HEAD') continue;
        const { role } = roleDecision(method, url);
        expect(['reader', 'authentication_admin', 'global_admin'], `${method} ${url}`).toContain(role);
        if (method !== 'GET') expect(role, `${method} ${url}: a write is never open to a reader`).not.toBe('reader');
        const target = fill(url);
        expect((await as(undefined, method as Method, target, method === 'GET' ? undefined : {})).status, `${method} ${url} without a key`).toBe(401);
        expect((await as(t.appKey, method as Method, target, method === 'GET' ? undefined : {})).status, `${method} ${url} with an application key`).toBe(403);
        const asReader = await as(keys['default reader'], method as Method, target, method === 'GET' ? undefined : { junk: true });
        // Allowed: whatever the route answers (a 403 of its own, e.g. a tenant's key at an every-tenant route), never a role refusal.
        const roleRefused = /role; this key is/;
        if (role === 'reader') expect(String(asReader.body?.error?.message), `${method} ${url}`).not.toMatch(roleRefused);
        else expect(asReader, `${method} ${url} as a reader`).toEqual({ status: 403, body: { error: { code: 'FORBIDDEN', message: expect.stringMatching(/^this needs the .* role; this key is a reader$/) } } });
        const asAuth = await as(keys['default authentication_admin'], method as Method, target, method === 'GET' ? undefined : { junk: true });
        if (role === 'global_admin') {
          expect(asAuth, `${method} ${url} as an authentication_admin`).toEqual({ status: 403, body: { error: { code: 'FORBIDDEN', message: 'this needs the global_admin role; this key is an authentication_admin' } } });
        } else {
          expect(String(asAuth.body?.error?.message), `${method} ${url} as an authentication_admin`).not.toMatch(roleRefused);
        }
      }
      // Nothing the refused requests sent was stored.
      expect(await t.countUsers(t.tenant.id)).toBe(1);
    });

    it('what a reader may GET declares no secret in its answer schema', async () => {
      const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, { responses?: Record<string, unknown> }>> }>();
      for (const [path, ops] of Object.entries(doc.paths)) {
        const get = ops['get'];
        if (!isAdminRoute(path) || get === undefined) continue;
        if (roleDecision('GET', path.replace(/\{(\w+)\}/g, ':$1')).role !== 'reader') continue;
        const names = propertyNames(get.responses?.['200']);
        expect(
          names.filter((n) => SECRET_FIELD.test(n)),
          path,
        ).toEqual([]);
      }
      // And the one that does carry one-time codes is not a reader's.
      expect(roleDecision('GET', '/v1/admin/outbox').role).toBe('authentication_admin');
      expect(roleDecision('GET', '/v1/admin/outbox/:id').role).toBe('authentication_admin');
    });

    it('an unknown admin route is denied by default: global_admin to write, reader to read', () => {
      expect(roleDecision('POST', '/v1/admin/some-future-thing')).toEqual({ role: 'global_admin', rule: undefined });
      expect(roleDecision('DELETE', '/v1/admin/some-future-thing/:id')).toEqual({ role: 'global_admin', rule: undefined });
      expect(roleDecision('GET', '/v1/admin/some-future-thing')).toEqual({ role: 'reader', rule: undefined });
      expect(roleDecision('HEAD', '/v1/admin/some-future-thing').role).toBe('reader');
    });

    it('a tenant-scoped key of any role never reaches another tenant’s users, settings or audit', async () => {
      const settingsBefore = (await t.admin('GET', '/v1/admin/settings?tenant=default')).body;
      for (const role of ['reader', 'authentication_admin', 'global_admin']) {
        const key = keys[`fabrikam ${role}`];
        const refused = (reply: Reply) => expect([403, 404], `${role}: ${JSON.stringify(reply.body)}`).toContain(reply.status);
        refused(await as(key, 'GET', '/v1/admin/users/alice@contoso.com?tenant=default'));
        refused(await as(key, 'GET', '/v1/admin/users?tenant=default'));
        refused(await as(key, 'GET', '/v1/admin/settings?tenant=default'));
        refused(await as(key, 'GET', '/v1/admin/audit?tenant=default'));
        refused(await as(key, 'PATCH', '/v1/admin/settings?tenant=default', { remember_mfa_days: 30 }));
        refused(await as(key, 'PUT', '/v1/admin/users/alice@contoso.com/state?tenant=default', { state: 'disabled' }));
        refused(await as(key, 'POST', '/v1/admin/users/alice@contoso.com/bypass?tenant=default', { reason: 'from fabrikam' }));
        // Its own tenant's view holds nothing of default's.
        const users = await as(key, 'GET', '/v1/admin/users');
        expect(users.status).toBe(200);
        expect(JSON.stringify(users.body)).not.toContain('alice@contoso.com');
        const audit = await as(key, 'GET', '/v1/admin/audit');
        expect(audit.status).toBe(200);
        expect(JSON.stringify(audit.body)).not.toContain('alice@contoso.com');
      }
      expect((await t.admin('GET', '/v1/admin/settings?tenant=default')).body).toEqual(settingsBefore);
      expect((await t.admin('GET', '/v1/admin/users/alice@contoso.com?tenant=default')).body.mfa_state).toBe('enforced');
    });

    it('who and why: the records of a request name its key (whose name and role its creation recorded) and carry the reason header', async () => {
      const reason = 'INC-4711: user reports a lost phone — ticket by Émile';
      const key = keys['default authentication_admin'] ?? '';
      const created = await as(key, 'POST', '/v1/admin/users', { username: 'bob@contoso.com', mfa_state: 'enforced' }, { 'x-countersign-reason': Buffer.from(reason, 'utf8').toString('latin1') });
      expect(created.status).toBe(201);
      const keyId = (await t.services.db.selectFrom('api_keys').select('id').where('name', '=', 'default authentication_admin').executeTakeFirstOrThrow()).id;
      const rows = await t.services.db.selectFrom('audit_events').select(['actor', 'action', 'detail']).where('target', '=', created.body.id).where('action', '=', 'user.created').execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]?.actor).toBe(`admin-key:${keyId}`);
      const detail = JSON.parse(rows[0]?.detail ?? '{}') as Record<string, unknown>;
      // Sent as UTF-8 bytes (as curl does), recorded as the text that was typed.
      expect(detail['actor_reason']).toBe(reason);
      // Who that key is: its creation is on the (hash-chained) record, and neither name nor role ever changes.
      const creation = await t.services.db.selectFrom('audit_events').select(['actor', 'detail']).where('action', '=', 'admin_key.created').where('target', '=', keyId).executeTakeFirstOrThrow();
      expect(JSON.parse(creation.detail)).toEqual({ name: 'default authentication_admin', role: 'authentication_admin', tenant: t.tenant.id });
      expect(creation.actor).toMatch(/^admin-key:/);

      // Without a header: who, but no why.
      const plain = await as(key, 'POST', '/v1/admin/users', { username: 'carl@contoso.com' });
      const plainRow = await t.services.db.selectFrom('audit_events').select('detail').where('target', '=', plain.body.id).where('action', '=', 'user.created').executeTakeFirstOrThrow();
      const plainDetail = JSON.parse(plainRow.detail) as Record<string, unknown>;
      expect(Object.keys(plainDetail).filter((k) => k.startsWith('actor_'))).toEqual([]);

      // Concurrent requests of different keys and reasons each keep their own (group commit batches them).
      const globalId = (await t.services.db.selectFrom('api_keys').select('id').where('name', '=', 'default global_admin').executeTakeFirstOrThrow()).id;
      const many = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          as(i % 2 === 0 ? key : keys['default global_admin'], 'POST', '/v1/admin/users', { username: `batch${i}@contoso.com` }, { 'x-countersign-reason': `batch ${i}` }),
        ),
      );
      for (const [i, reply] of many.entries()) {
        expect(reply.status).toBe(201);
        const row = await t.services.db.selectFrom('audit_events').select(['actor', 'detail']).where('target', '=', reply.body.id).where('action', '=', 'user.created').executeTakeFirstOrThrow();
        expect(row.actor).toBe(`admin-key:${i % 2 === 0 ? keyId : globalId}`);
        expect(JSON.parse(row.detail)).toMatchObject({ actor_reason: `batch ${i}` });
      }
    });

    it('LOG-02: a malformed reason (control characters, too long, empty) is 400 naming the header, and nothing is stored', async () => {
      const users = await t.countUsers(t.tenant.id);
      const audited = (await t.services.db.selectFrom('audit_events').select('seq').execute()).length;
      const key = keys['default global_admin'];
      for (const [bad, problem] of [
        ['x'.repeat(501), 'must be at most 500 characters'],
        ['line\tbreak', 'must not contain control characters'],
        ['next\u0085line', 'must not contain control characters'],
        ['   ', 'must not be empty'],
      ]) {
        expect(await as(key, 'POST', '/v1/admin/users', { username: 'eve@contoso.com' }, { 'x-countersign-reason': bad ?? '' })).toEqual({
          status: 400,
          body: { error: { code: 'INVALID_INPUT', message: `X-Countersign-Reason: ${problem}` } },
        });
        expect((await as(key, 'PATCH', '/v1/admin/settings', { remember_mfa_days: 30 }, { 'x-countersign-reason': bad ?? '' })).status).toBe(400);
      }
      expect((await as(key, 'POST', '/v1/admin/users', { username: 'eve@contoso.com' }, { 'x-countersign-reason': 'x'.repeat(500) })).status).toBe(201);
      expect(await t.countUsers(t.tenant.id)).toBe(users + 1);
      expect((await t.services.db.selectFrom('audit_events').select('seq').execute()).length).toBe(audited + 1);
    });
  });
}
