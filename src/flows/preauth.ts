import { isIP } from 'node:net';
import { decidePreauth, type PreauthDecision } from '../core/preauth.js';
import { invalidInput } from '../core/errors.js';
import { normalizeUsername } from '../core/user-fields.js';
import { summarizeMethod } from '../methods/method-view.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';
import { userPhoneMethods } from './phone-methods.js';
import { userPushMethods } from './push.js';
import { activeCodeMethods } from './verify-code.js';

/**
 * `POST /v1/preauth`: what should happen to this sign-in before any factor. Later issues add
 * trusted IPs, bypasses, remembered devices, app passwords and policies; each adds a rule to
 * core/preauth.ts and a reason, never a second decision path.
 */
export interface PreauthRequest {
  username?: unknown;
  ip?: unknown;
  client?: unknown;
  remember_token?: unknown;
}

export interface PreauthAnswer extends PreauthDecision {
  methods: { id: string; type: string; label: string; default: boolean }[];
}

export async function preauth(services: Services, principal: Principal, tenant: TenantRow, request: PreauthRequest): Promise<PreauthAnswer> {
  const username = normalizeUsername(request.username);
  if (request.client !== undefined && request.client !== 'browser' && request.client !== 'legacy') {
    throw invalidInput('client', 'must be "browser" or "legacy"');
  }
  const ip = parseIp(request.ip);
  const now = services.clock().getTime();
  const user = await services.db.selectFrom('users').selectAll().where('tenant_id', '=', tenant.id).where('username', '=', username).executeTakeFirst();
  const codeMethods = user === undefined ? [] : (await activeCodeMethods(services, tenant, { id: user.id })).map(summarizeMethod);
  // Phone methods come after the others and are never the default (SECURITY.md OOB-05).
  const phoneMethods = user === undefined ? [] : (await userPhoneMethods(services, tenant, user.id)).map((m) => ({ id: m.id, type: m.type, label: m.label, default: false }));
  const pushMethods = user === undefined ? [] : (await userPushMethods(services, tenant, user.id)).map((m) => ({ ...m, default: false }));
  const methods = [...codeMethods, ...pushMethods, ...phoneMethods];
  const decision = decidePreauth(
    user === undefined
      ? undefined
      : {
          mfaState: user.mfa_state,
          status: user.status,
          blockedUntil: user.blocked_until === null ? null : Number(user.blocked_until),
          blockedForFraud: user.blocked_reason === 'fraud',
          lockedUntil: user.locked_until === null ? null : Number(user.locked_until),
        },
    methods.length,
    now,
  );
  await services.audit({
    tenantId: tenant.id,
    actor: actorOf(principal),
    action: 'preauth.decided',
    target: user?.id ?? null,
    detail: { username, result: decision.result, reason: decision.reason, ip: ip ?? null },
  });
  return { ...decision, methods: decision.result === 'challenge' ? methods : [] };
}

export function parseIp(value: unknown, field = 'ip'): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || isIP(value) === 0) throw invalidInput(field, 'must be an IPv4 or IPv6 address');
  return value;
}
