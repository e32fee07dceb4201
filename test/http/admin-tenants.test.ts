import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/harness.js';

/**
 * The admin API around users (issue 2, "Directory" and "Bad input"): tenants, settings,
 * applications and administrator keys; the service endpoints (OpenAPI, docs, health); and the
 * HTTP error boundary: unknown routes, content types, body limits, JSON, keys and tenants.
 */
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

type Reply = Awaited<ReturnType<TestApp['admin']>> & { headers: Record<string, unknown> };

/** A JSON request with any key (or none): what t.admin and t.api do for their own keys. */
async function call(key: string | undefined, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, body?: Record<string, unknown>): Promise<Reply> {
  const response = await t.app.inject({
    method,
    url,
    headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
    ...(body === undefined ? {} : { payload: body }),
  });
  return { status: response.statusCode, body: response.body === '' ? undefined : response.json(), headers: response.headers };
}

/** A request with a raw body and content type, sent with the administrator key. */
async function raw(method: 'POST' | 'PATCH', url: string, contentType: string, payload: string): Promise<Reply> {
  const response = await t.app.inject({ method, url, headers: { authorization: `Bearer ${t.adminKey}`, 'content-type': contentType }, payload });
  return { status: response.statusCode, body: response.body === '' ? undefined : response.json(), headers: response.headers };
}

const plain = ({ status, body }: Reply) => ({ status, body });

function countUsers(tenantId: string): Promise<number> {
  return t.countUsers(tenantId);
}

const error = (status: number, code: string, message: string) => ({ status, body: { error: { code, message } } });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DEFAULTS = {
  lockout_threshold: 10,
  lockout_reset_minutes: 10,
  lockout_minutes: 15,
  totp_window: 1,
  hotp_look_ahead: 10,
  allowed_methods: ['totp', 'oath', 'push', 'sms', 'voice', 'webauthn'],
  default_country: 'US',
  challenge_ttl_seconds: 300,
  challenge_max_attempts: 5,
  challenge_max_open: 10,
  voice_mode: 'press',
  sms_mode: 'one_way',
  sms_two_way_timeout_seconds: 300,
  caller_id: null,
  phone_language: 'en-US',
  fraud_alert_enabled: true,
  fraud_code: '0',
  fraud_block_user: true,
  fraud_block_days: 90,
  fraud_notify_emails: [],
  phone_countries: [],
  phone_limit_per_number: 3,
  phone_limit_per_user: 5,
  phone_limit_per_ip: 10,
  phone_limit_per_country: 100,
  phone_limit_window_minutes: 10,
  push_ttl_seconds: 60,
  push_approve_only: false,
  push_limit_per_5_minutes: 3,
  push_limit_since_success: 10,
  push_pin_mode: false,
  app_passwords_allowed: false,
  trusted_ips: [],
  remember_mfa_days: 0,
  cache_seconds: 0,
  cache_by_ip: false,
  seats: null,
  registration_campaign: { enabled: false, method: 'push', snooze_days: 1, excluded_groups: [] },
};

