import { createHash, randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import { maskPhone } from '../core/phone.js';
import { normalizePhone, parsePhoneType } from '../core/user-fields.js';
import { summarizeMethod } from '../methods/method-view.js';
import type { MethodView } from '../methods/method-view.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { EnrollmentLinksTable } from '../store/schema-enrollment.js';
import type { Database, TenantRow, UserRow } from '../store/schema.js';
import type { ChallengeView } from './challenge-state.js';
import { activateMethod, enrollTotp, promoteEnabledUser, type TotpEnrollment } from './methods.js';
import { userPhoneMethods } from './phone-methods.js';
import { confirmPhoneVerification, startPhoneVerification, type PhoneVerificationView } from './phone-verification.js';
import { serverBase, startActivation, userPushMethods } from './push.js';
import { queueUserNotification } from './notifications.js';
import { tenantSettings } from './tenants.js';
import { activeCodeMethods } from './verify-code.js';

/**
 * Enrollment links (Azure "require users to register", Duo enrollment links): an administrator
 * gives a user a link; the link opens a self-service API (`/v1/enrollment/*`, the token as
 * bearer) with which the user's browser registers the methods the link allows, reusing the same
 * flows as the admin API (TOTP enrollment, push activation, phone verification).
 *
 * - The token is `cse_` + 256 random bits, shown once; only its SHA-256 is stored. The URL
 *   carries it in the fragment (`${public_url}/authenticator/#enroll=…`, the authenticator web app
 *   opens it), which browsers never send, so it is in no request line or access log.
 * - Through a link the user only adds: a phone number of a type that is already verified is not
 *   replaced (409); a link has at most 3 open push activation URLs, and a device that activates
 *   with one counts as a method registered through the link.
 * - One open link per user: a new one revokes the open one. An administrator can revoke it.
 * - Life: 7 days by default, at most 30. The link is **spent when the user completes**
 *   (`POST /v1/enrollment/complete`, one atomic UPDATE: of 50 racing completions one wins), and
 *   at the latest **15 minutes after the first method is registered** through it — time to add a
 *   backup method, not a standing credential that could add methods for weeks.
 * - A spent, revoked, expired or unknown link is refused with 401 and a message that says which.
 * - Completing needs at least one registered method, and makes an `enabled` user `enforced`
 *   (Azure: "an Enabled user who completes registration becomes Enforced"); so does the first
 *   activation of a TOTP method or proof of a phone number.
 * - Every step is audited with the actor `enrollment-link:<id>`; the token never is.
 */
export const ENROLLMENT_DEFAULT_SECONDS = 7 * 24 * 3600;
export const ENROLLMENT_MAX_SECONDS = 30 * 24 * 3600;
/** After the first method is registered, the link stays open this long at most (for a backup method). */
export const AFTER_FIRST_METHOD_MS = 15 * 60_000;
/** The methods a user can register through a link (security keys come with the web portal). */
export const ENROLLABLE_METHODS = ['totp', 'push', 'sms', 'voice'] as const;
export type EnrollableMethod = (typeof ENROLLABLE_METHODS)[number];
const TOKEN_PREFIX = 'cse_';
/** A link has at most this many push activation URLs open (unused, unexpired) at once. */
export const MAX_OPEN_ACTIVATIONS = 3;
/** … and at most this many in its whole life (a used activation does not free a place). */
export const MAX_ACTIVATIONS = 5;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());

export interface CreatedEnrollmentLink {
  id: string;
  username: string;
  /** `${public_url}/authenticator/#enroll=…` (the authenticator web app): shown once. */
  enrollment_url: string;
  /** The bearer token of the self-service API: shown once, only its hash is kept. */
  token: string;
  methods: EnrollableMethod[];
  expires_at: string;
}

export interface EnrollmentLinkView {
  id: string;
  username: string;
  methods: string[];
  status: 'open' | 'used' | 'revoked' | 'expired';
  created_by: string;
  created_at: string;
  expires_at: string;
  first_method_at: string | null;
  used_at: string | null;
  revoked_at: string | null;
}

/** What a link's holder is: the link, its user and tenant. */
export interface EnrollmentSession {
  link: EnrollmentLinksTable;
  user: UserRow;
  tenant: TenantRow;
  /** The link's methods that the tenant still allows now. */
  methods: EnrollableMethod[];
}

