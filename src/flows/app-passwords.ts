import { hkdfSync, randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { sql, type Kysely } from 'kysely';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import type { PolicyRefusalReason } from '../core/policies.js';
import { normalizeUsername } from '../core/user-fields.js';
import {
  appPasswordMatches,
  appPasswordNeedsRehash,
  generateAppPassword,
  hashAppPassword,
  normalizeAppPassword,
} from '../methods/app-password/app-password.js';
import { actorOf, type Principal, type Services } from '../services.js';
import { reserveAttempt } from '../store/attempts.js';
import { purgeWindows, takeFromWindow } from '../store/rate-windows.js';
import type { Database, TenantRow, UserRow } from '../store/schema.js';
import { writeTransaction } from '../store/write-transaction.js';
import { queueUserNotification } from './notifications.js';
import { policyCountColumn, signInRefusal } from './policies.js';
import { tenantSettings } from './tenants.js';

/**
 * App passwords (Azure MFA "app passwords"; SECURITY.md APP-01): a generated password per device
 * for a legacy client that cannot do MFA (IMAP, EAS, old SMTP). A single factor by definition.
 *
 * Creating one:
 * - only when the tenant allows them (`app_passwords_allowed`, off by default) — else 403;
 * - only for a user whose MFA state is enabled or enforced: a user with MFA disabled signs in
 *   with the password alone everywhere, so an app password would only be one more credential
 *   to lose (Azure offers them only to users with per-user MFA) — else 409;
 * - named after its device (1–100 characters, no control characters), one name once per user
 *   (409), at most 40 per user (Azure's limit; 409 LIMIT_REACHED), checked under the user's lock;
 * - the password is generated (methods/app-password), shown once, and only its argon2id hash
 *   is stored. The user is told (notification `app_password_created`, SECURITY.md BND-01).
 * Listing never shows a password or hash; revoking deletes the row, so the very next use fails.
 *
 * Verifying one (`POST /v1/app-passwords/verify`): see verifyAppPassword.
 */
export const MAX_APP_PASSWORDS_PER_USER = 40;
/** Verifications per user (by username, known or not) per minute, taken before any hash is computed. */
export const VERIFY_LIMIT_PER_USER = 20;
/** Verifications per client IP per minute (the application's `ip`, else the request's address). */
export const VERIFY_LIMIT_PER_IP = 100;
const VERIFY_WINDOW_MS = 60_000;

export interface AppPasswordView {
  id: string;
  name: string;
  created_at: string;
  last_used_at: string | null;
  last_used_ip: string | null;
}

export interface CreatedAppPassword {
  id: string;
  name: string;
  /** The password, shown this once; only its hash is kept. */
  password: string;
  created_at: string;
}

/** The pepper of app password hashes (argon2's secret input), derived from the audit key: it lives in the keyring, never in the database. */
const peppers = new WeakMap<Buffer, Buffer>();
function pepperOf(services: Services): Buffer {
  let pepper = peppers.get(services.keyring.auditKey);
  if (pepper === undefined) {
    pepper = Buffer.from(hkdfSync('sha256', services.keyring.auditKey, Buffer.alloc(0), 'countersign app-password v1', 32));
    peppers.set(services.keyring.auditKey, pepper);
  }
  return pepper;
}

/**
 * A hash of no one's password, to check a guess against when the user is unknown or has no app
 * passwords, so the answer takes as long as for a user with one (no username probing by timing).
 */
const decoys = new WeakMap<Buffer, Promise<string>>();
function decoyHash(services: Services): Promise<string> {
  const pepper = pepperOf(services);
  let decoy = decoys.get(pepper);
  if (decoy === undefined) {
    decoy = hashAppPassword(generateAppPassword(services.random), pepper);
    decoys.set(pepper, decoy);
  }
  return decoy;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());

export function validateAppPasswordName(value: unknown): string {
  const name = typeof value === 'string' ? value.trim() : '';
  // Control characters, line separators and bidirectional overrides (LOG-02; no name that reads differently than it is).
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (name === '' || name.length > 100 || /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(name)) {
    throw invalidInput('name', 'must be 1–100 characters without control characters (name it after the device, e.g. "Alice’s iPhone Mail")');
  }
  return name;
}

export async function createAppPassword(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, nameInput: unknown): Promise<CreatedAppPassword> {
  const name = validateAppPasswordName(nameInput);
  if (!tenantSettings(tenant).app_passwords_allowed) {
    throw new CountersignError('FORBIDDEN', `app passwords are turned off for tenant ${tenant.name}; an administrator can allow them (setting app_passwords_allowed=true)`);
  }
  if (user.mfa_state === 'disabled') {
    throw new CountersignError('CONFLICT', `user ${user.username} has MFA disabled, so legacy clients already sign in with the password alone; set the MFA state to enabled or enforced first`);
  }
  const password = generateAppPassword(services.random);
  // Hashed before the transaction: argon2 takes tens of milliseconds, and no lock is held meanwhile.
  const passwordHash = await hashAppPassword(password, pepperOf(services));
  const id = randomUUID();
  const now = services.clock().getTime();
  await writeTransaction(services.db, services.store.dialect, async (trx) => {
    // The cap is checked and the row inserted under the write lock (SQLite) or the user's row
    // lock (PostgreSQL), so racing creates cannot exceed 40.
    let lock = trx.selectFrom('users').select('id').where('id', '=', user.id).where('tenant_id', '=', tenant.id);
    if (services.store.dialect === 'postgres') lock = lock.forUpdate();
    if ((await lock.executeTakeFirst()) === undefined) throw notFound(`user ${user.username}`);
    const existing = await trx.selectFrom('app_passwords').select('name').where('user_id', '=', user.id).execute();
    if (existing.some((row) => row.name === name)) throw duplicate(user, name);
    if (existing.length >= MAX_APP_PASSWORDS_PER_USER) {
      throw new CountersignError('LIMIT_REACHED', `user ${user.username} already has ${MAX_APP_PASSWORDS_PER_USER} app passwords, the most allowed; revoke one first`);
    }
    const inserted = await trx
      .insertInto('app_passwords')
      .values({ id, tenant_id: tenant.id, user_id: user.id, name, password_hash: passwordHash, created_at: now, last_used_at: null, last_used_ip: null })
      .onConflict((oc) => oc.columns(['user_id', 'name']).doNothing())
      .executeTakeFirst();
    if (inserted.numInsertedOrUpdatedRows !== 1n) throw duplicate(user, name);
  });
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'app_password.created', target: user.id, detail: { app_password: id, name } });
  await queueUserNotification(services, tenant, user.id, 'app_password_created', { name, at: new Date(now).toISOString() });
  return { id, name, password, created_at: new Date(now).toISOString() };
}

