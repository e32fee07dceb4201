import { createHash, randomUUID } from 'node:crypto';
import { tenantSettings } from './tenants.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';

/**
 * "Remember MFA on trusted devices" (Azure; SECURITY.md SES-04, SES-05). After an approved second
 * factor the application gets a remember token, bound to the user and to that application and
 * stored only as its SHA-256; presented to preauth within the tenant's `remember_mfa_days` it
 * answers allow / remembered_device (a sign-in without a fresh second factor, and the reason
 * says so). Revoking them — all of a user's at once — takes effect on the next preauth.
 */
const PREFIX = 'rmt_';

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A new remember token for this approval, or undefined when the tenant does not remember MFA. */
export async function issueRememberToken(services: Services, tenant: TenantRow, userId: string, applicationId: string, now: number): Promise<string | undefined> {
  const days = tenantSettings(tenant).remember_mfa_days;
  if (days === 0) return undefined;
  const token = `${PREFIX}${services.random(32).toString('base64url')}`;
  await services.db
    .insertInto('remember_tokens')
    .values({ id: randomUUID(), tenant_id: tenant.id, user_id: userId, application_id: applicationId, token_hash: hashToken(token), created_at: now, expires_at: now + days * 86_400_000 })
    .execute();
  return token;
}

/** What a presented token is worth for this user and application. */
export async function checkRememberToken(services: Services, tenant: TenantRow, userId: string, applicationId: string | null, token: unknown, now: number): Promise<'absent' | 'valid' | 'not_valid' | 'off'> {
  if (tenantSettings(tenant).remember_mfa_days === 0) return 'off';
  if (token === undefined || token === null || token === '') return 'absent';
  if (typeof token !== 'string' || !token.startsWith(PREFIX) || applicationId === null) return 'not_valid';
  const row = await services.db
    .selectFrom('remember_tokens')
    .select('id')
    .where('token_hash', '=', hashToken(token))
    .where('user_id', '=', userId)
    .where('application_id', '=', applicationId)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return row === undefined ? 'not_valid' : 'valid';
}

/** Revokes every remembered device of a user, at once; returns how many there were. */
export async function forgetRememberedDevices(services: Services, principal: Principal, tenant: TenantRow, userId: string): Promise<number> {
  return services.writes.run(async (db, record) => {
    const removed = await db.deleteFrom('remember_tokens').where('user_id', '=', userId).where('tenant_id', '=', tenant.id).executeTakeFirst();
    const count = Number(removed.numDeletedRows);
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'remembered_devices.revoked', target: userId, detail: { count } });
    return count;
  });
}
