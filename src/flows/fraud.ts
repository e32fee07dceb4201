import { tenantSettings } from './tenants.js';
import type { Services } from '../services.js';
import type { ChallengeRow, TenantRow } from '../store/schema.js';
import { decideChallenge, denyOpenChallenges } from './challenge-state.js';
import { queueUserNotification } from './notifications.js';

/**
 * Azure's fraud alert (SECURITY.md PUSH-04; voice: 0# then 1; a text: the fraud code as the
 * reply): the challenge ends as `fraud`, a `fraud.reported` event is recorded, and when the
 * tenant says so the user is blocked — for `fraud_block_days` (Azure: 90) or until an
 * administrator unblocks — so preauth answers `deny` with reason `fraud_block`.
 */
export async function reportFraud(services: Services, tenant: TenantRow, row: ChallengeRow, source: 'call' | 'text' | 'push'): Promise<boolean> {
  if (!(await decideChallenge(services, row.id, 'fraud', 'fraud_reported'))) return false;
  const settings = tenantSettings(tenant);
  const now = services.clock().getTime();
  await services.audit({ tenantId: tenant.id, actor: 'system', action: 'fraud.reported', target: row.user_id, detail: { challenge: row.id, source, ip: row.ip, app: row.app } });
  if (settings.fraud_block_user) {
    const until = settings.fraud_block_days === 0 ? null : now + settings.fraud_block_days * 86_400_000;
    await services.db.updateTable('users').set({ status: 'blocked', blocked_reason: 'fraud', blocked_until: until, updated_at: now }).where('id', '=', row.user_id).execute();
    await services.audit({ tenantId: tenant.id, actor: 'system', action: 'user.blocked', target: row.user_id, detail: { reason: 'fraud', until: until === null ? null : new Date(until).toISOString() } });
    // Other requests open at the same moment (another call, a text) must not approve now.
    await denyOpenChallenges(services, row.user_id, 'blocked');
  }
  await queueUserNotification(services, tenant, row.user_id, 'fraud_reported', { challenge: row.id, source, blocked: settings.fraud_block_user, at: new Date(now).toISOString() });
  return true;
}
