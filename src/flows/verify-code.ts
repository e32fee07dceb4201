import { invalidInput } from '../core/errors.js';
import type { PolicyRefusalReason } from '../core/policies.js';
import { normalizeUsername } from '../core/user-fields.js';

import { CODE_METHOD_TYPES, CODE_PATTERN, matchMethodCode, normalizeCode } from '../methods/otp-code.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { Kysely } from 'kysely';
import { approveAtOnce, consumeOtpCounter, reserveAttempt } from '../store/attempts.js';
import { preparedQuery } from '../store/prepared-query.js';
import type { Database, MethodRow, TenantRow } from '../store/schema.js';
import { queueUserNotification } from './notifications.js';
import { policyCountColumn, signInRefusal } from './policies.js';
import { tenantSettings } from './tenants.js';

/**
 * Checks a code against a user's active code methods (TOTP apps and OATH tokens): the heart
 * of `/v1/verify` and of answering a code challenge.
 *
 * Order matters for security: (1) an attempt is reserved against the lockout counter before
 * the result of any code check is used, so racing requests get at most `threshold` answers
 * between lockouts; (2) each matching method's step is consumed atomically; (3) only a consumed
 * step approves. Unknown users get the same answer as wrong codes (`invalid_code`),
 * so a caller cannot probe for usernames; lockouts and blocks are named so the application can
 * tell its user to wait or call the helpdesk.
 *
 * Conditional access (core/policies.ts policyRefusal) is enforced here too, not only in preauth:
 * an application that calls `/v1/verify` without asking preauth is refused by a `block` policy
 * (`policy_block`) and by `require_phishing_resistant` (`phishing_resistant_required`: a code is
 * never phishing-resistant, SECURITY.md WA-03). The policies are consulted only for a code that
 * matches — a wrong code is a guess like any other, counted, and the answer to an unknown user
 * stays `invalid_code` — and only when the tenant has enabled policies (its `policy_count`,
 * read in the same statement as the methods). A refused valid code does not count as a failure
 * but is spent (its step consumed), so it cannot be replayed from where the policies allow it;
 * a locked or blocked user is told so instead, as ever, saying nothing about the code.
 */
export type VerifyReason = 'approved' | 'invalid_code' | 'locked_out' | 'blocked' | PolicyRefusalReason;

export interface VerifyOutcome {
  result: 'approved' | 'denied';
  reason: VerifyReason;
  /** The user's id, when the user exists and the attempt was counted. */
  user?: { id: string };
  methodId?: string;
  /** Denied because the code was valid but its step already used (OTP-01, OTP-09): a replay, not a guess. */
  replayed?: boolean;
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
  // Validated like every other username (no spaces or control characters: LOG-02), then looked up.
  const username = normalizeUsername(request.username);
  const settings = tenantSettings(tenant);
  const now = services.clock().getTime();
  const auditBase = { tenantId: tenant.id, actor: actorOf(principal) };
  const detailBase = { username, ip: request.ip ?? null, challenge: request.challengeId ?? null };

  // Reads and HMACs first, outside any transaction; nothing learnt here is acted on unless the
  // attempt is then reserved below.
  const { methods, enabledPolicies } = await codeMethodsByName(services, tenant, username, request.methodIds);
  const matches: { method: MethodRow; counter: number; replay: boolean }[] = [];
  for (const method of methods) {
    const seed = await services.secrets.open(method.secret, method.key_id, method.id);
    const match = matchMethodCode(method, seed, code, settings, now);
    seed.fill(0);
    if (match.result !== 'no_match') matches.push({ method, counter: match.counter, replay: match.result === 'replay' });
  }