function duplicate(user: UserRow, name: string): CountersignError {
  return new CountersignError('CONFLICT', `user ${user.username} already has an app password named "${name}"; app passwords are one per device, so pick another name or revoke that one`);
}

/** The user's app passwords, oldest first: never a password or its hash. */
export async function listAppPasswords(services: Services, user: UserRow): Promise<AppPasswordView[]> {
  const rows = await services.db
    .selectFrom('app_passwords')
    .select(['id', 'name', 'created_at', 'last_used_at', 'last_used_ip'])
    .where('user_id', '=', user.id)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map((r) => ({ id: r.id, name: r.name, created_at: iso(r.created_at) ?? '', last_used_at: iso(r.last_used_at), last_used_ip: r.last_used_ip }));
}

/** Revokes one app password, by id or name (the id wins when a name looks like an id); its next use fails. */
export async function revokeAppPassword(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, ref: string): Promise<void> {
  const row = await services.db
    .selectFrom('app_passwords')
    .select(['id', 'name'])
    .where('user_id', '=', user.id)
    .where('tenant_id', '=', tenant.id)
    .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
    .orderBy(sql`case when ${sql.ref('id')} = ${ref} then 0 else 1 end`)
    .executeTakeFirst();
  if (row === undefined) throw notFound(`app password ${ref} of user ${user.username}`);
  const deleted = await services.db.deleteFrom('app_passwords').where('id', '=', row.id).where('user_id', '=', user.id).executeTakeFirst();
  // Revoked by a racing request meanwhile: it is gone either way, but only one revocation is recorded.
  if (deleted.numDeletedRows !== 1n) throw notFound(`app password ${ref} of user ${user.username}`);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'app_password.revoked', target: user.id, detail: { app_password: row.id, name: row.name } });
}

