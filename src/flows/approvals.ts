import type { Principal, Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';
import type { ChallengeView } from './challenge-state.js';
import { recordSuccess } from './mfa-cache.js';
import { issueRememberToken } from './remembered-devices.js';

/**
 * What an application receives with an approved second factor, besides the approval: a remember
 * token (when the tenant remembers MFA), and the success noted for MFA Server caching. For a
 * challenge this happens once, the first time its own application sees it approved (from the
 * answer, or from reading it); a later read gets the approval without a new token.
 */
export async function handOverChallenge(services: Services, principal: Principal, tenant: TenantRow, view: ChallengeView): Promise<ChallengeView & { remember_token?: string }> {
  if (view.status !== 'approved' || principal.kind !== 'application') return view;
  const now = services.clock().getTime();
  const claimed = await services.db
    .updateTable('challenges')
    .set({ remember_issued_at: now })
    .where('id', '=', view.id)
    .where('application_id', '=', principal.applicationId)
    .where('status', '=', 'approved')
    .where('remember_issued_at', 'is', null)
    .returning(['user_id', 'ip'])
    .executeTakeFirst();
  if (claimed === undefined) return view;
  await recordSuccess(services, tenant, claimed.user_id, principal.applicationId, claimed.ip, now);
  const token = await issueRememberToken(services, tenant, claimed.user_id, principal.applicationId, now);
  return token === undefined ? view : { ...view, remember_token: token };
}

/** The same for a one-shot `/v1/verify` approval. */
export async function handOverVerification(services: Services, principal: Principal, tenant: TenantRow, userId: string, ip: string | null): Promise<{ remember_token?: string }> {
  if (principal.kind !== 'application') return {};
  const now = services.clock().getTime();
  await recordSuccess(services, tenant, userId, principal.applicationId, ip, now);
  const token = await issueRememberToken(services, tenant, userId, principal.applicationId, now);
  return token === undefined ? {} : { remember_token: token };
}
