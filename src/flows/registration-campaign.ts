import { sql } from 'kysely';
import { CountersignError, invalidInput } from '../core/errors.js';
import { normalizeUsername } from '../core/user-fields.js';
import { CODE_METHOD_TYPES } from '../methods/otp-code.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { PhoneType, TenantRow, UserRow } from '../store/schema.js';
import { createEnrollmentLink, parseExpiresIn } from './enrollment.js';
import { tenantSettings } from './tenants.js';

/**
 * The registration campaign (Azure "registration campaign"): users whose only methods are the
 * weakest — texts and calls (SECURITY.md OOB-05: PSTN is restricted) — are nudged to register the
 * authenticator (`registration_campaign.method`: push or totp).
 *
 * A user is **targeted** when the campaign is on and the target method is allowed, the user's
 * MFA state is not disabled, they have at least one verified number that gives a phone method
 * the tenant allows, and no stronger method (no active TOTP app or OATH token, no activated
 * authenticator), is in none of `excluded_groups`, and has not snoozed the nudge ("not now")
 * within `snooze_days`.
 *
 * - `registrationNudge` answers, for one user, the hint preauth carries: `{method, snooze_days, message}`.
 * - `snoozeNudge`: the application reports "not now"; the user is not nudged for `snooze_days` days.
 * - `listCampaignTargets` / `createCampaignLinks`: the administrator's side — who is targeted,
 *   and an enrollment link (for the target method only) for each of them at once.
 */
export interface RegistrationNudge {
  /** The method the user is asked to register. */
  method: 'push' | 'totp';
  /** How long "not now" keeps the nudge away (0: it comes back at every sign-in). */
  snooze_days: number;
  message: string;
}

export interface CampaignTarget {
  id: string;
  username: string;
  display_name: string | null;
  /** The weak methods the user has now (sms, voice). */
  methods: string[];
  snoozes: number;
}

export interface CampaignView {
  enabled: boolean;
  method: 'push' | 'totp';
  snooze_days: number;
  excluded_groups: string[];
  /** False when the tenant does not allow the target method: nobody is nudged. */
  method_allowed: boolean;
  users: CampaignTarget[];
  /** The username to pass as `after` for the next page, or null. */
  next: string | null;
}

const MESSAGES = {
  push: 'Set up the Countersign Authenticator: approving a notification is safer and quicker than a text message or a call.',
  totp: 'Set up an authenticator app: a code from the app is safer than a text message or a call.',
} as const;

/** The targeted users of the tenant, by username (or one user); `now` decides snoozes. */
function targetQuery(services: Services, tenant: TenantRow, now: number) {
  const settings = tenantSettings(tenant);
  const campaign = settings.registration_campaign;
  const phoneTypes: PhoneType[] = settings.allowed_methods.includes('voice') ? ['mobile', 'office', 'alternate'] : settings.allowed_methods.includes('sms') ? ['mobile'] : [];
  const codeTypes = CODE_METHOD_TYPES.filter((t) => settings.allowed_methods.includes(t));
  let query = services.db
    .selectFrom('users')
    .select(['users.id', 'users.username', 'users.display_name'])
    .where('users.tenant_id', '=', tenant.id)
    .where('users.mfa_state', '!=', 'disabled')
    .where((eb) =>
      eb.and([
        // No phone method allowed: nobody has only phone methods (`in ()` is not valid SQL).
        phoneTypes.length === 0 ? sql<boolean>`1 = 0` : eb.exists(eb.selectFrom('user_phones').select('user_phones.id').whereRef('user_phones.user_id', '=', 'users.id').where('user_phones.verified_at', 'is not', null).where('user_phones.type', 'in', phoneTypes)),
        codeTypes.length === 0 ? sql<boolean>`1 = 1` : eb.not(eb.exists(eb.selectFrom('methods').select('methods.id').whereRef('methods.user_id', '=', 'users.id').where('methods.status', '=', 'active').where('methods.type', 'in', codeTypes))),
        eb.not(eb.exists(eb.selectFrom('registration_snoozes').select('registration_snoozes.user_id').whereRef('registration_snoozes.user_id', '=', 'users.id').where('registration_snoozes.snoozed_until', '>', now))),
      ]),
    );
  if (settings.allowed_methods.includes('push')) {
    query = query.where((eb) => eb.not(eb.exists(eb.selectFrom('push_devices').select('push_devices.id').whereRef('push_devices.user_id', '=', 'users.id'))));
  }
  if (campaign.excluded_groups.length > 0) {
    query = query.where((eb) => eb.not(eb.exists(eb.selectFrom('user_groups').select('user_groups.user_id').whereRef('user_groups.user_id', '=', 'users.id').where('user_groups.name', 'in', [...campaign.excluded_groups]))));
  }
  return query;
}