function statusOf(link: EnrollmentLinksTable, now: number): EnrollmentLinkView['status'] {
  if (link.used_at !== null) return 'used';
  if (link.revoked_at !== null) return 'revoked';
  return Number(link.expires_at) > now ? 'open' : 'expired';
}

function viewLink(link: EnrollmentLinksTable, username: string, now: number): EnrollmentLinkView {
  return {
    id: link.id,
    username,
    methods: link.methods.split(',').filter(Boolean),
    status: statusOf(link, now),
    created_by: link.created_by,
    created_at: iso(link.created_at) ?? '',
    expires_at: iso(link.expires_at) ?? '',
    first_method_at: iso(link.first_method_at),
    used_at: iso(link.used_at),
    revoked_at: iso(link.revoked_at),
  };
}

/** The enrollable methods the tenant allows now. */
function tenantEnrollable(tenant: TenantRow): EnrollableMethod[] {
  const allowed = tenantSettings(tenant).allowed_methods;
  return ENROLLABLE_METHODS.filter((m) => allowed.includes(m));
}

export function parseExpiresIn(value: unknown, field = 'expires_in_seconds'): number {
  const seconds = value ?? ENROLLMENT_DEFAULT_SECONDS;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 60 || seconds > ENROLLMENT_MAX_SECONDS) {
    throw invalidInput(field, `must be a whole number of seconds from 60 to ${ENROLLMENT_MAX_SECONDS} (30 days); the default is ${ENROLLMENT_DEFAULT_SECONDS} (7 days)`);
  }
  return seconds;
}

function parseMethods(tenant: TenantRow, value: unknown): EnrollableMethod[] {
  const allowed = tenantEnrollable(tenant);
  if (value === undefined) {
    if (allowed.length === 0) throw new CountersignError('CONFLICT', `tenant ${tenant.name} allows none of ${ENROLLABLE_METHODS.join(', ')}: nothing could be registered through a link`);
    return allowed;
  }
  if (!Array.isArray(value) || value.length === 0 || value.some((m) => typeof m !== 'string')) throw invalidInput('methods', `must be a non-empty list of ${ENROLLABLE_METHODS.join(', ')}`);
  const methods = [...new Set(value as string[])];
  for (const method of methods) {
    if (!(ENROLLABLE_METHODS as readonly string[]).includes(method)) throw invalidInput('methods', `${method} cannot be registered through a link; choose from ${ENROLLABLE_METHODS.join(', ')}`);
    if (!(allowed as string[]).includes(method)) throw invalidInput('methods', `${method} is not among the tenant's allowed_methods`);
  }
  return ENROLLABLE_METHODS.filter((m) => methods.includes(m));
}

/**
 * Creates the user's enrollment link (replacing an open one). `expires_in_seconds`: 60 s to 30
 * days, 7 days by default; `methods`: a subset of the tenant's allowed methods (default: all of
 * them that can be registered through a link).
 */
export async function createEnrollmentLink(
  services: Services,
  principal: Principal,
  tenant: TenantRow,
  user: UserRow,
  input: { expires_in_seconds?: unknown; methods?: unknown },
): Promise<CreatedEnrollmentLink> {
  const seconds = parseExpiresIn(input.expires_in_seconds);
  const methods = parseMethods(tenant, input.methods);
  const token = `${TOKEN_PREFIX}${services.random(32).toString('base64url')}`;
  const now = services.clock().getTime();
  const row: EnrollmentLinksTable = {
    id: randomUUID(),
    tenant_id: tenant.id,
    user_id: user.id,
    token_hash: sha256(token),
    methods: methods.join(','),
    created_by: actorOf(principal),
    created_at: now,
    expires_at: now + seconds * 1000,
    first_method_at: null,
    used_at: null,
    revoked_at: null,
  };
  await services.writes.run(async (db, record) => {
    const replaced = await db
      .updateTable('enrollment_links')
      .set({ revoked_at: now })
      .where('user_id', '=', user.id)
      .where('used_at', 'is', null)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .returning('id')
      .execute();
    await endLinkActivations(db, replaced.map((old) => old.id), now);
    for (const old of replaced) record({ tenantId: tenant.id, actor: actorOf(principal), action: 'enrollment.link_revoked', target: user.id, detail: { link: old.id, replaced_by: row.id } });
    await db.insertInto('enrollment_links').values(row).execute();
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'enrollment.link_created', target: user.id, detail: { link: row.id, username: user.username, methods: row.methods, expires_at: iso(row.expires_at) } });
  });
  return {
    id: row.id,
    username: user.username,
    // In the fragment: browsers never send it, so the token is in no request line or access log.
    // The Countersign Authenticator web app opens it (web/authenticator/src/enrollment.ts).
    enrollment_url: `${await serverBase(services)}/authenticator/#enroll=${token}`,
    token,
    methods,
    expires_at: iso(row.expires_at) ?? '',
  };
}