describe('tenants', () => {
  it('lists, creates, and gets a tenant by id or by name', async () => {
    expect(await t.admin('GET', '/v1/admin/tenants')).toEqual({ status: 200, body: { tenants: [{ id: t.tenant.id, name: 'default', created_at: '2026-01-15T12:00:00.000Z' }] } });
    const created = await t.admin('POST', '/v1/admin/tenants', { name: 'Contoso Ltd' });
    expect(created).toEqual({ status: 201, body: { id: expect.stringMatching(UUID), name: 'Contoso Ltd', created_at: '2026-01-15T12:00:00.000Z' } });
    expect(await t.admin('GET', `/v1/admin/tenants/${created.body.id}`)).toEqual({ status: 200, body: created.body });
    expect(await t.admin('GET', `/v1/admin/tenants/${encodeURIComponent('Contoso Ltd')}`)).toEqual({ status: 200, body: created.body });
    const names = (await t.admin('GET', '/v1/admin/tenants')).body.tenants.map((x: { name: string }) => x.name);
    expect(names).toEqual(['Contoso Ltd', 'default']);
    expect(await t.admin('GET', '/v1/admin/tenants/nowhere')).toEqual(error(404, 'NOT_FOUND', 'tenant nowhere not found'));
  });

  it('refuses a duplicate name (409) and a bad one (400 naming `name`)', async () => {
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'twice' })).status).toBe(201);
    expect(await t.admin('POST', '/v1/admin/tenants', { name: 'twice' })).toEqual(error(409, 'CONFLICT', 'tenant twice already exists'));
    const rule = 'name: must be 1–63 letters, digits, spaces, dots, dashes or underscores, starting with a letter or digit';
    expect(await t.admin('POST', '/v1/admin/tenants', { name: '-leading-dash' })).toEqual(error(400, 'INVALID_INPUT', rule));
    expect(await t.admin('POST', '/v1/admin/tenants', { name: 'semi;colon' })).toEqual(error(400, 'INVALID_INPUT', rule));
    expect(await t.admin('POST', '/v1/admin/tenants', { name: 'x'.repeat(64) })).toEqual(error(400, 'INVALID_INPUT', 'name: must NOT have more than 63 characters'));
    expect(await t.admin('POST', '/v1/admin/tenants', {})).toEqual(error(400, 'INVALID_INPUT', 'name: is required'));
    expect(await t.admin('POST', '/v1/admin/tenants', { name: 'ok', region: 'eu' })).toEqual(error(400, 'INVALID_INPUT', 'region: is not a known field'));
    const names = (await t.admin('GET', '/v1/admin/tenants')).body.tenants.map((x: { name: string }) => x.name);
    expect(names).not.toContain('ok');
    expect(names).not.toContain('-leading-dash');
  });

  it('concurrent creates of one tenant name or one application name: one 201, every other 409, never a 500', async () => {
    const tenants = await Promise.all(Array.from({ length: 10 }, () => t.admin('POST', '/v1/admin/tenants', { name: 'racy' })));
    expect(tenants.filter((r) => r.status === 201).length).toBe(1);
    expect(tenants.filter((r) => r.status !== 201)).toEqual(Array.from({ length: 9 }, () => error(409, 'CONFLICT', 'tenant racy already exists')));
    const apps = await Promise.all(Array.from({ length: 10 }, () => t.admin('POST', '/v1/admin/applications?tenant=racy', { name: 'racy app' })));
    expect(apps.filter((r) => r.status === 201).length).toBe(1);
    expect(apps.filter((r) => r.status !== 201)).toEqual(Array.from({ length: 9 }, () => error(409, 'CONFLICT', 'application racy app already exists in tenant racy')));
    expect((await t.admin('GET', '/v1/admin/applications?tenant=racy')).body.applications.map((a: { name: string }) => a.name)).toEqual(['racy app']);
    // Only the winner's key exists, and it works.
    const winner = apps.find((r) => r.status === 201);
    expect((await call(winner?.body.api_key, 'POST', '/v1/preauth', { username: 'x@racy.example' })).status).toBe(200);
    const keys = await t.services.db.selectFrom('api_keys').innerJoin('tenants', 'tenants.id', 'api_keys.tenant_id').select('api_keys.id').where('tenants.name', '=', 'racy').execute();
    expect(keys.length).toBe(1);
  });

  it('a tenant named like another tenant’s id does not shadow that tenant', async () => {
    const real = await t.admin('POST', '/v1/admin/tenants', { name: 'real-tenant' });
    expect((await t.admin('POST', '/v1/admin/users?tenant=real-tenant', { username: 'only-in-real@contoso.com' })).status).toBe(201);
    const shadow = await t.admin('POST', '/v1/admin/tenants', { name: real.body.id });
    expect(shadow.status).toBe(201);
    for (let i = 0; i < 3; i++) {
      expect(await t.admin('GET', `/v1/admin/tenants/${real.body.id}`)).toEqual({ status: 200, body: real.body });
      expect((await t.admin('GET', `/v1/admin/users?tenant=${real.body.id}`)).body.users.map((u: { username: string }) => u.username)).toEqual(['only-in-real@contoso.com']);
    }
    expect(await t.admin('GET', `/v1/admin/tenants/${shadow.body.id}`)).toEqual({ status: 200, body: shadow.body });
  });

  it('deletes a tenant with everything in it: its users, applications and keys', async () => {
    const doomed = await t.admin('POST', '/v1/admin/tenants', { name: 'doomed' });
    expect(doomed.status).toBe(201);
    expect((await t.admin('POST', '/v1/admin/users?tenant=doomed', { username: 'gone@doomed.example' })).status).toBe(201);
    const app = await t.admin('POST', '/v1/admin/applications?tenant=doomed', { name: 'doomed app' });
    const adminKey = await t.admin('POST', '/v1/admin/admin-keys?tenant=doomed', { name: 'doomed admin' });
    expect((await call(app.body.api_key, 'POST', '/v1/preauth', { username: 'gone@doomed.example' })).body).toMatchObject({ result: 'allow', reason: 'mfa_disabled', methods: [] });

    expect(await t.admin('DELETE', '/v1/admin/tenants/doomed')).toEqual({ status: 204, body: undefined });
    expect(await t.admin('GET', `/v1/admin/tenants/${doomed.body.id}`)).toEqual(error(404, 'NOT_FOUND', `tenant ${doomed.body.id} not found`));
    expect(await t.admin('GET', '/v1/admin/users?tenant=doomed')).toEqual(error(404, 'NOT_FOUND', 'tenant doomed not found'));
    expect(await countUsers(doomed.body.id)).toBe(0);
    expect((await call(app.body.api_key, 'POST', '/v1/preauth', { username: 'gone@doomed.example' })).status).toBe(401);
    expect((await call(adminKey.body.api_key, 'GET', '/v1/admin/users')).status).toBe(401);
    expect(await t.admin('DELETE', '/v1/admin/tenants/doomed')).toEqual(error(404, 'NOT_FOUND', 'tenant doomed not found'));
    expect((await t.admin('GET', '/v1/admin/tenants')).body.tenants.map((x: { name: string }) => x.name)).not.toContain('doomed');
  });
});