/** Revokes every app password of the user; returns how many there were. */
export async function revokeAllAppPasswords(services: Services, principal: Principal, tenant: TenantRow, user: UserRow): Promise<number> {
  const deleted = await services.db.deleteFrom('app_passwords').where('user_id', '=', user.id).where('tenant_id', '=', tenant.id).executeTakeFirst();
  const revoked = Number(deleted.numDeletedRows);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'app_password.revoked_all', target: user.id, detail: { revoked } });
  return revoked;
}

export type AppPasswordReason = 'approved' | 'invalid_password' | 'app_passwords_disabled' | 'blocked' | 'locked_out' | PolicyRefusalReason;

export interface AppPasswordOutcome {
  result: 'approved' | 'denied';
  reason: AppPasswordReason;
}

export interface AppPasswordVerifyRequest {
  username: unknown;
  password: unknown;
  /** "legacy" (the default: IMAP, EAS, SMTP, …) or "browser" (refused). */
  client?: unknown;
  /** The client's IP address as the application saw it. */
  ip?: unknown;
}

/**
 * `POST /v1/app-passwords/verify`: a legacy client signs in with an app password. In order:
 * 1. only legacy clients: a browser sign-in must do MFA, so `client: "browser"` is refused (403,
 *    app_password_not_for_browser) before anything is checked — APP-01 "accepted only on legacy
 *    protocol endpoints";
 * 2. the tenant must allow app passwords now (`app_passwords_disabled` otherwise: turning the
 *    setting off stops existing ones too);
 * 3. rate limits, per client IP and per username, one atomic window each (store/rate-windows.ts)
 *    → 429 with Retry-After, before any hash is computed;
 * 4. a blocked or locked-out user is refused (`blocked`, `locked_out`) without hashing;
 * 5. the guess is checked against the user's app passwords (argon2id, constant time; at most 40,
 *    the most recently used first). An unknown user or one with none is checked against a decoy
 *    hash, and answers `invalid_password` like a wrong password (no username probing);
 * 6. in one transaction: a wrong password is a failed authentication and counts towards the
 *    user's lockout (store/attempts.ts, as for codes, SECURITY.md RL-01); a right one approves
 *    only if its row still exists (`UPDATE … WHERE id = ?` changed one row: a password revoked
 *    meanwhile fails) and the user is still neither blocked nor locked — and the tenant's
 *    conditional access policies do not refuse the sign-in (client `legacy`, the `ip` above, the
 *    calling application): a `block` policy denies it as `policy_block` (the usual "block legacy
 *    authentication" policy stops app passwords too, whether or not the application asked
 *    preauth), `require_phishing_resistant` as `phishing_resistant_required` (SECURITY.md WA-03).
 *    The policies are consulted only for a right password, and only when the tenant has enabled
 *    ones (its `policy_count`, read with the user): a wrong password is a failure as ever, and an
 *    unknown user still answers invalid_password. A refused password is not marked used. A success does not clear
 *    the failure count: the count also guards the user's second factors, and a single factor must
 *    not reset it. The sign-in is recorded as single factor (`app_password.used`), with the
 *    password's name and the IP, and never feeds MFA caching or remembered devices.
 * The password itself is never logged, audited or stored.
 */