/** Revokes the user's open link; 404 when there is none. */
export async function revokeEnrollmentLink(services: Services, principal: Principal, tenant: TenantRow, user: UserRow): Promise<EnrollmentLinkView> {
  const now = services.clock().getTime();
  const revoked = await services.writes.run(async (db, record) => {
    const row = await db
      .updateTable('enrollment_links')
      .set({ revoked_at: now })
      .where('user_id', '=', user.id)
      .where('tenant_id', '=', tenant.id)
      .where('used_at', 'is', null)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .returningAll()
      .executeTakeFirst();
    if (row !== undefined) await endLinkActivations(db, [row.id], now);
    if (row !== undefined) record({ tenantId: tenant.id, actor: actorOf(principal), action: 'enrollment.link_revoked', target: user.id, detail: { link: row.id } });
    return row;
  });
  if (revoked === undefined) throw notFound(`an open enrollment link of user ${user.username}`);
  return viewLink(revoked, user.username, now);
}

/** The user's links, newest first (never a token). */
export async function listEnrollmentLinks(services: Services, tenant: TenantRow, user: UserRow): Promise<EnrollmentLinkView[]> {
  const rows = await services.db.selectFrom('enrollment_links').selectAll().where('user_id', '=', user.id).where('tenant_id', '=', tenant.id).orderBy('created_at', 'desc').orderBy('id').limit(50).execute();
  const now = services.clock().getTime();
  return rows.map((r) => viewLink(r, user.username, now));
}

/**
 * The holder of a token: its link, user and tenant, or 401 saying why not (unknown, used,
 * revoked, expired). Only tokens of enrollment links are looked up: an API or admin key is
 * refused by its form before any query.
 */
export async function openEnrollment(services: Services, token: string | undefined): Promise<EnrollmentSession> {
  if (token === undefined || !token.startsWith(TOKEN_PREFIX) || token.length > 100) {
    throw new CountersignError('UNAUTHORIZED', 'authorization: send "Authorization: Bearer <token>" with the token of the enrollment link (cse_…)');
  }
  const link = await services.db.selectFrom('enrollment_links').selectAll().where('token_hash', '=', sha256(token)).executeTakeFirst();
  if (link === undefined) throw new CountersignError('UNAUTHORIZED', 'the enrollment link is not valid: ask your administrator for a new one');
  const now = services.clock().getTime();
  const status = statusOf(link, now);
  if (status === 'used') throw new CountersignError('UNAUTHORIZED', 'the enrollment link was already used: registration is complete; ask your administrator for a new link to register more');
  if (status === 'revoked') throw new CountersignError('UNAUTHORIZED', 'the enrollment link was revoked by an administrator: ask for a new one');
  if (status === 'expired') throw new CountersignError('UNAUTHORIZED', `the enrollment link expired at ${iso(link.expires_at) ?? ''}: ask your administrator for a new one`);
  const user = await services.db.selectFrom('users').selectAll().where('id', '=', link.user_id).where('tenant_id', '=', link.tenant_id).executeTakeFirst();
  const tenant = await services.db.selectFrom('tenants').selectAll().where('id', '=', link.tenant_id).executeTakeFirst();
  if (user === undefined || tenant === undefined) throw new CountersignError('UNAUTHORIZED', 'the enrollment link is not valid: ask your administrator for a new one');
  // The same test as preauth (core/preauth.ts): a block whose blocked_until has passed is lifted.
  if (user.status === 'blocked' && (user.blocked_until === null || Number(user.blocked_until) > now)) throw new CountersignError('FORBIDDEN', 'your account is blocked: contact your administrator');
  const allowed = tenantEnrollable(tenant);
  const methods = link.methods.split(',').filter((m): m is EnrollableMethod => (allowed as string[]).includes(m));
  return { link, user, tenant, methods };
}

