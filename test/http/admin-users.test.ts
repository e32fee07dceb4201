import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * The admin users API (issue 2, "Directory"): create, read, update, delete, states, lockout and
 * block, paging and search, bulk states and user import from CSV, and a user's methods — all
 * through app.inject() on a real store.
 */
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

const USERS = '/v1/admin/users?tenant=default';
const user = (name: string, suffix = '') => `/v1/admin/users/${encodeURIComponent(name)}${suffix}?tenant=default`;

/** The exact number of users a tenant holds, read from the store. */
function countUsers(tenantId: string): Promise<number> {
  return t.countUsers(tenantId);
}

async function newTenant(name: string): Promise<string> {
  const created = await t.admin('POST', '/v1/admin/tenants', { name });
  expect(created.status).toBe(201);
  return created.body.id;
}

function invalid(message: string) {
  return { status: 400, body: { error: { code: 'INVALID_INPUT', message } } };
}

describe('create', () => {
  it('creates a user with every field, normalising the username and the phone to E.164', async () => {
    const created = await t.admin('POST', USERS, {
      username: '  Ann.Lee@Contoso.com ',
      display_name: 'Ann Lee',
      email: 'ann.lee@contoso.com',
      phone: '(425) 555-0100',
      groups: ['vpn', 'finance', 'vpn'],
      mfa_state: 'Enforced',
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
      username: 'ann.lee@contoso.com',
      display_name: 'Ann Lee',
      email: 'ann.lee@contoso.com',
      phones: [{ type: 'mobile', number: '+14255550100', verified: true }],
      groups: ['finance', 'vpn'],
      mfa_state: 'enforced',
      status: 'active',
      blocked_reason: null,
      blocked_until: null,
      locked_until: null,
      failed_count: 0,
      created_at: '2026-01-15T12:00:00.000Z',
      updated_at: '2026-01-15T12:00:00.000Z',
    });
  });

  it('defaults: state disabled, no phones, no groups; typed phones are normalised too', async () => {
    const minimal = await t.admin('POST', USERS, { username: 'min@contoso.com' });
    expect(minimal.status).toBe(201);
    expect(minimal.body).toMatchObject({ username: 'min@contoso.com', display_name: null, email: null, phones: [], groups: [], mfa_state: 'disabled', status: 'active' });
    const typed = await t.admin('POST', USERS, {
      username: 'phones@contoso.com',
      phones: [
        { type: 'office', number: '+44 20 7946 0958' },
        { type: 'mobile', number: '425-555-0101' },
      ],
    });
    expect(typed.status).toBe(201);
    expect(typed.body.phones).toEqual([
      { type: 'mobile', number: '+14255550101', verified: true },
      { type: 'office', number: '+442079460958', verified: true },
    ]);
  });

  it('refuses a duplicate username, whatever its case, with 409', async () => {
    expect((await t.admin('POST', USERS, { username: 'dup@contoso.com' })).status).toBe(201);
    expect(await t.admin('POST', USERS, { username: 'DUP@Contoso.COM' })).toEqual({
      status: 409,
      body: { error: { code: 'CONFLICT', message: 'user dup@contoso.com already exists' } },
    });
  });

  it('20 concurrent creates of one username (in any case): exactly one 201, every other 409, never a 500', async () => {
    const names = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 'race@contoso.com' : 'RACE@contoso.com'));
    const replies = await Promise.all(names.map((username) => t.admin('POST', USERS, { username })));
    expect(replies.filter((r) => r.status === 201).length).toBe(1);
    expect(replies.filter((r) => r.status !== 201)).toEqual(Array.from({ length: 19 }, () => ({ status: 409, body: { error: { code: 'CONFLICT', message: 'user race@contoso.com already exists' } } })));
    const rows = await t.services.db.selectFrom('users').select('id').where('tenant_id', '=', t.tenant.id).where('username', '=', 'race@contoso.com').execute();
    expect(rows.length).toBe(1);
  });

  it('refuses bad input with 400 naming the field, and stores nothing', async () => {
    const before = await countUsers(t.tenant.id);
    expect(await t.admin('POST', USERS, { username: 'x1@contoso.com', nickname: 'x' })).toEqual(invalid('nickname: is not a known field'));
    expect(await t.admin('POST', USERS, {})).toEqual(invalid('username: is required'));
    expect(await t.admin('POST', USERS, { username: 'has space@contoso.com' })).toEqual(
      invalid('username: must be 1–256 characters without spaces or control characters (e.g. alice@contoso.com)'),
    );
    expect(await t.admin('POST', USERS, { username: 'x2@contoso.com', email: 'not-an-email' })).toEqual(invalid('email: is not an email address'));
    expect(await t.admin('POST', USERS, { username: 'x3@contoso.com', phone: '12' })).toEqual(
      invalid('phone: "12" is not a valid phone number (write it as +<country code><number>)'),
    );
    expect(await t.admin('POST', USERS, { username: 'x4@contoso.com', phones: [{ type: 'fax', number: '+14255550100' }] })).toEqual(
      invalid('phones[0].type: must be one of mobile, office, alternate'),
    );
    expect(await t.admin('POST', USERS, { username: 'x5@contoso.com', phones: [{ type: 'mobile', number: 'call me' }] })).toEqual(
      invalid('phones[0].number: "call me" is not a valid phone number (write it as +<country code><number>)'),
    );
    expect(
      await t.admin('POST', USERS, {
        username: 'x6@contoso.com',
        phones: [
          { type: 'mobile', number: '+14255550100' },
          { type: 'mobile', number: '+14255550101' },
        ],
      }),
    ).toEqual(invalid('phones: holds two numbers of the same type'));
    expect(await t.admin('POST', USERS, { username: 'x7@contoso.com', mfa_state: 'on' })).toEqual(invalid('mfa_state: must be one of disabled, enabled, enforced'));
    expect(await t.admin('POST', USERS, { username: 'x8@contoso.com', groups: ['ok', ' '] })).toEqual(invalid('groups: must be a list of group names (1–128 characters each)'));
    expect(await countUsers(t.tenant.id)).toBe(before);
    expect((await t.admin('GET', user('x2@contoso.com'))).status).toBe(404);
  });
});