function methodAllowed(tenant: TenantRow): boolean {
  const settings = tenantSettings(tenant);
  return settings.allowed_methods.includes(settings.registration_campaign.method);
}

/**
 * The nudge preauth carries for this user, or null: the campaign is off, the target method is
 * not allowed, or the user is not targeted (has a stronger method, no phone method, is excluded
 * or snoozed).
 */
export async function registrationNudge(services: Services, tenant: TenantRow, user: Pick<UserRow, 'id'>): Promise<RegistrationNudge | null> {
  const campaign = tenantSettings(tenant).registration_campaign;
  if (!campaign.enabled || !methodAllowed(tenant)) return null;
  const targeted = await targetQuery(services, tenant, services.clock().getTime()).where('users.id', '=', user.id).executeTakeFirst();
  return targeted === undefined ? null : { method: campaign.method, snooze_days: campaign.snooze_days, message: MESSAGES[campaign.method] };
}

/** "Not now": the user is not nudged again for `snooze_days` days (with 0 days, at the next sign-in again). */
export async function snoozeNudge(services: Services, principal: Principal, tenant: TenantRow, usernameInput: unknown): Promise<{ username: string; snoozed_until: string }> {
  const username = normalizeUsername(usernameInput);
  const user = await services.db.selectFrom('users').select(['id', 'username']).where('tenant_id', '=', tenant.id).where('username', '=', username).executeTakeFirst();
  if (user === undefined) throw new CountersignError('NOT_FOUND', `user ${username} not found`);
  const days = tenantSettings(tenant).registration_campaign.snooze_days;
  const now = services.clock().getTime();
  const until = now + days * 86_400_000;
  await services.writes.run(async (db, record) => {
    await db
      .insertInto('registration_snoozes')
      .values({ user_id: user.id, tenant_id: tenant.id, snoozed_until: until, snoozes: 1 })
      .onConflict((oc) => oc.column('user_id').doUpdateSet((eb) => ({ snoozed_until: until, snoozes: eb(eb.ref('registration_snoozes.snoozes'), '+', 1) })))
      .execute();
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'registration_campaign.snoozed', target: user.id, detail: { username: user.username, days } });
  });
  return { username: user.username, snoozed_until: new Date(until).toISOString() };
}

const MAX_PAGE = 5000;

export function parseLimit(value: unknown, fallback = 500): number {
  const limit = value ?? fallback;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw invalidInput('limit', `must be a whole number from 1 to ${MAX_PAGE}`);
  return limit;
}