function linkActor(session: EnrollmentSession): string {
  return `enrollment-link:${session.link.id}`;
}

/** The flows reused here act as the system; the link's own records name the link. */
const SYSTEM: Principal = { kind: 'system' };

function requireMethod(session: EnrollmentSession, method: EnrollableMethod): void {
  if (!session.methods.includes(method)) {
    throw new CountersignError('FORBIDDEN', `this enrollment link does not allow registering ${method}; it allows ${session.methods.join(', ') || 'nothing the tenant still allows'}`);
  }
}

export interface RegisteredMethod {
  id: string;
  type: string;
  label: string;
}

/** What the user has registered: the same methods preauth offers (active code methods, authenticators, verified numbers). */
export async function registeredMethods(services: Services, tenant: TenantRow, userId: string): Promise<RegisteredMethod[]> {
  const codes = (await activeCodeMethods(services, tenant, { id: userId })).map(summarizeMethod).map(({ id, type, label }) => ({ id, type, label }));
  const push = (await userPushMethods(services, tenant, userId)).map(({ id, type, label }) => ({ id, type, label }));
  const phones = (await userPhoneMethods(services, tenant, userId)).map(({ id, type, label }) => ({ id, type, label }));
  return [...codes, ...push, ...phones];
}

export interface EnrollmentInfo {
  username: string;
  display_name: string | null;
  tenant: string;
  mfa_state: string;
  expires_at: string;
  /** What may be registered through this link now. */
  methods: string[];
  registered: RegisteredMethod[];
}

/** `GET /v1/enrollment`: who, which tenant, what may be registered and what already is. */
export async function enrollmentInfo(services: Services, session: EnrollmentSession): Promise<EnrollmentInfo> {
  return {
    username: session.user.username,
    display_name: session.user.display_name,
    tenant: session.tenant.name,
    mfa_state: session.user.mfa_state,
    expires_at: iso(session.link.expires_at) ?? '',
    methods: session.methods,
    registered: await registeredMethods(services, session.tenant, session.user.id),
  };
}

/**
 * Records that a method was registered through the link: the first time, the link's remaining
 * life shrinks to AFTER_FIRST_METHOD_MS (and so do the push activation URLs it opened); an
 * enabled user becomes enforced.
 */
async function methodRegistered(services: Services, session: EnrollmentSession, what: Record<string, string>): Promise<void> {
  await registeredThroughLink(services, session.link.id, session.tenant, session.user, what);
}

async function registeredThroughLink(services: Services, linkId: string, tenant: TenantRow, user: UserRow, what: Record<string, string>): Promise<void> {
  const now = services.clock().getTime();
  await services.writes.run(async (db, record) => {
    const cap = now + AFTER_FIRST_METHOD_MS;
    const started = await db
      .updateTable('enrollment_links')
      .set({ first_method_at: now, expires_at: sql<number>`case when ${sql.ref('expires_at')} < ${cap} then ${sql.ref('expires_at')} else ${cap} end` })
      .where('id', '=', linkId)
      .where('first_method_at', 'is', null)
      .executeTakeFirst();
    if (started.numUpdatedRows === 1n) {
      // The link's open activation URLs end with it.
      await db
        .updateTable('push_activations')
        .set({ expires_at: sql<number>`case when ${sql.ref('expires_at')} < ${cap} then ${sql.ref('expires_at')} else ${cap} end` })
        .where('enrollment_link_id', '=', linkId)
        .where('used_at', 'is', null)
        .execute();
    }
    record({ tenantId: tenant.id, actor: `enrollment-link:${linkId}`, action: 'enrollment.method_registered', target: user.id, detail: { link: linkId, ...what } });
  });
  await promoteEnabledUser(services, tenant, user);
}

/**
 * Called by push activation (flows/push.ts) when a device activates with an activation code that
 * was started through an enrollment link: the device counts as a method registered through the
 * link (the 15-minute cap starts, an enabled user becomes enforced).
 */