describe('get', () => {
  it('a username that spells another user’s id does not shadow that user', async () => {
    const real = await t.admin('POST', USERS, { username: 'real@contoso.com', display_name: 'Real' });
    expect(real.status).toBe(201);
    const impostor = await t.admin('POST', USERS, { username: real.body.id, display_name: 'Impostor' });
    expect(impostor.status).toBe(201);
    for (let i = 0; i < 3; i++) expect((await t.admin('GET', user(real.body.id))).body).toEqual(real.body);
    expect(await t.admin('GET', user(impostor.body.id))).toEqual({ status: 200, body: impostor.body });
    expect((await t.admin('DELETE', user(real.body.id))).status).toBe(204);
    expect(await t.admin('GET', user('real@contoso.com'))).toEqual({ status: 404, body: { error: { code: 'NOT_FOUND', message: 'user real@contoso.com not found' } } });
    // With the real user gone, the name is found as a username.
    expect(await t.admin('GET', user(real.body.id))).toEqual({ status: 200, body: impostor.body });
  });

  it('finds a user by username (any case) and by id, and answers 404 for an unknown one', async () => {
    const created = await t.admin('POST', USERS, { username: 'get@contoso.com', display_name: 'Get Me' });
    expect(created.status).toBe(201);
    expect(await t.admin('GET', user('get@contoso.com'))).toEqual({ status: 200, body: created.body });
    expect(await t.admin('GET', user('GET@CONTOSO.COM'))).toEqual({ status: 200, body: created.body });
    expect(await t.admin('GET', user(created.body.id))).toEqual({ status: 200, body: created.body });
    expect(await t.admin('GET', user('nobody@contoso.com'))).toEqual({
      status: 404,
      body: { error: { code: 'NOT_FOUND', message: 'user nobody@contoso.com not found' } },
    });
  });
});

