import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { Secret } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/http/server.js';
import { createTestApp, createTestContext, DEFAULT_DIALECT, type TestApp, type TestContext } from '../support/harness.js';
import { hotpAt, totpAt } from '../support/otp.js';

/**
 * Attacks on OTP verification through the HTTP API (SECURITY.md OTP-01…09, RL-01): replay,
 * races, window, lockout across sessions, HOTP look-ahead, client-supplied time, and the audit
 * trail of a replay. Nothing below the routes is mocked; the clock is the harness's fake.
 */
type Reply = Awaited<ReturnType<TestApp['api']>>;
type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

const STEP = 30_000;
/** RFC 4226 Appendix D key, ASCII "12345678901234567890", as Base32. */
const RFC4226_KEY_BASE32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const FIGURE3 = readFileSync(new URL('../../src/methods/oath/fixtures/rfc6030-figure3.pskcxml', import.meta.url), 'utf8');

let t: TestApp;
/** Two servers on one store when the store allows it (PostgreSQL: two pools, as two nodes). */
let servers: FastifyInstance[];
let secondNode: TestContext | undefined;
let secondApp: FastifyInstance | undefined;

beforeAll(async () => {
  t = await createTestApp();
  servers = [t.app];
  // A second node in this process only on PostgreSQL: two SQLite connections in ONE thread
  // block each other's writers (see test/store/store.contract.test.ts); the SQLite races across
  // connections are run there, in a worker thread.
  if (DEFAULT_DIALECT === 'postgres') {
    secondNode = await createTestContext({ location: t.location, clock: t.clock });
    secondApp = await buildServer(secondNode.services);
    servers.push(secondApp);
  }
});

afterAll(async () => {
  await secondApp?.close();
  await secondNode?.close();
  await t.close();
});

async function send(app: FastifyInstance, key: string, method: Method, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const response = await app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}`, ...headers },
    ...(body === undefined ? {} : typeof body === 'string' ? { payload: body } : { payload: body as Record<string, unknown> }),
  });
  return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
}

interface Tenant {
  name: string;
  appKey: string;
  api(method: Method, url: string, body?: unknown): Promise<Reply>;
  admin(method: Method, path: string, body?: unknown): Promise<Reply>;
}

function withTenant(path: string, tenant: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}tenant=${encodeURIComponent(tenant)}`;
}

/** A tenant of its own (own settings), with an application key for the Auth API. */
async function makeTenant(name: string, settings: Record<string, unknown> = {}): Promise<Tenant> {
  expect((await t.admin('POST', '/v1/admin/tenants', { name })).status).toBe(201);
  if (Object.keys(settings).length > 0) {
    const changed = await t.admin('PATCH', withTenant('/v1/admin/settings', name), settings);
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject(settings);
  }
  const created = await t.admin('POST', withTenant('/v1/admin/applications', name), { name: `${name} app` });
  expect(created.status).toBe(201);
  const appKey: string = created.body.api_key;
  return {
    name,
    appKey,
    api: (method, url, body) => send(t.app, appKey, method, url, body),
    admin: (method, path, body) => t.admin(method, withTenant(path, name), body),
  };
}

const defaultTenant = (): Tenant => ({
  name: 'default',
  appKey: t.appKey,
  api: (method, url, body) => t.api(method as 'GET' | 'POST', url, body),
  admin: (method, path, body) => t.admin(method, withTenant(path, 'default'), body),
});

interface EnrolledUser {
  username: string;
  userId: string;
  secret: string;
  methodId: string;
}

/**
 * A user with an active TOTP method. The activation code's step is consumed, so the clock is
 * then moved 5 steps on: every step in reach of the ±2 tests below is unused.
 */