export async function enrollmentDeviceActivated(services: Services, linkId: string, deviceId: string): Promise<void> {
  const link = await services.db.selectFrom('enrollment_links').select(['id', 'tenant_id', 'user_id']).where('id', '=', linkId).executeTakeFirst();
  if (link === undefined) return;
  const user = await services.db.selectFrom('users').selectAll().where('id', '=', link.user_id).executeTakeFirst();
  const tenant = await services.db.selectFrom('tenants').selectAll().where('id', '=', link.tenant_id).executeTakeFirst();
  if (user === undefined || tenant === undefined) return;
  await registeredThroughLink(services, link.id, tenant, user, { type: 'push', device: deviceId });
}

/** Ends the open push activation URLs a link started (the link was revoked, replaced or completed). */
async function endLinkActivations(db: Kysely<Database>, linkIds: readonly string[], now: number): Promise<void> {
  if (linkIds.length === 0) return;
  await db.updateTable('push_activations').set({ expires_at: now }).where('enrollment_link_id', 'in', linkIds).where('used_at', 'is', null).where('expires_at', '>', now).execute();
}

/** `POST /v1/enrollment/totp`: a pending TOTP method; the secret, URI and QR code are shown once. */
export async function enrollmentStartTotp(services: Services, session: EnrollmentSession, input: { label?: unknown }): Promise<TotpEnrollment> {
  requireMethod(session, 'totp');
  const enrollment = await enrollTotp(services, SYSTEM, session.tenant, session.user, { label: input.label ?? 'Authenticator app' });
  await services.audit({ tenantId: session.tenant.id, actor: linkActor(session), action: 'enrollment.totp_started', target: session.user.id, detail: { link: session.link.id, method: enrollment.method.id } });
  return enrollment;
}

/** `POST /v1/enrollment/totp/activate {code, method_id?}`: the first correct code activates the newest pending TOTP method (or the one named). */
export async function enrollmentActivateTotp(services: Services, session: EnrollmentSession, input: { code?: unknown; method_id?: unknown }): Promise<MethodView> {
  requireMethod(session, 'totp');
  if (input.method_id !== undefined && (typeof input.method_id !== 'string' || input.method_id === '')) throw invalidInput('method_id', 'must be the id of the pending method');
  let methodId = input.method_id;
  if (methodId === undefined) {
    const pending = await services.db
      .selectFrom('methods')
      .select('id')
      .where('user_id', '=', session.user.id)
      .where('type', '=', 'totp')
      .where('status', '=', 'pending')
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .executeTakeFirst();
    if (pending === undefined) throw new CountersignError('NOT_FOUND', 'no authenticator app is waiting for its first code: start with POST /v1/enrollment/totp');
    methodId = pending.id;
  }
  const method = await activateMethod(services, SYSTEM, session.tenant, session.user, methodId, input.code);
  await methodRegistered(services, session, { method: method.id, type: 'totp' });
  return method;
}