  // One transaction (one commit, shared with the other requests of this moment on SQLite):
  // reserve the attempt against the lockout counter, consume the matched step, clear the
  // counter on success, and record the decision in the audit log. Each step is an atomic
  // statement of its own.
  const policy = { threshold: settings.lockout_threshold, resetMinutes: settings.lockout_reset_minutes, lockoutMinutes: settings.lockout_minutes };
  const expectSuccess = matches.some((m) => !m.replay);
  const owner = matches[0]?.method.user_id ?? undefined;
  const refusal =
    expectSuccess && enabledPolicies > 0 && owner !== undefined
      ? await signInRefusal(services, tenant, { enabledPolicies, userId: owner, username, applicationId: principal.kind === 'application' ? principal.applicationId : null, client: 'browser', ip: request.ip ?? null })
      : null;
  // PostgreSQL: the common case — one fresh match, no refusal — in one statement
  // (approveAtOnce: the same checks and changes as the transaction below). When it does not
  // approve it has changed nothing, and the transaction decides as ever: a lockout, a block, a
  // step lost to a racing request. (SQLite commits many requests at once in the group commit.)
  const single = matches.length === 1 && refusal === null ? matches[0] : undefined;
  if (services.store.dialect === 'postgres' && single !== undefined && !single.replay) {
    const approved = await approveAtOnce(services.db, tenant.id, username, single.method.id, single.counter, now);
    if (approved !== undefined) {
      await services.writes.audit({ ...auditBase, action: 'verification.approved', target: approved.id, detail: { ...detailBase, method: single.method.id } });
      return { result: 'approved', reason: 'approved', user: approved, methodId: single.method.id };
    }
  }
  const outcome = await services.writes.run(async (db, record): Promise<VerifyOutcome & { replayedMethod?: MethodRow }> => {
    if (refusal !== null && owner !== undefined) {
      // A valid code the tenant's policies refuse (see the header): a locked or blocked user is
      // told so, as for any code; otherwise the code is spent, and the refusal recorded.
      const refused = await userRefusal(db, tenant.id, username, now);
      if (refused !== undefined) {
        record({ ...auditBase, action: 'verification.denied', target: owner, detail: { ...detailBase, reason: refused } });
        return { result: 'denied', reason: refused };
      }
      for (const match of matches) if (!match.replay && (await consumeOtpCounter(db, match.method.id, match.counter, now, { userId: owner }))) break;
      record({ ...auditBase, action: 'verification.denied', target: owner, detail: { ...detailBase, reason: refusal.reason, policy: refusal.policy } });
      return { result: 'denied', reason: refusal.reason };
    }
    const first = await reserveAttempt(db, tenant.id, username, policy, now, expectSuccess ? 'success' : 'failure');
    if (!first.reserved) {
      const reason = await whyRefused(db, tenant.id, username, now);
      record({ ...auditBase, action: 'verification.denied', target: methods[0]?.user_id ?? null, detail: { ...detailBase, reason } });
      return { result: 'denied', reason };
    }
    let replayed: MethodRow | undefined;
    for (const match of matches) {
      if (!match.replay && (await consumeOtpCounter(db, match.method.id, match.counter, now, { userId: first.user.id }))) {
        record({ ...auditBase, action: 'verification.approved', target: first.user.id, detail: { ...detailBase, method: match.method.id } });
        return { result: 'approved', reason: 'approved', user: first.user, methodId: match.method.id };
      }
      // Valid once, already used (or consumed a moment ago by a concurrent request): OTP-01, OTP-09.
      replayed = match.method;
    }
    // Expected to succeed but lost the step to a racing request: the attempt counts as a failure.
    const reservation = expectSuccess ? await reserveAttempt(db, tenant.id, username, policy, now, 'failure') : first;
    if (!reservation.reserved) {
      // Locked or blocked by a racing request meanwhile (PostgreSQL runs them side by side).
      const reason = await whyRefused(db, tenant.id, username, now);
      record({ ...auditBase, action: 'verification.denied', target: first.user.id, detail: { ...detailBase, reason } });
      return { result: 'denied', reason };
    }
    const user = reservation.user;
    if (replayed !== undefined) record({ ...auditBase, action: 'otp.replay', target: user.id, detail: { ...detailBase, method: replayed.id } });
    record({ ...auditBase, action: 'verification.denied', target: user.id, detail: { ...detailBase, reason: 'invalid_code' } });
    if (reservation.lockedNow) {
      record({ ...auditBase, action: 'user.locked_out', target: user.id, detail: { threshold: settings.lockout_threshold } });
    }
    return { result: 'denied', reason: 'invalid_code', user, ...(replayed === undefined ? {} : { replayed: true, replayedMethod: replayed }) };
  });