export async function verifyAppPassword(services: Services, principal: Principal, tenant: TenantRow, request: AppPasswordVerifyRequest, requestIp?: string): Promise<AppPasswordOutcome> {
  const username = normalizeUsername(request.username);
  if (typeof request.password !== 'string' || request.password.length === 0 || request.password.length > 200) throw invalidInput('password', 'must be the app password (1–200 characters)');
  const client = request.client ?? 'legacy';
  if (client !== 'legacy' && client !== 'browser') throw invalidInput('client', 'must be "legacy" or "browser"');
  if (request.ip !== undefined && request.ip !== null && (typeof request.ip !== 'string' || isIP(request.ip) === 0)) throw invalidInput('ip', 'must be an IPv4 or IPv6 address');
  const ip = typeof request.ip === 'string' ? request.ip : (requestIp ?? null);
  const now = services.clock().getTime();
  const auditBase = { tenantId: tenant.id, actor: actorOf(principal) };
  const detailBase = { username, ip, client };

  if (client === 'browser') {
    await services.audit({ ...auditBase, action: 'app_password.denied', target: null, detail: { ...detailBase, reason: 'app_password_not_for_browser' } });
    throw new CountersignError('FORBIDDEN', 'client: app passwords are only for legacy clients that cannot do MFA (IMAP, EAS, SMTP); a browser sign-in needs a second factor (app_password_not_for_browser)');
  }
  const settings = tenantSettings(tenant);
  if (!settings.app_passwords_allowed) {
    await services.audit({ ...auditBase, action: 'app_password.denied', target: null, detail: { ...detailBase, reason: 'app_passwords_disabled' } });
    return { result: 'denied', reason: 'app_passwords_disabled' };
  }
  await admitVerification(services, tenant, username, ip, now);

  const user = await services.db
    .selectFrom('users')
    .innerJoin('tenants', 'tenants.id', 'users.tenant_id')
    .select(['users.id', 'users.status', 'users.blocked_until', 'users.locked_until', policyCountColumn()])
    .where('users.tenant_id', '=', tenant.id)
    .where('users.username', '=', username)
    .executeTakeFirst();
  const refused = user === undefined ? undefined : refusal(user, now);
  if (user !== undefined && refused !== undefined) {
    await services.audit({ ...auditBase, action: 'app_password.denied', target: user.id, detail: { ...detailBase, reason: refused } });
    return { result: 'denied', reason: refused };
  }

  const candidates =
    user === undefined
      ? []
      : await services.db
          .selectFrom('app_passwords')
          .select(['id', 'name', 'password_hash'])
          .where('user_id', '=', user.id)
          .orderBy(sql`coalesce(${sql.ref('last_used_at')}, ${sql.ref('created_at')})`, 'desc')
          .orderBy('id')
          .execute();
  const letters = normalizeAppPassword(request.password);
  const pepper = pepperOf(services);
  let match: (typeof candidates)[number] | undefined;
  if (letters !== undefined) {
    if (candidates.length === 0) await appPasswordMatches(await decoyHash(services), letters, pepper);
    for (const candidate of candidates) {
      if (await appPasswordMatches(candidate.password_hash, letters, pepper)) {
        match = candidate;
        break;
      }
    }
  }
  // Parameters raised since it was made (PWD-01): the matched password is rehashed as it is used.
  const rehashed = match !== undefined && letters !== undefined && appPasswordNeedsRehash(match.password_hash) ? await hashAppPassword(letters, pepper) : undefined;
  // Conditional access, for a right password only (see above).
  const applicationId = principal.kind === 'application' ? principal.applicationId : null;
  const policyRefused =
    match !== undefined && user !== undefined
      ? await signInRefusal(services, tenant, { enabledPolicies: Number(user.policy_count), userId: user.id, username, applicationId, client: 'legacy', ip })
      : null;

  const policy = { threshold: settings.lockout_threshold, resetMinutes: settings.lockout_reset_minutes, lockoutMinutes: settings.lockout_minutes };
  return services.writes.run(async (db, record): Promise<AppPasswordOutcome> => {
    if (user === undefined) {
      record({ ...auditBase, action: 'app_password.denied', target: null, detail: { ...detailBase, reason: 'unknown_user' } });
      return { result: 'denied', reason: 'invalid_password' };
    }
    if (match !== undefined) {
      const current = await db.selectFrom('users').select(['status', 'blocked_until', 'locked_until']).where('id', '=', user.id).executeTakeFirst();
      const refusedNow = current === undefined ? 'invalid_password' : refusal(current, now);
      if (refusedNow !== undefined) {
        // Blocked or locked (or deleted) by a racing request between the check above and now.
        record({ ...auditBase, action: 'app_password.denied', target: user.id, detail: { ...detailBase, reason: refusedNow } });
        return { result: 'denied', reason: refusedNow };
      }
      if (policyRefused !== null) {
        record({ ...auditBase, action: 'app_password.denied', target: user.id, detail: { ...detailBase, app_password: match.id, reason: policyRefused.reason, policy: policyRefused.policy } });
        return { result: 'denied', reason: policyRefused.reason };
      }
      // Single use is not the point here, revocation is: the row must still be there.
      const used = await db
        .updateTable('app_passwords')
        .set({ last_used_at: now, last_used_ip: ip, ...(rehashed === undefined ? {} : { password_hash: rehashed }) })
        .where('id', '=', match.id)
        .where('user_id', '=', user.id)
        .executeTakeFirst();
      if (used.numUpdatedRows === 1n) {
        record({ ...auditBase, action: 'app_password.used', target: user.id, detail: { ...detailBase, app_password: match.id, name: match.name, single_factor: true } });
        return { result: 'approved', reason: 'approved' };
      }
      // Revoked between the check and now: a failure like any other wrong password.
    }
    const reservation = await reserveAttempt(db, tenant.id, username, policy, now, 'failure');
    if (!reservation.reserved) {
      const reason = await whyRefused(db, user.id, now);
      record({ ...auditBase, action: 'app_password.denied', target: user.id, detail: { ...detailBase, reason } });
      return { result: 'denied', reason };
    }
    record({ ...auditBase, action: 'app_password.denied', target: user.id, detail: { ...detailBase, reason: 'invalid_password' } });
    if (reservation.lockedNow) record({ ...auditBase, action: 'user.locked_out', target: user.id, detail: { threshold: settings.lockout_threshold } });
    return { result: 'denied', reason: 'invalid_password' };
  });
}

