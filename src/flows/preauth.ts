import { isIP } from 'node:net';
import { decidePreauth, type PreauthDecision, type PreauthFacts, type TraceStep } from '../core/preauth.js';
import { matchRange } from '../core/ip-ranges.js';
import { NO_POLICIES } from '../core/policies.js';
import { invalidInput } from '../core/errors.js';
import { normalizeUsername } from '../core/user-fields.js';
import { summarizeMethod } from '../methods/method-view.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow, UserRow } from '../store/schema.js';
import { userPhoneMethods } from './phone-methods.js';
import { userPushMethods } from './push.js';
import { activeCodeMethods } from './verify-code.js';
import { consumeBypass, openBypass, recordExpiredBypasses } from './bypasses.js';
import { lastCachedSuccess } from './mfa-cache.js';
import { findApplicationRef, findSignInUser, policyEvaluation } from './policies.js';
import { checkRememberToken } from './remembered-devices.js';
import { registrationNudge, type RegistrationNudge } from './registration-campaign.js';
import { tenantSettings } from './tenants.js';

/**
 * `POST /v1/preauth`: what should happen to this sign-in before any factor. This gathers the
 * facts (the user, their methods, an open bypass, the trusted ranges, a remember token, the last
 * cached success, the tenant's policies evaluated for the sign-in — read only when the tenant
 * has enabled ones, its `policy_count` read with the user) and asks core/preauth.ts, which decides in one documented order and explains
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
  /** The registration campaign's hint for a user of only texts and calls (Azure's nudge); absent otherwise. */
  nudge?: RegistrationNudge;
}

export async function preauth(services: Services, principal: Principal, tenant: TenantRow, request: PreauthRequest, requestIp?: string): Promise<PreauthAnswer> {
  const username = normalizeUsername(request.username);
  if (request.client !== undefined && request.client !== 'browser' && request.client !== 'legacy') {
    throw invalidInput('client', 'must be "browser" or "legacy"');
  }
  // The application's word for the user's address; else the request's own (through trusted proxies only).
  const ip = parseIp(request.ip) ?? requestIp ?? null;
  const applicationId = principal.kind === 'application' ? principal.applicationId : null;
  const now = services.clock().getTime();
  const { user, enabledPolicies } = await findSignInUser(services, tenant, username);
  if (user !== undefined) await recordExpiredBypasses(services, tenant.id, user.id, now);
  const client = request.client === 'legacy' ? 'legacy' : 'browser';
  const { facts, methods, bypass } = await gatherFacts(services, tenant, user, { client, ip, applicationId, rememberToken: request.remember_token, now, enabledPolicies });
  let decision = decidePreauth(facts);
  if (decision.reason === 'bypass' && (user === undefined || bypass === undefined || !(await consumeBypass(services, tenant.id, user.id, bypass.id, applicationId, now)))) {
    // Another sign-in used the bypass between the read and now: decide without it.
    decision = decidePreauth({ ...facts, bypassExpiresAt: null });
  }
  const policy = facts.policy?.matched;
  await services.audit({
    tenantId: tenant.id,
    actor: actorOf(principal),
    action: 'preauth.decided',
    target: user?.id ?? null,
    detail: { username, result: decision.result, reason: decision.reason, ip, client: facts.client, ...(policy === undefined || policy === null ? {} : { policy: policy.name }) },
  });
  // Only when a second factor is asked for: the sign-in page can offer the stronger method after it.
  const nudge = user !== undefined && decision.result === 'challenge' ? await registrationNudge(services, tenant, user) : null;
  return { result: decision.result, reason: decision.reason, methods: decision.result === 'challenge' ? methods : [], trace: [...decision.trace], ...(nudge === null ? {} : { nudge }) };
}

export interface PreviewRequest {
  username?: unknown;
  /** The application signing in, by name or id; none = conditions on applications do not match. */
  application?: unknown;
  client?: unknown;
  ip?: unknown;
}

/**
 * `POST /v1/admin/policies/evaluate`: the decision and trace preauth would give this sign-in
 * now, with no side effect — a bypass it would use is not used, an expired one is not recorded,
 * no sign-in is audited, nothing is written (every read below is a plain SELECT).
 */
export async function previewPreauth(services: Services, tenant: TenantRow, request: PreviewRequest): Promise<PreauthAnswer> {
  const username = normalizeUsername(request.username);
  if (request.client !== undefined && request.client !== 'browser' && request.client !== 'legacy') throw invalidInput('client', 'must be "browser" or "legacy"');
  const ip = parseIp(request.ip) ?? null;
  const applicationId = await findApplicationRef(services, tenant, request.application);
  const now = services.clock().getTime();
  const user = await services.db.selectFrom('users').selectAll().where('tenant_id', '=', tenant.id).where('username', '=', username).executeTakeFirst();
  const { facts, methods } = await gatherFacts(services, tenant, user, { client: request.client === 'legacy' ? 'legacy' : 'browser', ip, applicationId, rememberToken: undefined, now });
  const decision = decidePreauth(facts);
  return { result: decision.result, reason: decision.reason, methods: decision.result === 'challenge' ? methods : [], trace: [...decision.trace] };
}

/** Reads everything the decision looks at; writes nothing. */
async function gatherFacts(
  services: Services,
  tenant: TenantRow,
  user: UserRow | undefined,
  // enabledPolicies: the tenant's policy_count read with the user; absent (a preview) = read the policies regardless.
  sign: { client: 'browser' | 'legacy'; ip: string | null; applicationId: string | null; rememberToken: unknown; now: number; enabledPolicies?: number },
): Promise<{ facts: PreauthFacts; methods: PreauthAnswer['methods']; bypass: { id: string; expires_at: number } | undefined }> {
  const { client, ip, applicationId, now } = sign;
  const settings = tenantSettings(tenant);
  const methods = user === undefined ? [] : await preauthMethods(services, tenant, user.id);
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
    client,
    now,
    activeMethodCount: methods.length,
    ip,
    bypassExpiresAt: bypass?.expires_at ?? null,
    trustedRange: matchRange(ip, settings.trusted_ips),
    trustedRangeCount: settings.trusted_ips.length,
    remembered: user === undefined ? 'absent' : await checkRememberToken(services, tenant, user.id, applicationId, sign.rememberToken, now),
    cacheSeconds: settings.cache_seconds,
    cachedSuccessAt: user === undefined ? null : await lastCachedSuccess(services, tenant, user.id, applicationId, ip),
    appPasswordsAllowed: settings.app_passwords_allowed,
    policy:
      user === undefined
        ? NO_POLICIES
        : await policyEvaluation(services, tenant, {
            userId: user.id,
            username: user.username,
            applicationId,
            client,
            ip,
            trustedIps: settings.trusted_ips,
            ...(sign.enabledPolicies === undefined ? {} : { enabledPolicies: sign.enabledPolicies }),
          }),
  };
  return { facts, methods, bypass };
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
