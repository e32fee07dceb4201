import type { Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';
import { tenantSettings } from './tenants.js';

/**
 * MFA Server caching: "a success for the same user and application (and client IP, when
 * configured) within N seconds is reused", so a client that authenticates twice in a row (a VPN
 * that reconnects, a RADIUS client that retries) does not prompt twice. One row per user,
 * application and IP keeps the last success.
 */
export async function recordSuccess(services: Services, tenant: TenantRow, userId: string, applicationId: string, ip: string | null, now: number): Promise<void> {
  if (tenantSettings(tenant).cache_seconds === 0) return;
  await services.db
    .insertInto('mfa_successes')
    .values({ tenant_id: tenant.id, user_id: userId, application_id: applicationId, ip: ip ?? '', at: now })
    .onConflict((oc) => oc.columns(['user_id', 'application_id', 'ip']).doUpdateSet({ at: now }))
    .execute();
}

/** When the last success that this sign-in may reuse happened, or null. */
export async function lastCachedSuccess(services: Services, tenant: TenantRow, userId: string, applicationId: string | null, ip: string | null): Promise<number | null> {
  const settings = tenantSettings(tenant);
  // With cache_by_ip, a sign-in without a client IP has nothing to match.
  if (settings.cache_seconds === 0 || applicationId === null || (settings.cache_by_ip && ip === null)) return null;
  let query = services.db.selectFrom('mfa_successes').select((eb) => eb.fn.max('at').as('at')).where('user_id', '=', userId).where('application_id', '=', applicationId);
  if (settings.cache_by_ip) query = query.where('ip', '=', ip ?? '');
  const row = await query.executeTakeFirst();
  return row?.at === null || row?.at === undefined ? null : Number(row.at);
}
