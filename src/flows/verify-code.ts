import { invalidInput } from '../core/errors.js';

import { CODE_METHOD_TYPES, CODE_PATTERN, matchMethodCode, normalizeCode } from '../methods/otp-code.js';
import { actorOf, type Principal, type Services } from '../services.js';
import { clearFailures, consumeOtpCounter, reserveAttempt } from '../store/attempts.js';
import type { MethodRow, TenantRow, UserRow } from '../store/schema.js';
import { tenantSettings } from './tenants.js';

/**
 * Checks a code against a user's active code methods (TOTP apps and OATH tokens): the heart
 * of `/v1/verify` and of answering a code challenge.
 *
 * Order matters for security: (1) an attempt is reserved against the lockout counter before
 * any code is looked at; (2) each matching method's step is consumed atomically; (3) only a
 * consumed step approves. Unknown users get the same answer as wrong codes (`invalid_code`),
 * so a caller cannot probe for usernames; lockouts and blocks are named so the application can
 * tell its user to wait or call the helpdesk.
 */
export type VerifyReason = 'approved' | 'invalid_code' | 'locked_out' | 'blocked';

export interface VerifyOutcome {
  result: 'approved' | 'denied';
  reason: VerifyReason;
  user?: UserRow;
  methodId?: string;
}

export interface VerifyRequest {
  username: string;
  code: unknown;
  /** Limit the check to these methods (a challenge's method); default: every active code method. */
  methodIds?: readonly string[];
  ip?: string | undefined;
  challengeId?: string;
}

export function validateCode(value: unknown): string {
  if (typeof value !== 'string') throw invalidInput('code', 'must be a string of 6 or 8 digits');
  const code = normalizeCode(value);
  if (!CODE_PATTERN.test(code)) throw invalidInput('code', 'must be 6 or 8 digits');
  return code;
}

export async function verifyCode(services: Services, principal: Principal, tenant: TenantRow, request: VerifyRequest): Promise<VerifyOutcome> {
  const code = validateCode(request.code);
  const username = request.username.trim().toLowerCase();
  const settings = tenantSettings(tenant);
  const now = services.clock().getTime();
  const auditBase = { tenantId: tenant.id, actor: actorOf(principal) };
  const detailBase = { username, ip: request.ip ?? null, challenge: request.challengeId ?? null };

  const reservation = await reserveAttempt(
    services.db,
    tenant.id,
    username,
    { threshold: settings.lockout_threshold, resetMinutes: settings.lockout_reset_minutes, lockoutMinutes: settings.lockout_minutes },
    now,
  );
  if (!reservation.reserved) {
    const reason = await whyRefused(services, tenant.id, username, now);
    await services.audit({ ...auditBase, action: 'verification.denied', target: null, detail: { ...detailBase, reason } });
    return { result: 'denied', reason };
  }
  const user = reservation.user;
  const methods = await activeCodeMethods(services, user.id, request.methodIds);
  let replayed: MethodRow | undefined;
  for (const method of methods) {
    const seed = await services.secrets.open(method.secret, method.key_id, method.id);
    const match = matchMethodCode(method, seed, code, settings, now);
    seed.fill(0);
    if (match.result === 'no_match') continue;
    if (match.result === 'match' && (await consumeOtpCounter(services.db, method.id, match.counter, now))) {
      await clearFailures(services.db, user.id);
      await services.audit({ ...auditBase, action: 'verification.approved', target: user.id, detail: { ...detailBase, method: method.id } });
      return { result: 'approved', reason: 'approved', user, methodId: method.id };
    }
    // Valid once, already used (or consumed a moment ago by a concurrent request): OTP-01, OTP-09.
    replayed = method;
  }
  if (replayed !== undefined) {
    await services.audit({ ...auditBase, action: 'otp.replay', target: user.id, detail: { ...detailBase, method: replayed.id } });
  }
  await services.audit({ ...auditBase, action: 'verification.denied', target: user.id, detail: { ...detailBase, reason: 'invalid_code' } });
  if (reservation.lockedNow) {
    await services.audit({ ...auditBase, action: 'user.locked_out', target: user.id, detail: { threshold: settings.lockout_threshold } });
  }
  return { result: 'denied', reason: 'invalid_code', user };
}

async function whyRefused(services: Services, tenantId: string, username: string, now: number): Promise<VerifyReason> {
  const user = await services.db.selectFrom('users').select(['status', 'blocked_until', 'locked_until']).where('tenant_id', '=', tenantId).where('username', '=', username).executeTakeFirst();
  if (user === undefined) return 'invalid_code';
  if (user.status === 'blocked' && (user.blocked_until === null || Number(user.blocked_until) > now)) return 'blocked';
  return 'locked_out';
}

export async function activeCodeMethods(services: Services, userId: string, only?: readonly string[]): Promise<MethodRow[]> {
  let query = services.db
    .selectFrom('methods')
    .selectAll()
    .where('user_id', '=', userId)
    .where('status', '=', 'active')
    .where('type', 'in', [...CODE_METHOD_TYPES])
    .orderBy('is_default', 'desc')
    .orderBy('created_at');
  if (only !== undefined) query = query.where('id', 'in', only.length > 0 ? [...only] : ['']);
  return query.execute();
}