describe('settings', () => {
  it('GET shows the defaults (Azure lockout 10/10/15, TOTP window 1, HOTP look-ahead 10)', async () => {
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'settings-defaults' })).status).toBe(201);
    expect(await t.admin('GET', '/v1/admin/settings?tenant=settings-defaults')).toEqual({ status: 200, body: DEFAULTS });
  });

  it('PATCH changes what it names, and the change is stored and used', async () => {
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'settings-change' })).status).toBe(201);
    const expected = { ...DEFAULTS, lockout_threshold: 3, totp_window: 0, hotp_look_ahead: 0, allowed_methods: ['totp', 'oath'], default_country: 'GB' };
    const patched = await t.admin('PATCH', '/v1/admin/settings?tenant=settings-change', {
      lockout_threshold: 3,
      totp_window: 0,
      hotp_look_ahead: 0,
      allowed_methods: ['totp', 'oath', 'totp'],
      default_country: 'GB',
    });
    expect(patched).toEqual({ status: 200, body: expected });
    expect(await t.admin('GET', '/v1/admin/settings?tenant=settings-change')).toEqual({ status: 200, body: expected });
    expect(await t.admin('PATCH', '/v1/admin/settings?tenant=settings-change', {})).toEqual({ status: 200, body: expected });
    // Other tenants keep theirs.
    expect((await t.admin('GET', '/v1/admin/settings?tenant=default')).body).toEqual(DEFAULTS);

    // default_country decides how a national number is read; the lockout threshold is applied.
    const created = await t.admin('POST', '/v1/admin/users?tenant=settings-change', { username: 'uk@contoso.co.uk', phone: '020 7946 0958', mfa_state: 'enforced' });
    expect(created.body.phones).toEqual([{ type: 'mobile', number: '+442079460958', verified: true }]);
    const app = await t.admin('POST', '/v1/admin/applications?tenant=settings-change', { name: 'uk app' });
    for (let i = 0; i < 3; i++) {
      expect((await call(app.body.api_key, 'POST', '/v1/verify', { username: 'uk@contoso.co.uk', code: '123456' })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    }
    expect((await call(app.body.api_key, 'POST', '/v1/verify', { username: 'uk@contoso.co.uk', code: '123456' })).body).toEqual({ result: 'denied', reason: 'locked_out' });
  });

  it('PATCH refuses a bad change with 400 naming the field, and no setting changes', async () => {
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'settings-bad' })).status).toBe(201);
    const url = '/v1/admin/settings?tenant=settings-bad';
    const stored = { ...DEFAULTS, lockout_threshold: 7 };
    expect(await t.admin('PATCH', url, { lockout_threshold: 7 })).toEqual({ status: 200, body: stored });

    const cases: [Record<string, unknown>, string][] = [
      [{ lockout_threshold: 101 }, 'lockout_threshold: must be a whole number from 1 to 100'],
      [{ lockout_threshold: 0 }, 'lockout_threshold: must be a whole number from 1 to 100'],
      [{ lockout_threshold: '5' }, 'lockout_threshold: must be a whole number from 1 to 100'],
      [{ lockout_minutes: 1.5 }, 'lockout_minutes: must be a whole number from 1 to 43200'],
      [{ lockout_reset_minutes: null }, 'lockout_reset_minutes: must be a whole number from 1 to 1440'],
      [{ totp_window: 2 }, 'totp_window: must be a whole number from 0 to 1'],
      [{ hotp_look_ahead: 20, challenge_ttl_seconds: 601 }, 'challenge_ttl_seconds: must be a whole number from 30 to 600'],
      [{ challenge_max_attempts: true }, 'challenge_max_attempts: must be a whole number from 1 to 10'],
      [{ lockout: 5 }, 'lockout: is not a tenant setting'],
      [{ totp_window: 0, toString: 5 }, 'toString: is not a tenant setting'],
      [{ allowed_methods: 'totp' }, 'allowed_methods: must be a non-empty list of totp, oath, push, sms, voice, webauthn'],
      [{ allowed_methods: [] }, 'allowed_methods: must be a non-empty list of totp, oath, push, sms, voice, webauthn'],
      [{ allowed_methods: ['totp', 'email'] }, 'allowed_methods: must be a non-empty list of totp, oath, push, sms, voice, webauthn'],
      [{ default_country: 'usa' }, 'default_country: must be a two-letter ISO 3166 country code, e.g. US'],
      [{ default_country: 44 }, 'default_country: must be a two-letter ISO 3166 country code, e.g. US'],
      [{ voice_mode: 'shout' }, 'voice_mode: must be one of press, pin, code'],
      [{ sms_mode: 'two-way' }, 'sms_mode: must be one of one_way, two_way'],
      [{ sms_two_way_timeout_seconds: 30 }, 'sms_two_way_timeout_seconds: must be a whole number from 60 to 600'],
      [{ caller_id: '425-555-0100' }, 'caller_id: must be an E.164 number such as +14255550100, or null'],
      [{ fraud_code: '#' }, 'fraud_code: must be 1–4 digits'],
      [{ fraud_block_user: 'yes' }, 'fraud_block_user: must be true or false'],
      [{ phone_countries: ['usa'] }, 'phone_countries: must be a list of two-letter ISO 3166 country codes (empty = any country)'],
      [{ phone_language: 'english' }, 'phone_language: must be a language tag such as en-US or fr-FR'],
    ];
    for (const [change, message] of cases) {
      expect(await t.admin('PATCH', url, change)).toEqual(error(400, 'INVALID_INPUT', message));
      expect(await t.admin('GET', url)).toEqual({ status: 200, body: stored });
    }
    expect(plain(await raw('PATCH', url, 'application/json', '[1]'))).toEqual(error(400, 'INVALID_INPUT', 'body: must be object'));
    // Nothing was written beside the settings either (an inherited name such as toString).
    const row = await t.services.db.selectFrom('tenants').select('settings').where('name', '=', 'settings-bad').executeTakeFirstOrThrow();
    expect(JSON.parse(row.settings)).toEqual(stored);
  });
});

