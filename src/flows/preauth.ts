import { isIP } from 'node:net';
import { decidePreauth, type PreauthDecision, type PreauthFacts, type TraceStep } from '../core/preauth.js';
import { matchRange } from '../core/ip-ranges.js';
import { invalidInput } from '../core/errors.js';
import { normalizeUsername } from '../core/user-fields.js';
import { summarizeMethod } from '../methods/method-view.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';
import { userPhoneMethods } from './phone-methods.js';
import { userPushMethods } from './push.js';
import { activeCodeMethods } from './verify-code.js';
import { consumeBypass, openBypass, recordExpiredBypasses } from './bypasses.js';
import { lastCachedSuccess } from './mfa-cache.js';
import { checkRememberToken } from './remembered-devices.js';
import { tenantSettings } from './tenants.js';

/**
 * `POST /v1/preauth`: what should happen to this sign-in before any factor. This gathers the
 * facts (the user, their methods, an open bypass, the trusted ranges, a remember token, the last
 * cached success) and asks core/preauth.ts, which decides in one documented order and explains
 * itself in a trace. A bypass it chooses is then used up; if another sign-in used it first, the
 * decision is taken again without it.
 */
export interface PreauthRequest {
  username?: unknown;
  ip?: unknown;
  client?: unknown;
  remember_token?: unknown;
}

export interface PreauthAnswer {
  result: PreauthDecision['result'];
  reason: PreauthDecision['reason'];
  methods: { id: string; type: string; label: string; default: boolean }[];
  trace: TraceStep[];
}

export async function preauth(services: Services, principal: Principal, tenant: TenantRow, request: PreauthRequest, requestIp?: string): Promise<PreauthAnswer> {
  const username = normalizeUsername(request.username);
  if (request.client !== undefined && request.client !== 'browser' && request.client !== 'legacy') {
    throw invalidInput('client', 'must be "browser" or "legacy"');
  }
  // The application's word for the user's address; else the request's own (through trusted proxies only).
  const ip = parseIp(request.ip) ?? requestIp ?? null;
  const applicationId = principal.kind === 'application' ? principal.applicationId : null;
  const settings = tenantSettings(tenant);
  const now = services.clock().getTime();
  const user = await services.db.selectFrom('users').selectAll().where('tenant_id', '=', tenant.id).where('username', '=', username).executeTakeFirst();
  const methods = user === undefined ? [] : await preauthMethods(services, tenant, user.id);
  if (user !== undefined) await recordExpiredBypasses(services, tenant.id, user.id, now);
  const bypass = user === undefined ? undefined : await openBypass(services, user.id, now);
  const facts: PreauthFacts = {
    user:
      user === undefined
        ? undefined
        : {
            mfaState: user.mfa_state,
            status: user.status,
            blockedUntil: user.blocked_until === null ? null : Number(user.blocked_until),
            blockedForFraud: user.blocked_reason === 'fraud',
            lockedUntil: user.locked_until === null ? null : Number(user.locked_until),
          },
    client: request.client === 'legacy' ? 'legacy' : 'browser',
    now,
    activeMethodCount: methods.length,
    ip,
    bypassExpiresAt: bypass?.expires_at ?? null,
    trustedRange: matchRange(ip, settings.trusted_ips),
    trustedRangeCount: settings.trusted_ips.length,
    remembered: user === undefined ? 'absent' : await checkRememberToken(services, tenant, user.id, applicationId, request.remember_token, now),
    cacheSeconds: settings.cache_seconds,
    cachedSuccessAt: user === undefined ? null : await lastCachedSuccess(services, tenant, user.id, applicationId, ip),
    appPasswordsAllowed: settings.app_passwords_allowed,
  };
  let decision = decidePreauth(facts);
  if (decision.reason === 'bypass' && (user === undefined || bypass === undefined || !(await consumeBypass(services, tenant.id, user.id, bypass.id, applicationId, now)))) {
    // Another sign-in used the bypass between the read and now: decide without it.
    decision = decidePreauth({ ...facts, bypassExpiresAt: null });
  }
  await services.audit({
    tenantId: tenant.id,
    actor: actorOf(principal),
    action: 'preauth.decided',
    target: user?.id ?? null,
    detail: { username, result: decision.result, reason: decision.reason, ip, client: facts.client },
  });
  return { result: decision.result, reason: decision.reason, methods: decision.result === 'challenge' ? methods : [], trace: [...decision.trace] };
}

/** The user's methods as preauth lists them: codes, push, then phone (never the default, SECURITY.md OOB-05). */
async function preauthMethods(services: Services, tenant: TenantRow, userId: string): Promise<PreauthAnswer['methods']> {
  const codeMethods = (await activeCodeMethods(services, tenant, { id: userId })).map(summarizeMethod);
  const pushMethods = (await userPushMethods(services, tenant, userId)).map((m) => ({ ...m, default: false }));
  const phoneMethods = (await userPhoneMethods(services, tenant, userId)).map((m) => ({ id: m.id, type: m.type, label: m.label, default: false }));
  return [...codeMethods, ...pushMethods, ...phoneMethods];
}

export function parseIp(value: unknown, field = 'ip'): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || isIP(value) === 0) throw invalidInput(field, 'must be an IPv4 or IPv6 address');
  return value;
}