/** `POST /v1/enrollment/push`: an activation link for the Countersign Authenticator (push activation, 10 minutes, single use). */
export async function enrollmentStartPush(services: Services, session: EnrollmentSession, input: { with_totp?: unknown }): Promise<{ activation_url: string; activation_code: string; expires_at: string }> {
  requireMethod(session, 'push');
  if (input.with_totp !== undefined && typeof input.with_totp !== 'boolean') throw invalidInput('with_totp', 'must be true or false');
  if (input.with_totp === true) requireMethod(session, 'totp');
  const linkId = session.link.id;
  const activation = await startActivation(services, SYSTEM, session.tenant, session.user, {
    withTotp: input.with_totp === true,
    enrollment: {
      linkId,
      // An activation URL never outlives the link that opened it.
      notAfter: Number(session.link.expires_at),
      // At most MAX_OPEN_ACTIVATIONS open at once, counted in the insert's transaction. The link's
      // row is written first: on PostgreSQL that locks it, so racing requests count one by one.
      guard: async (db, now) => {
        // Only while the link is still open: a revoke or completion that won the race ends it here too.
        const touched = await db
          .updateTable('enrollment_links')
          .set({ methods: sql<string>`${sql.ref('methods')}` })
          .where('id', '=', linkId)
          .where('used_at', 'is', null)
          .where('revoked_at', 'is', null)
          .where('expires_at', '>', now)
          .executeTakeFirst();
        if (touched.numUpdatedRows !== 1n) throw new CountersignError('UNAUTHORIZED', 'the enrollment link was used, revoked or has expired meanwhile: ask your administrator for a new one');
        const started = await db
          .selectFrom('push_activations')
          .select([(eb) => eb.fn.countAll<number>().as('n'), (eb) => eb.fn.countAll<number>().filterWhere('used_at', 'is', null).filterWhere('expires_at', '>', now).as('open'), (eb) => eb.fn.min('expires_at').filterWhere('used_at', 'is', null).filterWhere('expires_at', '>', now).as('first_ends')])
          .where('enrollment_link_id', '=', linkId)
          .executeTakeFirstOrThrow();
        // At most MAX_OPEN_ACTIVATIONS open at once, and MAX_ACTIVATIONS in the link's life: a leaked link binds few devices.
        if (Number(started.n) >= MAX_ACTIVATIONS) {
          throw new CountersignError('LIMIT_REACHED', `this enrollment link has started ${MAX_ACTIVATIONS} authenticator activations, the most one link may: ask your administrator for a new link`);
        }
        if (Number(started.open) >= MAX_OPEN_ACTIVATIONS) {
          throw new CountersignError('RATE_LIMITED', `this enrollment link has ${MAX_OPEN_ACTIVATIONS} activation links open already: use one of them, or wait until one expires`, {
            retryAfter: Math.max(1, Math.ceil((Number(started.first_ends) - now) / 1000)),
          });
        }
      },
    },
  });
  await services.audit({ tenantId: session.tenant.id, actor: linkActor(session), action: 'enrollment.push_started', target: session.user.id, detail: { link: session.link.id } });
  return activation;
}

function phoneMethodFor(type: string): EnrollableMethod {
  // A mobile number is proven by a text, the others by a call that reads the code out.
  return type === 'mobile' ? 'sms' : 'voice';
}

/** `POST /v1/enrollment/phone {number, type}`: a code goes to the number (phone verification). */
export async function enrollmentStartPhone(services: Services, session: EnrollmentSession, input: { number?: unknown; type?: unknown }): Promise<PhoneVerificationView> {
  const type = parsePhoneType(input.type ?? 'mobile');
  requireMethod(session, phoneMethodFor(type));
  // Checked here too so a bad number is named before any limit is taken.
  normalizePhone(input.number, tenantSettings(session.tenant).default_country, 'number');
  // A link only adds: it never replaces a number the user already proved. Phone verification
  // would overwrite it and clear its proof before any new proof, knocking out a working factor.
  const current = await services.db.selectFrom('user_phones').select(['number', 'verified_at']).where('user_id', '=', session.user.id).where('type', '=', type).executeTakeFirst();
  if (current !== undefined && current.verified_at !== null) {
    throw new CountersignError('CONFLICT', `a verified ${type} number (${maskPhone(current.number)}) is already registered: an enrollment link only adds methods; to change the number, ask your administrator`);
  }
  const view = await startPhoneVerification(services, SYSTEM, session.tenant, session.user, type, input.number);
  await services.audit({ tenantId: session.tenant.id, actor: linkActor(session), action: 'enrollment.phone_started', target: session.user.id, detail: { link: session.link.id, type, number: maskPhone(view.number) } });
  return view;
}

/** `POST /v1/enrollment/phone/confirm {type, code}`: reads the code back; a proven number is registered. */
export async function enrollmentConfirmPhone(services: Services, session: EnrollmentSession, input: { type?: unknown; code?: unknown }): Promise<ChallengeView & { verified: boolean }> {
  const type = parsePhoneType(input.type ?? 'mobile');
  requireMethod(session, phoneMethodFor(type));
  const result = await confirmPhoneVerification(services, SYSTEM, session.tenant, session.user, type, input.code);
  if (result.verified) await methodRegistered(services, session, { type: phoneMethodFor(type), phone: type });
  return result;
}

/**
 * `POST /v1/enrollment/complete`: ends the link (one atomic UPDATE; of racing completions exactly
 * one succeeds, the others find it used). Needs at least one registered method; an enabled user
 * becomes enforced.
 */