describe('applications', () => {
  it('shows the API key once, on creation; the list never shows it', async () => {
    const created = await t.admin('POST', '/v1/admin/applications?tenant=default', { name: 'VPN gateway' });
    expect(created).toEqual({ status: 201, body: { id: expect.stringMatching(UUID), name: 'VPN gateway', api_key: expect.stringMatching(/^csk_[A-Za-z0-9_-]{43}$/) } });
    const key: string = created.body.api_key;
    const listed = await t.admin('GET', '/v1/admin/applications?tenant=default');
    expect(listed.status).toBe(200);
    expect(listed.body.applications).toEqual([
      { id: created.body.id, name: 'VPN gateway', created_at: '2026-01-15T12:00:00.000Z' },
      { id: expect.stringMatching(UUID), name: 'test app', created_at: '2026-01-15T12:00:00.000Z' },
    ]);
    expect(JSON.stringify(listed.body)).not.toContain(key);
    expect(JSON.stringify(listed.body)).not.toContain('csk_');
    // Stored as a hash only.
    const stored = await t.services.db.selectFrom('api_keys').select('key_hash').where('application_id', '=', created.body.id).execute();
    expect(stored.length).toBe(1);
    expect(stored[0]?.key_hash).not.toContain(key.slice(4));
    expect((await call(key, 'POST', '/v1/preauth', { username: 'nobody@contoso.com' })).body).toMatchObject({ result: 'deny', reason: 'unknown_user', methods: [] });
    expect(await t.admin('POST', '/v1/admin/applications?tenant=default', { name: 'VPN gateway' })).toEqual(error(409, 'CONFLICT', 'application VPN gateway already exists in tenant default'));
    expect(await t.admin('POST', '/v1/admin/applications?tenant=default', {})).toEqual(error(400, 'INVALID_INPUT', 'name: is required'));
  });

  it('deleting an application revokes its key (401); deleting it again is 404', async () => {
    const created = await t.admin('POST', '/v1/admin/applications?tenant=default', { name: 'short-lived' });
    const key: string = created.body.api_key;
    expect((await call(key, 'POST', '/v1/preauth', { username: 'x@contoso.com' })).status).toBe(200);
    expect(await t.admin('DELETE', `/v1/admin/applications/${created.body.id}?tenant=default`)).toEqual({ status: 204, body: undefined });
    const refused = await call(key, 'POST', '/v1/preauth', { username: 'x@contoso.com' });
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual({ error: { code: 'UNAUTHORIZED', message: 'authorization: the API key is not valid or was revoked' } });
    expect(refused.headers['www-authenticate']).toBe('Bearer realm="countersign"');
    expect(await t.admin('DELETE', `/v1/admin/applications/${created.body.id}?tenant=default`)).toEqual(error(404, 'NOT_FOUND', `application ${created.body.id} not found`));
    expect((await t.admin('GET', '/v1/admin/applications?tenant=default')).body.applications.map((a: { name: string }) => a.name)).not.toContain('short-lived');
    // The other application of the tenant is untouched.
    expect((await t.api('POST', '/v1/preauth', { username: 'x@contoso.com' })).status).toBe(200);
  });

  it('an application key cannot use the admin API (403)', async () => {
    expect(await t.api('GET', '/v1/admin/users?tenant=default')).toEqual(error(403, 'FORBIDDEN', 'this endpoint needs an administrator key'));
    expect(await t.api('POST', '/v1/admin/applications?tenant=default', { name: 'sneaky' })).toEqual(error(403, 'FORBIDDEN', 'this endpoint needs an administrator key'));
  });
});