async function userWithTotp(tenant: Tenant, username: string): Promise<EnrolledUser> {
  const created = await tenant.admin('POST', '/v1/admin/users', { username, mfa_state: 'enforced' });
  expect(created.status).toBe(201);
  const enrolled = await tenant.admin('POST', `/v1/admin/users/${username}/methods/totp`, {});
  expect(enrolled.status).toBe(201);
  const activated = await tenant.admin('POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate`, { code: totpAt(enrolled.body.secret, t.clock.ms()) });
  expect(activated.body.status).toBe('active');
  t.clock.advance(5 * STEP);
  return { username, userId: created.body.id, secret: enrolled.body.secret, methodId: enrolled.body.method.id };
}

const codeNow = (user: EnrolledUser, offsetSteps = 0): string => totpAt(user.secret, t.clock.ms() + offsetSteps * STEP);

/** A 6-digit code that is none of the codes of steps now−2 … now+2. */
function wrongCode(user: EnrolledUser): string {
  const near = new Set([-2, -1, 0, 1, 2].map((o) => codeNow(user, o)));
  let n = Number(codeNow(user));
  let code: string;
  do {
    n = (n + 1) % 1_000_000;
    code = String(n).padStart(6, '0');
  } while (near.has(code));
  return code;
}

const verify = (tenant: Tenant, username: string, code: string): Promise<Reply> => tenant.api('POST', '/v1/verify', { username, code });

async function getUser(tenant: Tenant, username: string): Promise<{ status: string; failed_count: number; locked_until: string | null }> {
  const user = await tenant.admin('GET', `/v1/admin/users/${username}`);
  expect(user.status).toBe(200);
  return { status: user.body.status, failed_count: user.body.failed_count, locked_until: user.body.locked_until };
}

interface AuditRow {
  seq: number;
  at: string;
  tenant_id: string | null;
  actor: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown>;
}

async function auditOf(tenant: Tenant, target: string): Promise<AuditRow[]> {
  const listed = await tenant.admin('GET', '/v1/admin/audit?limit=1000');
  expect(listed.status).toBe(200);
  return (listed.body.records as AuditRow[]).filter((r) => r.target === target).reverse();
}

const APPROVED = { status: 200, body: { result: 'approved', reason: 'approved' } };
const INVALID = { status: 200, body: { result: 'denied', reason: 'invalid_code' } };
const LOCKED = { status: 200, body: { result: 'denied', reason: 'locked_out' } };

function tally(replies: Reply[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of replies) {
    const key = `${r.status} ${r.body?.result ?? r.body?.status ?? r.body?.error?.code}/${r.body?.reason ?? '-'}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

describe('OTP-01: a code is accepted once', () => {
  it('OTP-01: the same code is refused again in its own step and in the next step, still inside the ±1 window', async () => {
    const tenant = defaultTenant();
    const user = await userWithTotp(tenant, 'once@contoso.com');
    const code = codeNow(user);
    expect(await verify(tenant, user.username, code)).toEqual(APPROVED);
    expect(await verify(tenant, user.username, code)).toEqual(INVALID);
    t.clock.advance(STEP - 1);
    expect(await verify(tenant, user.username, code)).toEqual(INVALID);
    t.clock.advance(1);
    // Now the code is the t−1 step, which the window still reaches: refused because it was used.
    expect(codeNow(user, -1)).toBe(code);
    expect(await verify(tenant, user.username, code)).toEqual(INVALID);
    // A code used with /v1/verify does not answer a challenge either.
    const challenge = await tenant.api('POST', '/v1/challenges', { username: user.username, method: 'totp' });
    expect(challenge.status).toBe(201);
    expect(await tenant.api('POST', `/v1/challenges/${challenge.body.id}/answer`, { code })).toEqual({
      status: 200,
      body: { id: challenge.body.id, status: 'pending', type: 'totp', expires_at: challenge.body.expires_at, reason: 'invalid_code' },
    });
    // The current step's code is fresh and still works.
    expect(await tenant.api('POST', `/v1/challenges/${challenge.body.id}/answer`, { code: codeNow(user) })).toEqual({
      status: 200,
      body: { id: challenge.body.id, status: 'approved', type: 'totp', expires_at: challenge.body.expires_at },
    });
  });

  it('OTP-01: the activation code of a new authenticator cannot then be used to sign in', async () => {
    const tenant = defaultTenant();
    expect((await tenant.admin('POST', '/v1/admin/users', { username: 'activation@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const enrolled = await tenant.admin('POST', '/v1/admin/users/activation@contoso.com/methods/totp', {});
    const code = totpAt(enrolled.body.secret, t.clock.ms());
    expect((await tenant.admin('POST', `/v1/admin/users/activation@contoso.com/methods/${enrolled.body.method.id}/activate`, { code })).body.status).toBe('active');
    expect(await verify(tenant, 'activation@contoso.com', code)).toEqual(INVALID);
  });
});

describe('OTP-02: the replay check and the step update are one atomic step', () => {
  let race: Tenant;
  beforeAll(async () => {
    // A high lockout threshold, so that every refusal below is the replay check, not a lockout.
    race = await makeTenant('race', { lockout_threshold: 100 });
  });

  it('OTP-02: 50 concurrent submissions of one valid code over several connections: exactly one wins', async () => {
    const user = await userWithTotp(race, 'race-verify@contoso.com');
    const code = codeNow(user);
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) => send(servers[i % servers.length] as FastifyInstance, race.appKey, 'POST', '/v1/verify', { username: user.username, code })),
    );
    expect(tally(replies)).toEqual({ '200 approved/approved': 1, '200 denied/invalid_code': 49 });
    const audit = await auditOf(race, user.userId);
    expect(audit.filter((r) => r.action === 'verification.approved')).toHaveLength(1);
    // Every loser is recorded as a replay of the code (OTP-09).
    expect(audit.filter((r) => r.action === 'otp.replay')).toHaveLength(49);
    expect((await getUser(race, user.username)).status).toBe('active');
  });

  it('OTP-02: 50 concurrent answers to one challenge with one valid code: exactly one approves it', async () => {
    const user = await userWithTotp(race, 'race-answer@contoso.com');
    const challenge = await race.api('POST', '/v1/challenges', { username: user.username, method: 'totp' });
    expect(challenge.status).toBe(201);
    const code = codeNow(user);
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) => send(servers[i % servers.length] as FastifyInstance, race.appKey, 'POST', `/v1/challenges/${challenge.body.id}/answer`, { code })),
    );
    const approved = replies.filter((r) => r.status === 200 && r.body.status === 'approved');
    expect(approved).toEqual([{ status: 200, body: { id: challenge.body.id, status: 'approved', type: 'totp', expires_at: challenge.body.expires_at } }]);
    // The 49 others were refused: the code was used (still pending, invalid_code) or the challenge was decided (409).
    const losers = replies.filter((r) => !approved.includes(r)).map((r) => (r.status === 409 ? `409 ${r.body.error.code}` : `${r.status} ${r.body.status} ${r.body.reason}`));
    expect(losers).toHaveLength(49);
    expect(losers.filter((l) => l !== '409 CONFLICT' && l !== '200 pending invalid_code')).toEqual([]);
    expect((await race.api('GET', `/v1/challenges/${challenge.body.id}`)).body.status).toBe('approved');
    expect((await auditOf(race, user.userId)).filter((r) => r.action === 'verification.approved')).toHaveLength(1);
  });

  it('OTP-02: replays of a used code do not use up a challenge\'s attempts (they cannot fail the challenge); wrong codes do', async () => {
    const tenant = defaultTenant();
    const user = await userWithTotp(tenant, 'replay-attempts@contoso.com');
    const used = codeNow(user);
    expect(await verify(tenant, user.username, used)).toEqual(APPROVED);
    const challenge = await tenant.api('POST', '/v1/challenges', { username: user.username, method: 'totp' });
    const answers: string[] = [];
    // challenge_max_attempts is 5: six replays leave the challenge pending.
    for (let i = 0; i < 6; i++) answers.push((await tenant.api('POST', `/v1/challenges/${challenge.body.id}/answer`, { code: used })).body.status);
    expect(answers).toEqual(['pending', 'pending', 'pending', 'pending', 'pending', 'pending']);
    // …but they count against the user's lockout: 6 failures.
    expect((await getUser(tenant, user.username)).failed_count).toBe(6);
    t.clock.advance(STEP);
    expect((await tenant.api('POST', `/v1/challenges/${challenge.body.id}/answer`, { code: codeNow(user) })).body.status).toBe('approved');
    // Five wrong codes fail a challenge.
    const other = await tenant.api('POST', '/v1/challenges', { username: user.username, method: 'totp' });
    const wrong: string[] = [];
    for (let i = 0; i < 5; i++) wrong.push((await tenant.api('POST', `/v1/challenges/${other.body.id}/answer`, { code: wrongCode(user) })).body.status);
    expect(wrong).toEqual(['pending', 'pending', 'pending', 'pending', 'failed']);
  });

  it('OTP-02: a lower step after a higher one fails', async () => {
    const user = await userWithTotp(race, 'lower-step@contoso.com');
    const current = codeNow(user);
    const ahead = codeNow(user, +1);
    expect(await verify(race, user.username, ahead)).toEqual(APPROVED);
    expect(await verify(race, user.username, current)).toEqual(INVALID);
    expect(await verify(race, user.username, codeNow(user, -1))).toEqual(INVALID);
    // The next step to come is still good once the clock reaches it… but not the consumed one.
    t.clock.advance(STEP);
    expect(await verify(race, user.username, ahead)).toEqual(INVALID);
    t.clock.advance(STEP);
    expect(await verify(race, user.username, codeNow(user))).toEqual(APPROVED);
  });
});

describe('OTP-03: the window is the current step ±1, or the current step only in strict mode', () => {
  const offsets = [-2, -1, 0, 1, 2];

  async function tryOffsets(tenant: Tenant, prefix: string): Promise<string[]> {
    const results: string[] = [];
    for (const offset of offsets) {
      // Codes are single use: a fresh user for every case.
      const user = await userWithTotp(tenant, `${prefix}${offset + 2}@contoso.com`);
      const reply = await verify(tenant, user.username, codeNow(user, offset));
      results.push(`t${offset >= 0 ? '+' : ''}${offset}: ${reply.body.result}`);
    }
    return results;
  }

  it('OTP-03: default window: t−1, t and t+1 pass; t−2 and t+2 fail', async () => {
    expect(await tryOffsets(defaultTenant(), 'window')).toEqual(['t-2: denied', 't-1: approved', 't+0: approved', 't+1: approved', 't+2: denied']);
  });

  it('OTP-03: strict mode (PATCH settings totp_window 0): only t passes', async () => {
    const strict = await makeTenant('strict', { totp_window: 0 });
    expect((await strict.admin('GET', '/v1/admin/settings')).body.totp_window).toBe(0);
    expect(await tryOffsets(strict, 'strict')).toEqual(['t-2: denied', 't-1: denied', 't+0: approved', 't+1: denied', 't+2: denied']);
  });

  it('OTP-03: a window wider than ±1 cannot be configured', async () => {
    expect(await t.admin('PATCH', '/v1/admin/settings?tenant=default', { totp_window: 2 })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_INPUT', message: 'totp_window: must be a whole number from 0 to 1' } },
    });
  });

  it('OTP-03: a 60-second OATH token from the Azure CSV: steps t−1, t, t+1 pass; t±2 fail', async () => {
    const tenant = defaultTenant();
    const secret = new Secret({ buffer: randomBytes(20).buffer }).base32;
    const lines = ['upn,serial number,secret key,time interval,manufacturer,model'];
    for (let i = 0; i < offsets.length; i++) {
      expect((await tenant.admin('POST', '/v1/admin/users', { username: `sixty${i}@contoso.com`, mfa_state: 'enforced' })).status).toBe(201);
      lines.push(`sixty${i}@contoso.com,SIXTY-${i},${secret},60,Contoso,Hardware60`);
    }
    const imported = await t.admin('POST', '/v1/admin/tokens/import?tenant=default', `${lines.join('\n')}\n`);
    expect(imported.status).toBe(200);
    expect(imported.body.imported).toHaveLength(5);
    expect(imported.body.refused).toEqual([]);
    const results: string[] = [];
    for (const [i, offset] of offsets.entries()) {
      const code = totpAt(secret, t.clock.ms() + offset * 60_000, { period: 60 });
      results.push(`t${offset >= 0 ? '+' : ''}${offset}: ${(await verify(tenant, `sixty${i}@contoso.com`, code)).body.result}`);
    }
    expect(results).toEqual(['t-2: denied', 't-1: approved', 't+0: approved', 't+1: approved', 't+2: denied']);
  });
});

describe('OTP-06: the failure counter is per user, across sessions', () => {
  it('OTP-06: N parallel wrong guesses from N sessions count N; at the threshold every session is locked', async () => {
    const tenant = await makeTenant('sessions');
    const user = await userWithTotp(tenant, 'sessions@contoso.com');
    // Ten sessions: ten challenges, as ten sign-in attempts in ten browsers would open.
    const sessions: string[] = [];
    for (let i = 0; i < 10; i++) {
      const created = await tenant.api('POST', '/v1/challenges', { username: user.username, method: 'totp' });
      expect(created.status).toBe(201);
      sessions.push(created.body.id);
    }
    const wrong = wrongCode(user);
    const first = await Promise.all(sessions.slice(0, 9).map((id) => tenant.api('POST', `/v1/challenges/${id}/answer`, { code: wrong })));
    expect(first.map((r) => `${r.status} ${r.body.status} ${r.body.reason}`)).toEqual(Array.from({ length: 9 }, () => '200 pending invalid_code'));
    expect(await getUser(tenant, user.username)).toEqual({ status: 'active', failed_count: 9, locked_until: null });
    // The tenth session's single wrong guess reaches the threshold (10) for the user.
    const tenth = await tenant.api('POST', `/v1/challenges/${sessions[9] ?? ''}/answer`, { code: wrong });
    expect(`${tenth.body.status} ${tenth.body.reason}`).toBe('pending invalid_code');
    const lockedUntil = new Date(t.clock.ms() + 15 * 60_000).toISOString();
    expect(await getUser(tenant, user.username)).toEqual({ status: 'locked_out', failed_count: 0, locked_until: lockedUntil });
    // Every session is locked now, even with the right code; so is the one-shot verify.
    const right = codeNow(user);
    const after = await Promise.all(sessions.map((id) => tenant.api('POST', `/v1/challenges/${id}/answer`, { code: right })));
    expect(after.map((r) => `${r.status} ${r.body.status} ${r.body.reason}`)).toEqual(Array.from({ length: 10 }, () => '200 denied locked_out'));
    expect(await verify(tenant, user.username, right)).toEqual(LOCKED);
    // A new session does not start a new count either.
    const fresh = await tenant.api('POST', '/v1/challenges', { username: user.username, method: 'totp' });
    expect((await tenant.api('POST', `/v1/challenges/${fresh.body.id}/answer`, { code: right })).body).toEqual({
      id: fresh.body.id,
      status: 'denied',
      type: 'totp',
      expires_at: fresh.body.expires_at,
      reason: 'locked_out',
    });
  });

  it('OTP-06: 50 concurrent wrong guesses with threshold 10: exactly 10 codes are checked, 40 are refused locked_out', async () => {
    const tenant = await makeTenant('guessing');
    const user = await userWithTotp(tenant, 'guessed@contoso.com');
    const wrong = wrongCode(user);
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) => send(servers[i % servers.length] as FastifyInstance, tenant.appKey, 'POST', '/v1/verify', { username: user.username, code: wrong })),
    );
    expect(tally(replies)).toEqual({ '200 denied/invalid_code': 10, '200 denied/locked_out': 40 });
    expect(await getUser(tenant, user.username)).toEqual({ status: 'locked_out', failed_count: 0, locked_until: new Date(t.clock.ms() + 15 * 60_000).toISOString() });
    // The audit shows how many codes were looked at: 10, and one lockout.
    const audit = await auditOf(tenant, user.userId);
    const denied = audit.filter((r) => r.action === 'verification.denied').map((r) => r.detail['reason']);
    expect(denied.filter((reason) => reason === 'invalid_code')).toHaveLength(10);
    expect(audit.filter((r) => r.action === 'user.locked_out').map((r) => r.detail)).toEqual([{ threshold: 10 }]);
    // Refusals of a locked user are audited too, with no target (no code was checked for anyone).
    const all = (await tenant.admin('GET', '/v1/admin/audit?limit=1000')).body.records as AuditRow[];
    expect(all.filter((r) => r.action === 'verification.denied' && r.detail['reason'] === 'locked_out' && r.detail['username'] === user.username)).toHaveLength(40);
  });
});

describe('RL-01: lockout after consecutive failures; unlock; reset', () => {
  it('RL-01: after 100 failures the 101st attempt, with the correct code, is refused; preauth denies; after the lockout minutes a correct code approves and the count reads 0', async () => {
    const tenant = await makeTenant('hundred', { lockout_threshold: 100 });
    const user = await userWithTotp(tenant, 'hundred@contoso.com');
    const wrong = wrongCode(user);
    const replies: Reply[] = [];
    for (let i = 0; i < 100; i++) replies.push(await verify(tenant, user.username, wrong));
    expect(tally(replies)).toEqual({ '200 denied/invalid_code': 100 });
    expect(await verify(tenant, user.username, codeNow(user))).toEqual(LOCKED);
    expect(await tenant.api('POST', '/v1/preauth', { username: user.username })).toMatchObject({ status: 200, body: { result: 'deny', reason: 'locked_out', methods: [] } });
    // Still locked one second before the lockout ends (15 minutes by default)…
    t.clock.advance(15 * 60_000 - 1000);
    expect(await verify(tenant, user.username, codeNow(user))).toEqual(LOCKED);
    expect((await tenant.api('POST', '/v1/preauth', { username: user.username })).body.reason).toBe('locked_out');
    // …and free at its end: the correct code approves and the count reads 0.
    t.clock.advance(1000);
    expect((await tenant.api('POST', '/v1/preauth', { username: user.username })).body).toMatchObject({
      result: 'challenge',
      reason: 'mfa_required',
      methods: [{ id: user.methodId, type: 'totp', label: 'Authenticator app', default: true }],
    });
    expect(await verify(tenant, user.username, codeNow(user))).toEqual(APPROVED);
    expect(await getUser(tenant, user.username)).toEqual({ status: 'active', failed_count: 0, locked_until: null });
  });

  it('RL-01: after POST /unlock a correct code approves and the count reads 0', async () => {
    const tenant = await makeTenant('unlock', { lockout_threshold: 3 });
    const user = await userWithTotp(tenant, 'unlock@contoso.com');
    const wrong = wrongCode(user);
    for (let i = 0; i < 3; i++) expect(await verify(tenant, user.username, wrong)).toEqual(INVALID);
    expect(await verify(tenant, user.username, codeNow(user))).toEqual(LOCKED);
    const unlocked = await tenant.admin('POST', `/v1/admin/users/${user.username}/unlock`);
    expect(unlocked.status).toBe(200);
    expect({ status: unlocked.body.status, failed_count: unlocked.body.failed_count, locked_until: unlocked.body.locked_until }).toEqual({ status: 'active', failed_count: 0, locked_until: null });
    expect(await verify(tenant, user.username, codeNow(user))).toEqual(APPROVED);
    expect(await getUser(tenant, user.username)).toEqual({ status: 'active', failed_count: 0, locked_until: null });
    expect((await auditOf(tenant, user.userId)).filter((r) => r.action === 'user.unlocked')).toHaveLength(1);
  });

  it('RL-01: a success resets the count', async () => {
    const tenant = await makeTenant('success-resets');
    const user = await userWithTotp(tenant, 'resets@contoso.com');
    const wrong = wrongCode(user);
    for (let i = 0; i < 9; i++) await verify(tenant, user.username, wrong);
    expect(await getUser(tenant, user.username)).toEqual({ status: 'active', failed_count: 9, locked_until: null });
    expect(await verify(tenant, user.username, codeNow(user))).toEqual(APPROVED);
    expect(await getUser(tenant, user.username)).toEqual({ status: 'active', failed_count: 0, locked_until: null });
    // Nine more failures do not lock: the count started again from 0.
    for (let i = 0; i < 9; i++) expect(await verify(tenant, user.username, wrong)).toEqual(INVALID);
    expect((await getUser(tenant, user.username)).status).toBe('active');
  });

  it('RL-01: the count restarts lockout_reset_minutes after the first failure, and not a second before', async () => {
    const tenant = await makeTenant('reset-window', { lockout_reset_minutes: 10 });
    const early = await userWithTotp(tenant, 'early@contoso.com');
    const late = await userWithTotp(tenant, 'late@contoso.com');
    for (let i = 0; i < 9; i++) {
      expect(await verify(tenant, early.username, wrongCode(early))).toEqual(INVALID);
      expect(await verify(tenant, late.username, wrongCode(late))).toEqual(INVALID);
    }
    t.clock.advance(10 * 60_000 - 1000);
    // One second before the window ends, the 10th failure locks.
    expect(await verify(tenant, early.username, wrongCode(early))).toEqual(INVALID);
    expect((await getUser(tenant, early.username)).status).toBe('locked_out');
    t.clock.advance(1000);
    // At the end of the window, the 10th failure starts a new count of 1 instead.
    expect(await verify(tenant, late.username, wrongCode(late))).toEqual(INVALID);
    expect(await getUser(tenant, late.username)).toEqual({ status: 'active', failed_count: 1, locked_until: null });
  });
});

describe('OTP-07: HOTP look-ahead, counter and resync (token imported from PSKC)', () => {
  let serials = 0;

  /** RFC 6030 Figure 3 (plain HOTP, RFC 4226 key, 8 digits), unassigned, with its own serial; then assigned. */
  async function hotpUser(tenant: Tenant, username: string): Promise<{ tokenId: string; serial: string }> {
    expect((await tenant.admin('POST', '/v1/admin/users', { username, mfa_state: 'enforced' })).status).toBe(201);
    const serial = `HOTP-${++serials}`;
    const xml = FIGURE3.replace('<SerialNo>987654321</SerialNo>', `<SerialNo>${serial}</SerialNo>`).replace(/^\s*<UserId>.*<\/UserId>\n/gm, '');
    const response = await t.app.inject({
      method: 'POST',
      url: withTenant('/v1/admin/tokens/import', tenant.name),
      headers: { authorization: `Bearer ${t.adminKey}`, 'content-type': 'application/xml' },
      payload: xml,
    });
    expect(response.statusCode).toBe(200);
    const report = response.json();
    expect(report).toEqual({ format: 'pskc', imported: [{ position: report.imported[0]?.position, id: report.imported[0]?.id, serial, username: null }], refused: [] });
    const tokenId: string = report.imported[0].id;
    const assigned = await tenant.admin('POST', `/v1/admin/tokens/${tokenId}/assign`, { username });
    expect(assigned.status).toBe(200);
    expect(assigned.body).toMatchObject({ id: tokenId, serial, username, otp_kind: 'hotp', digits: 8 });
    return { tokenId, serial };
  }

  const hotp = (counter: number): string => hotpAt(RFC4226_KEY_BASE32, counter, 8);

  it('OTP-07: the counter-0 code is accepted once; its replay and the 6-digit truncation are refused', async () => {
    const tenant = defaultTenant();
    await hotpUser(tenant, 'hotp-once@contoso.com');
    expect(hotp(0)).toBe('84755224');
    expect(await verify(tenant, 'hotp-once@contoso.com', '755224')).toEqual(INVALID);
    expect(await verify(tenant, 'hotp-once@contoso.com', hotp(0))).toEqual(APPROVED);
    expect(await verify(tenant, 'hotp-once@contoso.com', hotp(0))).toEqual(INVALID);
    expect(await verify(tenant, 'hotp-once@contoso.com', hotp(1))).toEqual(APPROVED);
  });

  it('OTP-07: a code at counter+s+1 is refused, counter+s is accepted and the counter moves to matched+1; codes ≤ the last counter are refused', async () => {
    const tenant = defaultTenant();
    await hotpUser(tenant, 'hotp-ahead@contoso.com');
    // Look-ahead s = 10 (default) from counter 0: counters 0…10 are reachable, 11 is not.
    expect(await verify(tenant, 'hotp-ahead@contoso.com', hotp(11))).toEqual(INVALID);
    expect(await verify(tenant, 'hotp-ahead@contoso.com', hotp(10))).toEqual(APPROVED);
    // Counter is now 11: every code ≤ 10 is refused, 11 is the next one.
    for (const counter of [10, 9, 5, 0]) expect(await verify(tenant, 'hotp-ahead@contoso.com', hotp(counter))).toEqual(INVALID);
    expect(await verify(tenant, 'hotp-ahead@contoso.com', hotp(11))).toEqual(APPROVED);
    expect(await verify(tenant, 'hotp-ahead@contoso.com', hotp(22))).toEqual(APPROVED);
    expect(await verify(tenant, 'hotp-ahead@contoso.com', hotp(34))).toEqual(INVALID);
  });

  it('OTP-07: the look-ahead is configurable (hotp_look_ahead 2)', async () => {
    const narrow = await makeTenant('narrow-hotp', { hotp_look_ahead: 2 });
    await hotpUser(narrow, 'hotp-narrow@contoso.com');
    expect(await verify(narrow, 'hotp-narrow@contoso.com', hotp(3))).toEqual(INVALID);
    expect(await verify(narrow, 'hotp-narrow@contoso.com', hotp(2))).toEqual(APPROVED);
    expect(await verify(narrow, 'hotp-narrow@contoso.com', hotp(5))).toEqual(APPROVED);
  });

  it('OTP-07: resync beyond the look-ahead needs 2 consecutive codes: it fails with non-consecutive ones and succeeds with 2', async () => {
    const tenant = defaultTenant();
    const { tokenId, serial } = await hotpUser(tenant, 'hotp-resync@contoso.com');
    expect(await verify(tenant, 'hotp-resync@contoso.com', hotp(50))).toEqual(INVALID);
    expect(await tenant.admin('POST', `/v1/admin/tokens/${tokenId}/resync`, { code1: hotp(50), code2: hotp(52) })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_INPUT', message: `code2: the two codes are not consecutive codes of token ${serial} within 1000 counters` } },
    });
    expect((await tenant.admin('POST', `/v1/admin/tokens/${tokenId}/resync`, { code1: hotp(50), code2: hotp(51) })).status).toBe(200);
    // Both resync codes are consumed; the next code after them is accepted.
    expect(await verify(tenant, 'hotp-resync@contoso.com', hotp(50))).toEqual(INVALID);
    expect(await verify(tenant, 'hotp-resync@contoso.com', hotp(51))).toEqual(INVALID);
    expect(await verify(tenant, 'hotp-resync@contoso.com', hotp(52))).toEqual(APPROVED);
    // The same two codes cannot resync again.
    expect((await tenant.admin('POST', `/v1/admin/tokens/${tokenId}/resync`, { code1: hotp(50), code2: hotp(51) })).status).toBe(400);
  });
});

describe('OTP-08: only the server clock decides', () => {
  it('OTP-08: a timestamp field in the verify or answer body is refused 400', async () => {
    const tenant = defaultTenant();
    const user = await userWithTotp(tenant, 'clock@contoso.com');
    expect(await tenant.api('POST', '/v1/verify', { username: user.username, code: codeNow(user), timestamp: t.clock.ms() })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_INPUT', message: 'timestamp: is not a known field' } },
    });
    const challenge = await tenant.api('POST', '/v1/challenges', { username: user.username, method: 'totp' });
    expect(await tenant.api('POST', `/v1/challenges/${challenge.body.id}/answer`, { code: codeNow(user), timestamp: t.clock.ms() })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_INPUT', message: 'timestamp: is not a known field' } },
    });
    // Refused before any code was checked: nothing was counted.
    expect((await getUser(tenant, user.username)).failed_count).toBe(0);
  });

  it('OTP-08: a code for the time the client claims is refused; it passes only when the server clock gets there', async () => {
    const tenant = defaultTenant();
    const user = await userWithTotp(tenant, 'claimed-time@contoso.com');
    const claimed = t.clock.ms() + 60 * 60_000;
    const claimedCode = totpAt(user.secret, claimed);
    const reply = await send(t.app, t.appKey, 'POST', '/v1/verify', { username: user.username, code: claimedCode }, { date: new Date(claimed).toUTCString(), 'x-client-time': String(claimed) });
    expect(reply).toEqual(INVALID);
    t.clock.set(claimed);
    expect(await verify(tenant, user.username, claimedCode)).toEqual(APPROVED);
  });
});

describe('OTP-09: a replay is logged and rejected', () => {
  it('OTP-09: a replayed code is refused and writes an otp.replay audit record naming the user, method and IP', async () => {
    const tenant = defaultTenant();
    const user = await userWithTotp(tenant, 'replayed@contoso.com');
    const applications = await t.admin('GET', '/v1/admin/applications?tenant=default');
    const appId: string = applications.body.applications.find((a: { name: string }) => a.name === 'test app').id;
    const code = codeNow(user);
    expect(await tenant.api('POST', '/v1/verify', { username: user.username, code, ip: '203.0.113.7' })).toEqual(APPROVED);
    expect(await tenant.api('POST', '/v1/verify', { username: user.username, code, ip: '198.51.100.23' })).toEqual(INVALID);
    const replays = (await auditOf(tenant, user.userId)).filter((r) => r.action === 'otp.replay');
    expect(replays.map(({ seq: _seq, ...rest }) => rest)).toEqual([
      {
        at: new Date(t.clock.ms()).toISOString(),
        tenant_id: t.tenant.id,
        actor: `application:${appId}`,
        action: 'otp.replay',
        target: user.userId,
        detail: { username: user.username, ip: '198.51.100.23', challenge: null, method: user.methodId },
      },
    ]);
    // A wrong code is not a replay: no second record.
    expect(await verify(tenant, user.username, wrongCode(user))).toEqual(INVALID);
    expect((await auditOf(tenant, user.userId)).filter((r) => r.action === 'otp.replay')).toHaveLength(1);
  });

  it('OTP-09: a replay on a challenge names the challenge', async () => {
    const tenant = defaultTenant();
    const user = await userWithTotp(tenant, 'replayed-challenge@contoso.com');
    const code = codeNow(user);
    expect(await verify(tenant, user.username, code)).toEqual(APPROVED);
    const challenge = await tenant.api('POST', '/v1/challenges', { username: user.username, method: 'totp', context: { ip: '192.0.2.1' } });
    expect((await tenant.api('POST', `/v1/challenges/${challenge.body.id}/answer`, { code })).body.reason).toBe('invalid_code');
    const replays = (await auditOf(tenant, user.userId)).filter((r) => r.action === 'otp.replay');
    expect(replays.map((r) => r.detail)).toEqual([{ username: user.username, ip: '192.0.2.1', challenge: challenge.body.id, method: user.methodId }]);
  });
});