export async function completeEnrollment(services: Services, session: EnrollmentSession): Promise<{ completed: true; mfa_state: string; registered: RegisteredMethod[] }> {
  const registered = await registeredMethods(services, session.tenant, session.user.id);
  if (registered.length === 0) throw new CountersignError('CONFLICT', 'register at least one method before completing (an authenticator app, push, or a phone number)');
  const now = services.clock().getTime();
  const won = await services.writes.run(async (db, record) => {
    const moved = await db
      .updateTable('enrollment_links')
      .set({ used_at: now })
      .where('id', '=', session.link.id)
      .where('used_at', 'is', null)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    if (moved.numUpdatedRows !== 1n) return false;
    await endLinkActivations(db, [session.link.id], now);
    record({ tenantId: session.tenant.id, actor: linkActor(session), action: 'enrollment.completed', target: session.user.id, detail: { link: session.link.id, methods: registered.map((m) => m.type).join(',') } });
    return true;
  });
  if (!won) throw new CountersignError('UNAUTHORIZED', 'the enrollment link was already used, revoked or expired meanwhile');
  await promoteEnabledUser(services, session.tenant, session.user);
  const user = await services.db.selectFrom('users').select('mfa_state').where('id', '=', session.user.id).executeTakeFirstOrThrow();
  return { completed: true, mfa_state: user.mfa_state, registered };
}

/** The open link of a user, if any (for the campaign's listing). */
export async function openLinkOf(services: Services, userId: string): Promise<EnrollmentLinkView | undefined> {
  const now = services.clock().getTime();
  const row = await services.db
    .selectFrom('enrollment_links')
    .innerJoin('users', 'users.id', 'enrollment_links.user_id')
    .selectAll('enrollment_links')
    .select('users.username')
    .where('enrollment_links.user_id', '=', userId)
    .where('enrollment_links.used_at', 'is', null)
    .where('enrollment_links.revoked_at', 'is', null)
    .where('enrollment_links.expires_at', '>', now)
    .executeTakeFirst();
  return row === undefined ? undefined : viewLink(row, row.username, now);
}

/**
 * Pre-registration (Azure could not): an administrator registers a user's phone number as a
 * ready method, without the user proving it. `verified: true` must be said explicitly, with a
 * reason; the number replaces the user's number of that type, takes texts and calls at once,
 * the change is audited with the reason (number masked), and the user is told through the
 * notification outbox (SECURITY.md BND-01: a new credential was added). An enabled user becomes
 * enforced, as after any registration.
 */
export async function preregisterPhone(
  services: Services,
  principal: Principal,
  tenant: TenantRow,
  user: UserRow,
  input: { number?: unknown; type?: unknown; verified?: unknown; reason?: unknown },
): Promise<{ type: string; number: string; verified: true; replaced: boolean }> {
  const type = parsePhoneType(input.type ?? 'mobile');
  const number = normalizePhone(input.number, tenantSettings(tenant).default_country, 'number');
  if (input.verified !== true) throw invalidInput('verified', 'must be true: a pre-registered number takes texts and calls without proof (to have the user prove it, use phones/{type}/verify)');
  const reason = typeof input.reason === 'string' ? input.reason.trim() : '';
  if (reason === '' || reason.length > 500 || /\p{Cc}/u.test(reason)) throw invalidInput('reason', 'is required: 1–500 characters saying why the number needs no proof');
  const now = services.clock().getTime();
  const replaced = await services.writes.run(async (db, record) => {
    const current = await db.selectFrom('user_phones').select(['id', 'number']).where('user_id', '=', user.id).where('type', '=', type).executeTakeFirst();
    if (current === undefined) {
      await db.insertInto('user_phones').values({ id: randomUUID(), tenant_id: tenant.id, user_id: user.id, type, number, created_at: now, verified_at: now }).execute();
    } else {
      await db.updateTable('user_phones').set({ number, verified_at: now, created_at: now }).where('id', '=', current.id).execute();
    }
    await db.updateTable('users').set({ updated_at: now }).where('id', '=', user.id).execute();
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'phone.preregistered', target: user.id, detail: { type, number: maskPhone(number), reason, replaced: current !== undefined } });
    return current !== undefined;
  });
  await queueUserNotification(services, tenant, user.id, 'phone_preregistered', { type, number: maskPhone(number), at: new Date(now).toISOString() });
  await promoteEnabledUser(services, tenant, user);
  return { type, number, verified: true, replaced };
}