describe('administrator keys', () => {
  it('a key created for one tenant acts on that tenant only, without ?tenant=', async () => {
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'scoped' })).status).toBe(201);
    expect((await t.admin('POST', '/v1/admin/users?tenant=scoped', { username: 'inside@scoped.example' })).status).toBe(201);
    const created = await t.admin('POST', '/v1/admin/admin-keys?tenant=scoped', { name: 'scoped admin' });
    expect(created).toEqual({ status: 201, body: { id: expect.stringMatching(UUID), api_key: expect.stringMatching(/^csa_[A-Za-z0-9_-]{43}$/) } });
    const key: string = created.body.api_key;
    const users = await call(key, 'GET', '/v1/admin/users');
    expect(users.status).toBe(200);
    expect(users.body.users.map((u: { username: string }) => u.username)).toEqual(['inside@scoped.example']);
    expect((await call(key, 'GET', '/v1/admin/users?tenant=scoped')).status).toBe(200);
    expect((await call(key, 'GET', '/v1/admin/tenants')).body.tenants.map((x: { name: string }) => x.name)).toEqual(['scoped']);
    expect(plain(await call(key, 'GET', '/v1/admin/users?tenant=default'))).toEqual(error(404, 'NOT_FOUND', 'tenant default not found'));
  });

  it('a key for every tenant needs ?tenant= on tenant routes', async () => {
    const created = await t.admin('POST', '/v1/admin/admin-keys', { name: 'second global admin' });
    expect(created.status).toBe(201);
    const key: string = created.body.api_key;
    expect(plain(await call(key, 'GET', '/v1/admin/users'))).toEqual(error(400, 'INVALID_INPUT', 'tenant: is required (query parameter ?tenant=ID_OR_NAME)'));
    expect((await call(key, 'GET', '/v1/admin/users?tenant=default')).status).toBe(200);
    expect((await call(key, 'GET', '/v1/admin/tenants')).body.tenants.map((x: { name: string }) => x.name)).toContain('default');
    expect(await t.admin('POST', '/v1/admin/admin-keys?tenant=nowhere', { name: 'x' })).toEqual(error(404, 'NOT_FOUND', 'tenant nowhere not found'));
  });
});