  const { replayedMethod, ...result } = outcome;
  if (replayedMethod !== undefined && result.user !== undefined) {
    // OTP-09: the holder is told that a code of theirs was used again.
    await queueUserNotification(services, tenant, result.user.id, 'otp_replay', { method: replayedMethod.id, ip: request.ip ?? null, at: new Date(now).toISOString() });
  }
  return result;
}

async function whyRefused(db: Kysely<Database>, tenantId: string, username: string, now: number): Promise<VerifyReason> {
  return (await userRefusal(db, tenantId, username, now)) ?? 'locked_out';
}

/** Why the user may not answer now (no such user, blocked, locked out), or undefined when they may. */
async function userRefusal(db: Kysely<Database>, tenantId: string, username: string, now: number): Promise<'invalid_code' | 'blocked' | 'locked_out' | undefined> {
  const user = await db.selectFrom('users').select(['status', 'blocked_until', 'locked_until']).where('tenant_id', '=', tenantId).where('username', '=', username).executeTakeFirst();
  if (user === undefined) return 'invalid_code';
  if (user.status === 'blocked' && (user.blocked_until === null || Number(user.blocked_until) > now)) return 'blocked';
  if (user.locked_until !== null && Number(user.locked_until) > now) return 'locked_out';
  return undefined;
}

/**
 * A user's active code methods of the types the tenant allows, default first; the user named by id, or by tenant and username
 * (joined, so the verify path needs one query); optionally only some method ids.
 */
export async function activeCodeMethods(
  services: Services,
  tenant: TenantRow,
  user: { id: string } | { tenantId: string; username: string },
  only?: readonly string[],
): Promise<MethodRow[]> {
  // Only the types the tenant allows now: an administrator who turns a method off turns it off
  // for sign-in at once, not only for new enrollments.
  const types = allowedCodeTypes(tenant);
  if (types.length === 0) return [];
  const { rows } = 'id' in user ? await activeMethodsById(services.db, user.id) : await activeMethodsByName(services.db, user.tenantId, user.username);
  return rows.filter((m) => types.includes(m.type) && (only === undefined || only.includes(m.id)));
}

function allowedCodeTypes(tenant: TenantRow): readonly string[] {
  const allowed = tenantSettings(tenant).allowed_methods;
  return CODE_METHOD_TYPES.filter((t) => allowed.includes(t));
}

/**
 * The verify path's read: the user's active code methods as activeCodeMethods gives them, and the
 * tenant's enabled policies (`policy_count`) from the same statement — no query of its own for
 * the policies' sake. With no methods the count is not known, nor needed: no code can match.
 */
async function codeMethodsByName(services: Services, tenant: TenantRow, username: string, only?: readonly string[]): Promise<{ methods: MethodRow[]; enabledPolicies: number }> {
  const types = allowedCodeTypes(tenant);
  if (types.length === 0) return { methods: [], enabledPolicies: 0 };
  const { rows } = await activeMethodsByName(services.db, tenant.id, username);
  const methods = rows.filter((m) => types.includes(m.type) && (only === undefined || only.includes(m.id)));
  return { methods, enabledPolicies: Number(rows[0]?.policy_count ?? 0) };
}

// A user has a handful of methods: they are read in one prepared query and filtered here.
const activeMethods = (db: Kysely<Database>) =>
  db
    .selectFrom('methods')
    .innerJoin('users', 'users.id', 'methods.user_id')
    .selectAll('methods')
    .where('methods.status', '=', 'active')
    .orderBy('methods.is_default', 'desc')
    .orderBy('methods.created_at')
    .orderBy('methods.id');
const activeMethodsById = preparedQuery((db, userId: string) => activeMethods(db).where('users.id', '=', userId));
const activeMethodsByName = preparedQuery((db, tenantId: string, username: string) =>
  activeMethods(db).innerJoin('tenants', 'tenants.id', 'users.tenant_id').select(policyCountColumn()).where('users.tenant_id', '=', tenantId).where('users.username', '=', username),
);