/** Fixed windows per client IP and per username (SECURITY.md APP-01 "rate-limited"): 429 with Retry-After. */
async function admitVerification(services: Services, tenant: TenantRow, username: string, ip: string | null, now: number): Promise<void> {
  const limits: [string, number, string][] = [];
  if (ip !== null) limits.push([`${tenant.id}:app-password:ip:${ip}`, VERIFY_LIMIT_PER_IP, 'this IP address']);
  limits.push([`${tenant.id}:app-password:user:${username}`, VERIFY_LIMIT_PER_USER, 'this user']);
  for (const [key, max, what] of limits) {
    const take = await takeFromWindow(services.db, key, max, VERIFY_WINDOW_MS, now);
    if (!take.allowed) throw new CountersignError('RATE_LIMITED', `too many app password sign-ins for ${what}: at most ${max} a minute`, { retryAfter: take.retryAfterSeconds });
  }
  // Windows older than a day are never read again (about one call in a hundred sweeps them).
  if ((services.random(1)[0] ?? 0) < 3) await purgeWindows(services.db, now - 86_400_000);
}

type UserState = { status: string; blocked_until: number | null; locked_until: number | null };

function refusal(user: UserState, now: number): 'blocked' | 'locked_out' | undefined {
  if (user.status === 'blocked' && (user.blocked_until === null || Number(user.blocked_until) > now)) return 'blocked';
  if (user.locked_until !== null && Number(user.locked_until) > now) return 'locked_out';
  return undefined;
}

async function whyRefused(db: Kysely<Database>, userId: string, now: number): Promise<'blocked' | 'locked_out' | 'invalid_password'> {
  const user = await db.selectFrom('users').select(['status', 'blocked_until', 'locked_until']).where('id', '=', userId).executeTakeFirst();
  return user === undefined ? 'invalid_password' : (refusal(user, now) ?? 'locked_out');
}