describe('service endpoints', () => {
  it('/openapi.json is a valid document with the Auth API and admin paths', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    const doc = JSON.parse(response.body) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.1.0');
    for (const path of ['/v1/preauth', '/v1/verify', '/v1/challenges', '/v1/challenges/{id}', '/v1/challenges/{id}/answer', '/v1/admin/users', '/v1/admin/users/{user}', '/v1/admin/users/import']) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
    expect(Object.keys(doc.paths['/v1/admin/users'] ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(doc.paths['/v1/preauth'] ?? {})).toEqual(['post']);
    expect(Object.keys(doc.paths)).not.toContain('/healthz');
  });

  it('/docs renders the OpenAPI document', async () => {
    let url = '/docs';
    let response = await t.app.inject({ method: 'GET', url });
    for (let hops = 0; response.statusCode >= 300 && response.statusCode < 400 && hops < 5; hops++) {
      url = new URL(String(response.headers.location), `http://localhost${url}`).pathname;
      response = await t.app.inject({ method: 'GET', url });
    }
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.body).toContain('swagger-ui');
  });

  it('/healthz answers {status: ok} and /readyz checks the store, both without a key', async () => {
    expect(plain(await call(undefined, 'GET', '/healthz'))).toEqual({ status: 200, body: { status: 'ok' } });
    expect(plain(await call(undefined, 'GET', '/readyz'))).toEqual({ status: 200, body: { status: 'ok', store: t.services.store.dialect } });
  });

  it('an unknown route is 404 NOT_FOUND', async () => {
    expect(await t.admin('GET', '/v1/admin/nothing-here')).toEqual(error(404, 'NOT_FOUND', 'no route GET /v1/admin/nothing-here'));
    expect(plain(await call(undefined, 'POST', '/v2/preauth?x=1', {}))).toEqual(error(404, 'NOT_FOUND', 'no route POST /v2/preauth'));
  });
});