describe('update', () => {
  it('changes display name, email, phones, groups and MFA state; what is not sent stays', async () => {
    const created = await t.admin('POST', USERS, {
      username: 'upd@contoso.com',
      display_name: 'Old Name',
      email: 'old@contoso.com',
      phone: '+14255550102',
      groups: ['a'],
      mfa_state: 'disabled',
    });
    expect(created.status).toBe(201);
    t.clock.advance(60_000);
    const renamed = await t.admin('PATCH', user('upd@contoso.com'), { display_name: 'New Name' });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toEqual({ ...created.body, display_name: 'New Name', updated_at: new Date(t.clock.ms()).toISOString() });

    const changed = await t.admin('PATCH', user('upd@contoso.com'), {
      email: 'new@contoso.com',
      phones: [
        { type: 'alternate', number: '+14255550103' },
        { type: 'mobile', number: '+1 425 555 0104' },
      ],
      groups: ['b', 'c'],
      mfa_state: 'enforced',
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({
      display_name: 'New Name',
      email: 'new@contoso.com',
      phones: [
        { type: 'alternate', number: '+14255550103' },
        { type: 'mobile', number: '+14255550104' },
      ],
      groups: ['b', 'c'],
      mfa_state: 'enforced',
    });
    expect(await t.admin('GET', user('upd@contoso.com'))).toEqual({ status: 200, body: changed.body });

    // Clearing: null removes the name and email, empty lists remove phones and groups.
    const cleared = await t.admin('PATCH', user('upd@contoso.com'), { display_name: null, email: null, phones: [], groups: [] });
    expect(cleared.body).toMatchObject({ display_name: null, email: null, phones: [], groups: [], mfa_state: 'enforced' });
  });

  it('refuses a username change and bad fields naming them, changing nothing', async () => {
    const created = await t.admin('POST', USERS, { username: 'keep@contoso.com', email: 'keep@contoso.com', mfa_state: 'enabled' });
    expect(created.status).toBe(201);
    expect(await t.admin('PATCH', user('keep@contoso.com'), { username: 'other@contoso.com' })).toEqual(invalid('username: is not a known field'));
    expect(await t.admin('PATCH', user('keep@contoso.com'), { display_name: 'Fine', email: 'broken' })).toEqual(invalid('email: is not an email address'));
    expect(await t.admin('PATCH', user('keep@contoso.com'), { display_name: 'Fine', mfa_state: 'sometimes' })).toEqual(
      invalid('mfa_state: must be one of disabled, enabled, enforced'),
    );
    expect(await t.admin('PATCH', user('keep@contoso.com'), { display_name: 'Fine', phone: 'nope' })).toEqual(
      invalid('phone: "nope" is not a valid phone number (write it as +<country code><number>)'),
    );
    expect(await t.admin('GET', user('keep@contoso.com'))).toEqual({ status: 200, body: created.body });
    expect((await t.admin('GET', user('other@contoso.com'))).status).toBe(404);
    expect((await t.admin('PATCH', user('ghost@contoso.com'), { display_name: 'x' })).status).toBe(404);
  });
});

describe('delete', () => {
  it('deletes a user (204), then the user is gone (404) and the name can be used again', async () => {
    const created = await t.admin('POST', USERS, { username: 'del@contoso.com', phone: '+14255550105', groups: ['g'] });
    expect(created.status).toBe(201);
    expect(await t.admin('DELETE', user('del@contoso.com'))).toEqual({ status: 204, body: undefined });
    expect((await t.admin('GET', user('del@contoso.com'))).status).toBe(404);
    expect((await t.admin('GET', user(created.body.id))).status).toBe(404);
    expect(await t.admin('DELETE', user('del@contoso.com'))).toEqual({ status: 404, body: { error: { code: 'NOT_FOUND', message: 'user del@contoso.com not found' } } });
    const again = await t.admin('POST', USERS, { username: 'del@contoso.com' });
    expect(again.status).toBe(201);
    expect(again.body.id).not.toBe(created.body.id);
    expect(again.body).toMatchObject({ phones: [], groups: [] });
  });
});

describe('state, lockout and block', () => {
  it('PUT /state sets each MFA state and refuses others naming `state`', async () => {
    expect((await t.admin('POST', USERS, { username: 'state@contoso.com' })).status).toBe(201);
    for (const state of ['enabled', 'enforced', 'disabled'] as const) {
      t.clock.advance(1_000);
      const set = await t.admin('PUT', user('state@contoso.com', '/state'), { state });
      expect(set.status).toBe(200);
      expect(set.body.mfa_state).toBe(state);
      // The answer is the user as stored, including when it changed.
      expect(await t.admin('GET', user('state@contoso.com'))).toEqual({ status: 200, body: set.body });
      expect(set.body.updated_at).toBe(new Date(t.clock.ms()).toISOString());
    }
    expect(await t.admin('PUT', user('state@contoso.com', '/state'), { state: 'maybe' })).toEqual(invalid('state: must be one of disabled, enabled, enforced'));
    expect(await t.admin('PUT', user('state@contoso.com', '/state'), {})).toEqual(invalid('state: is required'));
    expect((await t.admin('GET', user('state@contoso.com'))).body.mfa_state).toBe('disabled');
    expect((await t.admin('PUT', user('ghost@contoso.com', '/state'), { state: 'enabled' })).status).toBe(404);
  });

  it('a user locked out by wrong codes is unlocked by an admin; block and unblock', async () => {
    expect((await t.admin('POST', USERS, { username: 'lock@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    for (let i = 0; i < 10; i++) {
      expect((await t.api('POST', '/v1/verify', { username: 'lock@contoso.com', code: '000000' })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    }
    expect((await t.api('POST', '/v1/verify', { username: 'lock@contoso.com', code: '000000' })).body).toEqual({ result: 'denied', reason: 'locked_out' });
    const locked = await t.admin('GET', user('lock@contoso.com'));
    expect(locked.body).toMatchObject({ status: 'locked_out', locked_until: new Date(t.clock.ms() + 15 * 60_000).toISOString() });

    const unlocked = await t.admin('POST', user('lock@contoso.com', '/unlock'));
    expect(unlocked.status).toBe(200);
    expect(unlocked.body).toMatchObject({ status: 'active', locked_until: null, failed_count: 0 });
    expect((await t.api('POST', '/v1/verify', { username: 'lock@contoso.com', code: '000000' })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect((await t.admin('GET', user('lock@contoso.com'))).body.failed_count).toBe(1);

    const blocked = await t.admin('POST', user('lock@contoso.com', '/block'));
    expect(blocked.status).toBe(200);
    expect(blocked.body).toMatchObject({ status: 'blocked', blocked_reason: 'admin', blocked_until: null });
    expect((await t.api('POST', '/v1/preauth', { username: 'lock@contoso.com' })).body).toMatchObject({ result: 'deny', reason: 'blocked', methods: [] });
    expect((await t.api('POST', '/v1/verify', { username: 'lock@contoso.com', code: '000000' })).body).toEqual({ result: 'denied', reason: 'blocked' });

    const unblocked = await t.admin('POST', user('lock@contoso.com', '/unblock'));
    expect(unblocked.status).toBe(200);
    expect(unblocked.body).toMatchObject({ status: 'active', blocked_reason: null, blocked_until: null });
    expect((await t.api('POST', '/v1/preauth', { username: 'lock@contoso.com' })).body).toMatchObject({ result: 'enroll', reason: 'registration_required', methods: [] });
    expect((await t.admin('POST', user('ghost@contoso.com', '/block'))).status).toBe(404);
  });
});

describe('list', () => {
  it('walks every page exactly once, in username order, with `limit` and `next_cursor`', async () => {
    const tenant = await newTenant('paging');
    const names = Array.from({ length: 23 }, (_, i) => `user-${String((i * 7) % 23).padStart(2, '0')}@paging.example`);
    for (const username of names) expect((await t.admin('POST', '/v1/admin/users?tenant=paging', { username })).status).toBe(201);
    const expected = [...names].sort();

    for (const limit of [5, 23, 1000, 1]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const url: string = `/v1/admin/users?tenant=${tenant}&limit=${limit}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
        const page = await t.admin('GET', url);
        expect(page.status).toBe(200);
        pages++;
        const usernames: string[] = page.body.users.map((u: { username: string }) => u.username);
        expect(usernames.length).toBe(Math.min(limit, 23 - seen.length));
        seen.push(...usernames);
        cursor = page.body.next_cursor;
        if (cursor !== null) expect(cursor).toBe(usernames.at(-1));
      } while (cursor !== null);
      expect(seen).toEqual(expected);
      expect(pages).toBe(Math.ceil(23 / limit));
    }
    // Without a limit a page holds 100.
    expect((await t.admin('GET', `/v1/admin/users?tenant=${tenant}`)).body.users.length).toBe(23);
    expect(await t.admin('GET', `/v1/admin/users?tenant=${tenant}&limit=0`)).toEqual(invalid('query.limit: must be >= 1'));
    expect(await t.admin('GET', `/v1/admin/users?tenant=${tenant}&limit=1001`)).toEqual(invalid('query.limit: must be <= 1000'));
  });

  it('search matches username, display name and email, case-insensitively, with `_`, `%` and `\\` taken literally', async () => {
    await newTenant('search');
    const add = async (body: Record<string, unknown>) => expect((await t.admin('POST', '/v1/admin/users?tenant=search', body)).status).toBe(201);
    await add({ username: 'a_b@search.example' });
    await add({ username: 'axb@search.example' });
    await add({ username: 'p100%off@search.example' });
    await add({ username: 'p1000@search.example' });
    await add({ username: 'back\\slash@search.example' });
    await add({ username: 'bsmith@search.example', display_name: 'Bob SMITH' });
    await add({ username: 'carol@search.example', email: 'Carol.Jones@Example.org' });
    await add({ username: 'dave@search.example', display_name: 'Dave', email: 'dave@example.org' });

    const search = async (term: string, extra = '') => {
      const page = await t.admin('GET', `/v1/admin/users?tenant=search&search=${encodeURIComponent(term)}${extra}`);
      expect(page.status).toBe(200);
      return page.body.users.map((u: { username: string }) => u.username);
    };
    expect(await search('A_B')).toEqual(['a_b@search.example']);
    expect(await search('_')).toEqual(['a_b@search.example']);
    expect(await search('100%')).toEqual(['p100%off@search.example']);
    expect(await search('%')).toEqual(['p100%off@search.example']);
    expect(await search('\\')).toEqual(['back\\slash@search.example']);
    expect(await search('smith')).toEqual(['bsmith@search.example']);
    expect(await search('Bob sm')).toEqual(['bsmith@search.example']);
    expect(await search('JONES@example')).toEqual(['carol@search.example']);
    expect(await search('example.org')).toEqual(['carol@search.example', 'dave@search.example']);
    expect(await search('nothing-like-this')).toEqual([]);
    expect(await search('search.example')).toEqual([
      'a_b@search.example',
      'axb@search.example',
      'back\\slash@search.example',
      'bsmith@search.example',
      'carol@search.example',
      'dave@search.example',
      'p100%off@search.example',
      'p1000@search.example',
    ]);
    // Search and paging together.
    const first = await t.admin('GET', '/v1/admin/users?tenant=search&search=example.org&limit=1');
    expect(first.body.users.map((u: { username: string }) => u.username)).toEqual(['carol@search.example']);
    expect(first.body.next_cursor).toBe('carol@search.example');
    expect(await search('example.org', '&limit=1&cursor=carol%40search.example')).toEqual(['dave@search.example']);
  });
});

describe('bulk states from CSV', () => {
  it('applies good lines and refuses unknown users and bad states with their line numbers', async () => {
    await newTenant('bulk-states');
    for (const username of ['s1@contoso.com', 's2@contoso.com', 's3@contoso.com']) {
      expect((await t.admin('POST', '/v1/admin/users?tenant=bulk-states', { username })).status).toBe(201);
    }
    const csv = ['username,state', 'S1@contoso.com,enabled', 'nobody@contoso.com,enabled', 's2@contoso.com,sometimes', '', 's3@contoso.com, Enforced ', 's2@contoso.com'].join('\n');
    expect(await t.admin('POST', '/v1/admin/users/states?tenant=bulk-states', csv)).toEqual({
      status: 200,
      body: {
        changed: 2,
        refused: [
          { line: 3, reason: 'username: nobody@contoso.com not found' },
          { line: 4, reason: 'state: must be one of disabled, enabled, enforced' },
          { line: 7, reason: 'has 1 fields; expected username,state' },
        ],
      },
    });
    const states = async () => (await t.admin('GET', '/v1/admin/users?tenant=bulk-states')).body.users.map((u: { username: string; mfa_state: string }) => [u.username, u.mfa_state]);
    expect(await states()).toEqual([
      ['s1@contoso.com', 'enabled'],
      ['s2@contoso.com', 'disabled'],
      ['s3@contoso.com', 'enforced'],
    ]);
    // Without a header the first line is data.
    expect(await t.admin('POST', '/v1/admin/users/states?tenant=bulk-states', 's2@contoso.com,enforced\ns1@contoso.com,disabled\n')).toEqual({
      status: 200,
      body: { changed: 2, refused: [] },
    });
    expect(await states()).toEqual([
      ['s1@contoso.com', 'disabled'],
      ['s2@contoso.com', 'enforced'],
      ['s3@contoso.com', 'enforced'],
    ]);
  });

  it('refuses a username that appears twice, so the result never depends on line order', async () => {
    await newTenant('bulk-dup');
    expect((await t.admin('POST', '/v1/admin/users?tenant=bulk-dup', { username: 'twice@contoso.com' })).status).toBe(201);
    expect(await t.admin('POST', '/v1/admin/users/states?tenant=bulk-dup', 'twice@contoso.com,enforced\nTWICE@contoso.com,enabled\n')).toEqual({
      status: 200,
      body: { changed: 1, refused: [{ line: 2, reason: 'username: twice@contoso.com already appears on line 1' }] },
    });
    expect((await t.admin('GET', '/v1/admin/users/twice@contoso.com?tenant=bulk-dup')).body.mfa_state).toBe('enforced');
  });

  it('refuses an unreadable or empty file whole, changing nothing', async () => {
    await newTenant('bulk-bad');
    expect((await t.admin('POST', '/v1/admin/users?tenant=bulk-bad', { username: 'q@contoso.com' })).status).toBe(201);
    expect(await t.admin('POST', '/v1/admin/users/states?tenant=bulk-bad', 'q@contoso.com,enabled\n"q@contoso.com,enforced\n')).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_FILE', message: 'the file is not valid CSV: Quote Not Closed at line 2' } },
    });
    expect(await t.admin('POST', '/v1/admin/users/states?tenant=bulk-bad', ' \n')).toEqual({ status: 400, body: { error: { code: 'INVALID_FILE', message: 'the file is empty' } } });
    expect((await t.admin('GET', '/v1/admin/users/q@contoso.com?tenant=bulk-bad')).body.mfa_state).toBe('disabled');
  });
});

describe('import from CSV', () => {
  it('creates new users and updates existing ones without wiping fields left empty', async () => {
    const tenant = await newTenant('import');
    const existing = await t.admin('POST', '/v1/admin/users?tenant=import', {
      username: 'old@contoso.com',
      display_name: 'Old Timer',
      email: 'old@contoso.com',
      phones: [
        { type: 'mobile', number: '+14255550110' },
        { type: 'office', number: '+14255550111' },
      ],
      groups: ['keep'],
      mfa_state: 'enforced',
    });
    expect(existing.status).toBe(201);
    expect((await t.admin('POST', '/v1/admin/users/old@contoso.com/block?tenant=import')).status).toBe(200);
    t.clock.advance(5_000);

    const csv = [
      'username,display name,email,phone,state',
      'new1@contoso.com,New One,new1@contoso.com,(425) 555-0120,enabled',
      'NEW2@contoso.com',
      'old@contoso.com,,,,',
      '"quoted@contoso.com","Lee, Ann",,+442079460958,enforced',
    ].join('\r\n');
    expect(await t.admin('POST', '/v1/admin/users/import?tenant=import', csv)).toEqual({ status: 200, body: { created: 3, updated: 1, refused: [] } });
    expect(await countUsers(tenant)).toBe(4);

    const now = new Date(t.clock.ms()).toISOString();
    expect((await t.admin('GET', '/v1/admin/users/new1@contoso.com?tenant=import')).body).toMatchObject({
      username: 'new1@contoso.com',
      display_name: 'New One',
      email: 'new1@contoso.com',
      phones: [{ type: 'mobile', number: '+14255550120', verified: true }],
      groups: [],
      mfa_state: 'enabled',
      status: 'active',
      created_at: now,
    });
    expect((await t.admin('GET', '/v1/admin/users/new2@contoso.com?tenant=import')).body).toMatchObject({
      username: 'new2@contoso.com',
      display_name: null,
      email: null,
      phones: [],
      mfa_state: 'disabled',
    });
    expect((await t.admin('GET', '/v1/admin/users/quoted@contoso.com?tenant=import')).body).toMatchObject({
      display_name: 'Lee, Ann',
      phones: [{ type: 'mobile', number: '+442079460958', verified: true }],
      mfa_state: 'enforced',
    });
    // Empty fields keep what was stored; the block is not lifted by an import.
    expect(await t.admin('GET', '/v1/admin/users/old@contoso.com?tenant=import')).toEqual({
      status: 200,
      body: { ...existing.body, status: 'blocked', blocked_reason: 'admin', updated_at: now },
    });

    // A second import changes only what it names: the mobile number, not the office one.
    t.clock.advance(5_000);
    expect(await t.admin('POST', '/v1/admin/users/import?tenant=import', 'old@contoso.com,New Name,,+14255550199,disabled\n')).toEqual({
      status: 200,
      body: { created: 0, updated: 1, refused: [] },
    });
    expect((await t.admin('GET', '/v1/admin/users/old@contoso.com?tenant=import')).body).toEqual({
      ...existing.body,
      display_name: 'New Name',
      phones: [
        { type: 'mobile', number: '+14255550199', verified: true },
        { type: 'office', number: '+14255550111', verified: true },
      ],
      mfa_state: 'disabled',
      status: 'blocked',
      blocked_reason: 'admin',
      updated_at: new Date(t.clock.ms()).toISOString(),
    });
  });

  it('refuses bad lines with their number and a reason naming the field, and imports the rest', async () => {
    const tenant = await newTenant('import-bad');
    const csv = [
      'username,display name,email,phone,state', // 1
      'good1@contoso.com,Good One,,,enabled', // 2
      'bad email@contoso.com,,,,', // 3
      'mail@contoso.com,,not-mail,,', // 4
      'phone@contoso.com,,,12345,', // 5
      'state@contoso.com,,,,on', // 6
      'GOOD1@contoso.com,Again,,,', // 7
      'many@contoso.com,a,b@c.de,,enabled,extra', // 8
      '', // 9 (blank: skipped)
      'good2@contoso.com', // 10
    ].join('\n');
    expect(await t.admin('POST', '/v1/admin/users/import?tenant=import-bad', csv)).toEqual({
      status: 200,
      body: {
        created: 2,
        updated: 0,
        refused: [
          { line: 3, reason: 'username: must be 1–256 characters without spaces or control characters (e.g. alice@contoso.com)' },
          { line: 4, reason: 'email: is not an email address' },
          { line: 5, reason: 'phone: "12345" is not a valid phone number (write it as +<country code><number>)' },
          { line: 6, reason: 'state: must be one of disabled, enabled, enforced' },
          { line: 7, reason: 'username: good1@contoso.com already appears on line 2' },
          { line: 8, reason: 'has 6 fields; expected username,display name,email,phone,state' },
        ],
      },
    });
    expect(await countUsers(tenant)).toBe(2);
    // The duplicate line did not overwrite the first.
    expect((await t.admin('GET', '/v1/admin/users/good1@contoso.com?tenant=import-bad')).body.display_name).toBe('Good One');
  });

  it('a malformed file (broken quote) is refused whole with INVALID_FILE and nothing changes', async () => {
    const tenant = await newTenant('import-broken');
    expect((await t.admin('POST', '/v1/admin/users?tenant=import-broken', { username: 'there@contoso.com', display_name: 'There' })).status).toBe(201);
    const before = await countUsers(tenant);
    expect(before).toBe(1);
    const csv = 'username,display name,email,phone,state\nfresh@contoso.com,Fresh,,,enabled\nthere@contoso.com,Changed,,,enforced\n"open@contoso.com,Open,,,enabled\n';
    expect(await t.admin('POST', '/v1/admin/users/import?tenant=import-broken', csv)).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_FILE', message: 'the file is not valid CSV: Quote Not Closed at line 4' } },
    });
    expect(await countUsers(tenant)).toBe(before);
    expect((await t.admin('GET', '/v1/admin/users/fresh@contoso.com?tenant=import-broken')).status).toBe(404);
    expect((await t.admin('GET', '/v1/admin/users/there@contoso.com?tenant=import-broken')).body).toMatchObject({ display_name: 'There', mfa_state: 'disabled' });
    expect(await t.admin('POST', '/v1/admin/users/import?tenant=import-broken', '')).toEqual({ status: 400, body: { error: { code: 'INVALID_FILE', message: 'the file is empty' } } });
    expect(await countUsers(tenant)).toBe(before);
  });

  it('imports 100,000 users, then updates the same 100,000', async () => {
    const tenant = await newTenant('import-100k');
    const lines = ['username,display name,email,phone,state'];
    const states = ['disabled', 'enabled', 'enforced'] as const;
    for (let i = 0; i < 100_000; i++) {
      const n = String(i).padStart(6, '0');
      lines.push(`user${n}@bulk.example,User ${n},user${n}@mail.example,${i % 10 === 0 ? `+1425555${String(i % 10_000).padStart(4, '0')}` : ''},${states[i % 3]}`);
    }
    const csv = lines.join('\n');

    const started = performance.now();
    const first = await t.admin('POST', '/v1/admin/users/import?tenant=import-100k', csv);
    const firstSeconds = (performance.now() - started) / 1000;
    expect(first).toEqual({ status: 200, body: { created: 100_000, updated: 0, refused: [] } });
    expect(await countUsers(tenant)).toBe(100_000);

    const again = performance.now();
    const second = await t.admin('POST', '/v1/admin/users/import?tenant=import-100k', csv);
    const secondSeconds = (performance.now() - again) / 1000;
    expect(second).toEqual({ status: 200, body: { created: 0, updated: 100_000, refused: [] } });
    expect(await countUsers(tenant)).toBe(100_000);
    console.log(`[admin-users] import of 100,000 users (${t.services.store.dialect}): created in ${firstSeconds.toFixed(2)} s, updated in ${secondSeconds.toFixed(2)} s`);

    expect((await t.admin('GET', '/v1/admin/users/user054320@bulk.example?tenant=import-100k')).body).toMatchObject({
      username: 'user054320@bulk.example',
      display_name: 'User 054320',
      email: 'user054320@mail.example',
      phones: [{ type: 'mobile', number: '+14255554320', verified: true }],
      mfa_state: 'enforced',
    });
    expect((await t.admin('GET', '/v1/admin/users/user099999@bulk.example?tenant=import-100k')).body).toMatchObject({ phones: [], mfa_state: 'disabled' });
  }, 120_000);
});

describe('user methods', () => {
  it('lists a user’s methods and deletes one (204), then it is gone (404)', async () => {
    expect((await t.admin('POST', USERS, { username: 'methods@contoso.com', mfa_state: 'enabled' })).status).toBe(201);
    expect(await t.admin('GET', user('methods@contoso.com', '/methods'))).toEqual({ status: 200, body: { methods: [] } });

    const enrolled = await t.admin('POST', user('methods@contoso.com', '/methods/totp'), {});
    expect(enrolled.status).toBe(201);
    const methodId: string = enrolled.body.method.id;
    const activated = await t.admin('POST', user('methods@contoso.com', `/methods/${methodId}/activate`), { code: totpAt(enrolled.body.secret, t.clock.ms()) });
    expect(activated.status).toBe(200);

    const listed = await t.admin('GET', user('methods@contoso.com', '/methods'));
    expect(listed).toEqual({
      status: 200,
      body: {
        methods: [
          {
            id: methodId,
            type: 'totp',
            label: 'Authenticator app',
            default: true,
            status: 'active',
            otp_kind: 'totp',
            algorithm: 'SHA1',
            digits: 6,
            period: 30,
            serial: null,
            manufacturer: null,
            model: null,
            created_at: new Date(t.clock.ms()).toISOString(),
            last_used_at: new Date(t.clock.ms()).toISOString(),
          },
        ],
      },
    });
    expect(JSON.stringify(listed.body)).not.toContain(enrolled.body.secret);
    expect((await t.api('POST', '/v1/preauth', { username: 'methods@contoso.com' })).body.result).toBe('challenge');

    expect(await t.admin('DELETE', user('methods@contoso.com', `/methods/${methodId}`))).toEqual({ status: 204, body: undefined });
    expect(await t.admin('GET', user('methods@contoso.com', '/methods'))).toEqual({ status: 200, body: { methods: [] } });
    expect(await t.admin('DELETE', user('methods@contoso.com', `/methods/${methodId}`))).toEqual({
      status: 404,
      body: { error: { code: 'NOT_FOUND', message: `method ${methodId} not found` } },
    });
    expect((await t.api('POST', '/v1/preauth', { username: 'methods@contoso.com' })).body).toMatchObject({ result: 'enroll', reason: 'registration_required', methods: [] });
    expect((await t.admin('GET', user('ghost@contoso.com', '/methods'))).status).toBe(404);
  });

  it('a method of one user cannot be deleted through another user', async () => {
    expect((await t.admin('POST', USERS, { username: 'owner@contoso.com' })).status).toBe(201);
    expect((await t.admin('POST', USERS, { username: 'intruder@contoso.com' })).status).toBe(201);
    const enrolled = await t.admin('POST', user('owner@contoso.com', '/methods/totp'), {});
    expect(enrolled.status).toBe(201);
    expect((await t.admin('DELETE', user('intruder@contoso.com', `/methods/${enrolled.body.method.id}`))).status).toBe(404);
    expect((await t.admin('GET', user('owner@contoso.com', '/methods'))).body.methods.map((m: { id: string }) => m.id)).toEqual([enrolled.body.method.id]);
  });
});