/** The users the campaign targets (whether or not it is on: an administrator looks before turning it on), by username, paged. */
export async function listCampaignTargets(services: Services, tenant: TenantRow, options: { after?: string | undefined; limit?: unknown }): Promise<CampaignView> {
  const limit = parseLimit(options.limit);
  const campaign = tenantSettings(tenant).registration_campaign;
  const now = services.clock().getTime();
  let query = targetQuery(services, tenant, now).orderBy('users.username').limit(limit + 1);
  if (options.after !== undefined && options.after !== '') query = query.where('users.username', '>', options.after);
  const rows = await query.execute();
  const page = rows.slice(0, limit);
  const ids = page.map((r) => r.id);
  const [phones, snoozes] =
    ids.length === 0
      ? [[], []]
      : await Promise.all([
          services.db.selectFrom('user_phones').select(['user_id', 'type']).where('user_id', 'in', ids).where('verified_at', 'is not', null).execute(),
          services.db.selectFrom('registration_snoozes').select(['user_id', 'snoozes']).where('user_id', 'in', ids).execute(),
        ]);
  const allowed = tenantSettings(tenant).allowed_methods;
  const methodsOf = (id: string) => {
    const types = phones.filter((p) => p.user_id === id).map((p) => p.type);
    const methods: string[] = [];
    if (allowed.includes('sms') && types.includes('mobile')) methods.push('sms');
    if (allowed.includes('voice') && types.length > 0) methods.push('voice');
    return methods;
  };
  return {
    enabled: campaign.enabled,
    method: campaign.method,
    snooze_days: campaign.snooze_days,
    excluded_groups: [...campaign.excluded_groups],
    method_allowed: methodAllowed(tenant),
    users: page.map((r) => ({ id: r.id, username: r.username, display_name: r.display_name, methods: methodsOf(r.id), snoozes: Number(snoozes.find((s) => s.user_id === r.id)?.snoozes ?? 0) })),
    next: rows.length > limit ? (page.at(-1)?.username ?? null) : null,
  };
}

export interface CampaignLinks {
  /** Links created. */
  count: number;
  /** Targeted users who already had an open link (it was left as it is). */
  skipped: number;
  links: { username: string; enrollment_url: string; expires_at: string }[];
}

/**
 * An enrollment link for the target method for every targeted user who has no open link, at
 * once; `onProgress(done, total)` after each. The URLs are in the answer, once (only hashes are
 * stored). Refused (409) while the campaign is off or its method is not allowed.
 */
export async function createCampaignLinks(
  services: Services,
  principal: Principal,
  tenant: TenantRow,
  input: { expires_in_seconds?: unknown },
  onProgress?: (done: number, total: number) => void,
): Promise<CampaignLinks> {
  const expires = parseExpiresIn(input.expires_in_seconds);
  const campaign = tenantSettings(tenant).registration_campaign;
  if (!campaign.enabled) throw new CountersignError('CONFLICT', `the registration campaign of tenant ${tenant.name} is off; turn it on first (registration_campaign.enabled)`);
  if (!methodAllowed(tenant)) throw new CountersignError('CONFLICT', `the campaign's method ${campaign.method} is not among the tenant's allowed_methods`);
  const now = services.clock().getTime();
  const targets = await targetQuery(services, tenant, now).orderBy('users.username').execute();
  const open = new Set(
    targets.length === 0
      ? []
      : (
          await services.db
            .selectFrom('enrollment_links')
            .select('user_id')
            .where('tenant_id', '=', tenant.id)
            .where('used_at', 'is', null)
            .where('revoked_at', 'is', null)
            .where('expires_at', '>', now)
            .execute()
        ).map((r) => r.user_id),
  );
  const result: CampaignLinks = { count: 0, skipped: 0, links: [] };
  let done = 0;
  for (const target of targets) {
    if (open.has(target.id)) {
      result.skipped++;
    } else {
      const user = await services.db.selectFrom('users').selectAll().where('id', '=', target.id).executeTakeFirstOrThrow();
      const link = await createEnrollmentLink(services, principal, tenant, user, { expires_in_seconds: expires, methods: [campaign.method] });
      result.links.push({ username: link.username, enrollment_url: link.enrollment_url, expires_at: link.expires_at });
      result.count++;
    }
    onProgress?.(++done, targets.length);
  }
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'registration_campaign.links_created', target: tenant.id, detail: { count: result.count, skipped: result.skipped, method: campaign.method } });
  return result;
}