describe('bad requests', () => {
  it('a wrong content type is 415, an oversize body 413, malformed JSON 400 — and nothing is stored', async () => {
    const before = await countUsers(t.tenant.id);
    expect(plain(await raw('POST', '/v1/admin/users?tenant=default', 'application/x-www-form-urlencoded', 'username=form%40contoso.com'))).toEqual(
      error(415, 'UNSUPPORTED_MEDIA_TYPE', 'content-type: not accepted here; send application/json (or text/csv, application/xml for imports)'),
    );
    const huge = JSON.stringify({ username: 'huge@contoso.com', display_name: 'x'.repeat(1024 * 1024) });
    expect(plain(await raw('POST', '/v1/admin/users?tenant=default', 'application/json', huge))).toEqual(error(413, 'PAYLOAD_TOO_LARGE', 'body: too large'));
    expect(plain(await raw('POST', '/v1/admin/users?tenant=default', 'application/json', '{"username": "broken@contoso.com",'))).toEqual(
      error(400, 'INVALID_INPUT', 'body: is not valid JSON'),
    );
    expect(plain(await raw('POST', '/v1/admin/users?tenant=default', 'application/json', ''))).toEqual(error(400, 'INVALID_INPUT', 'body: is empty; send a JSON object'));
    // Prototype pollution attempts are refused by the JSON parser (secure-json-parse).
    expect(plain(await raw('POST', '/v1/admin/users?tenant=default', 'application/json', '{"username":"proto@contoso.com","__proto__":{"x":1}}'))).toEqual(
      error(400, 'INVALID_INPUT', 'body: is not valid JSON'),
    );
    expect(await countUsers(t.tenant.id)).toBe(before);
  });

  it('imports take bodies over 1 MiB (their own limit)', async () => {
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'big-import' })).status).toBe(201);
    const lines = Array.from({ length: 5000 }, (_, i) => `big${i}@contoso.com,${'N'.repeat(250)},,,`);
    const csv = lines.join('\n');
    expect(Buffer.byteLength(csv)).toBeGreaterThan(1024 * 1024);
    expect(await t.admin('POST', '/v1/admin/users/import?tenant=big-import', csv)).toEqual({ status: 200, body: { created: 5000, updated: 0, refused: [] } });
  });

  it('no key, a wrong key or a malformed header is 401 with WWW-Authenticate', async () => {
    const none = await call(undefined, 'GET', '/v1/admin/users?tenant=default');
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error: { code: 'UNAUTHORIZED', message: 'authorization: send "Authorization: Bearer <api key>"' } });
    expect(none.headers['www-authenticate']).toBe('Bearer realm="countersign"');

    const wrong = await call(`csa_${'A'.repeat(43)}`, 'GET', '/v1/admin/users?tenant=default');
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ error: { code: 'UNAUTHORIZED', message: 'authorization: the API key is not valid or was revoked' } });
    expect(wrong.headers['www-authenticate']).toBe('Bearer realm="countersign"');
    // The right key with one character changed.
    const last = t.adminKey.endsWith('A') ? 'B' : 'A';
    expect((await call(`${t.adminKey.slice(0, -1)}${last}`, 'GET', '/v1/admin/users?tenant=default')).status).toBe(401);
    expect((await call('not-a-key', 'GET', '/v1/admin/users?tenant=default')).status).toBe(401);

    const basic = await t.app.inject({ method: 'GET', url: '/v1/admin/users?tenant=default', headers: { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` } });
    expect(basic.statusCode).toBe(401);
    expect(basic.headers['www-authenticate']).toBe('Bearer realm="countersign"');
  });

  it('a missing tenant is 400 naming `tenant`; an unknown tenant is 404', async () => {
    expect(await t.admin('GET', '/v1/admin/users')).toEqual(error(400, 'INVALID_INPUT', 'tenant: is required (query parameter ?tenant=ID_OR_NAME)'));
    expect(await t.admin('POST', '/v1/admin/users', { username: 'no-tenant@contoso.com' })).toEqual(error(400, 'INVALID_INPUT', 'tenant: is required (query parameter ?tenant=ID_OR_NAME)'));
    expect(await t.admin('GET', '/v1/admin/settings')).toEqual(error(400, 'INVALID_INPUT', 'tenant: is required (query parameter ?tenant=ID_OR_NAME)'));
    expect(await t.admin('GET', '/v1/admin/users?tenant=nowhere')).toEqual(error(404, 'NOT_FOUND', 'tenant nowhere not found'));
    expect(await t.admin('GET', '/v1/admin/settings?tenant=00000000-0000-0000-0000-000000000000')).toEqual(
      error(404, 'NOT_FOUND', 'tenant 00000000-0000-0000-0000-000000000000 not found'),
    );
    expect(await t.admin('POST', '/v1/admin/users?tenant=nowhere', { username: 'lost@contoso.com' })).toEqual(error(404, 'NOT_FOUND', 'tenant nowhere not found'));
    expect((await t.admin('GET', '/v1/admin/users/lost@contoso.com?tenant=default')).status).toBe(404);
  });
});
