import { randomUUID } from 'node:crypto';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import { normalizeUsername } from '../core/user-fields.js';
import { CODE_METHOD_TYPES } from '../methods/otp-code.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { ChallengeRow, TenantRow } from '../store/schema.js';
import { writeTransaction } from '../store/write-transaction.js';
import { decideChallenge, isOpen, OPEN_STATUSES, viewChallenge as view, type ChallengeView } from './challenge-state.js';
import { answerPhoneCode, dispatchPhoneChallenge, preparePhoneChallenge } from './phone-challenges.js';
import { choosePhoneMethod, userPhoneMethods } from './phone-methods.js';
import { notifyDevices, preparePush, pushTopic, userPushMethods } from './push.js';
import { findSignInUser, signInRefusal } from './policies.js';
import { parseIp } from './preauth.js';
import { tenantSettings } from './tenants.js';
import { activeCodeMethods, verifyCode } from './verify-code.js';

/**
 * Challenges: one verification attempt each, `pending → approved / denied / fraud / expired /
 * failed`, single use. Code methods (totp, oath) and one-way text or read-out call codes are
 * answered with `/answer`; calls and two-way texts change the status from their own channel
 * (flows/phone-challenges.ts) and wake the waiters.
 *
 * The tenant's conditional access policies are enforced when a challenge is started, as in
 * preauth (an application need not have asked preauth): a `block` policy refuses it (403,
 * policy_block), and so does `require_phishing_resistant` for every method there is — codes,
 * texts, calls and push alike (403, phishing_resistant_required; SECURITY.md WA-03). Nothing is
 * stored, sent or shown on a device. A code answered to a challenge is checked again by
 * verifyCode, so a policy added after the challenge started refuses its answer too.
 */
export type { ChallengeView } from './challenge-state.js';

export interface CreateChallengeRequest {
  username?: unknown;
  method?: unknown;
  context?: { app?: unknown; ip?: unknown; event?: { title?: unknown; detail?: unknown } } | undefined;
}

function optionalText(value: unknown, field: string, max: number): string | null {
  if (value === undefined || value === null) return null;
  // eslint-disable-next-line no-control-regex -- shown to users and written to logs: no control characters (LOG-02)
  if (typeof value !== 'string' || value.length > max || /[\u0000-\u001f\u007f]/.test(value)) throw invalidInput(field, `must be text of at most ${max} characters`);
  return value;
}

export async function createChallenge(services: Services, principal: Principal, tenant: TenantRow, request: CreateChallengeRequest): Promise<ChallengeView> {
  const username = normalizeUsername(request.username);
  if (typeof request.method !== 'string' || request.method === '') throw invalidInput('method', 'is required: a method id or a type (totp, oath)');
  const ip = parseIp(request.context?.ip, 'context.ip');
  const app = optionalText(request.context?.app, 'context.app', 200);
  const eventTitle = optionalText(request.context?.event?.title, 'context.event.title', 200);
  const eventDetail = optionalText(request.context?.event?.detail, 'context.event.detail', 1000);
  if (request.context?.event !== undefined && eventTitle === null) throw invalidInput('context.event.title', 'is required with an event');

  const { user, enabledPolicies } = await findSignInUser(services, tenant, username);
  if (user === undefined) throw notFound(`user ${username}`);
  const now = services.clock().getTime();
  if (user.status === 'blocked' && (user.blocked_until === null || Number(user.blocked_until) > now)) throw new CountersignError('FORBIDDEN', 'the user is blocked');
  const applicationId = principal.kind === 'application' ? principal.applicationId : null;
  const refusal = await signInRefusal(services, tenant, { enabledPolicies, userId: user.id, username: user.username, applicationId, client: 'browser', ip: ip ?? null });
  if (refusal !== null) {
    await services.audit({
      tenantId: tenant.id,
      actor: actorOf(principal),
      action: 'verification.denied',
      target: user.id,
      detail: { username: user.username, ip: ip ?? null, challenge: null, reason: refusal.reason, policy: refusal.policy },
    });
    throw new CountersignError(
      'FORBIDDEN',
      refusal.reason === 'policy_block'
        ? `conditional access policy "${refusal.policy}" blocks this sign-in (policy_block)`
        : `conditional access policy "${refusal.policy}" requires a phishing-resistant method (a WebAuthn security key or passkey): no code, text, call or push satisfies it (phishing_resistant_required)`,
    );
  }
  const methods = await activeCodeMethods(services, tenant, { id: user.id });
  const method = request.method;
  const chosen = methods.filter((m) => m.id === method || m.type === method);
  const settings = tenantSettings(tenant);
  const base = {
    id: randomUUID(),
    tenant_id: tenant.id,
    application_id: applicationId,
    user_id: user.id,
    app,
    ip: ip ?? null,
    event_title: eventTitle,
    event_detail: eventDetail,
    attempts: 0,
    created_at: now,
    decided_at: null,
    number: null,
    remember_issued_at: null,
  };
  let row: ChallengeRow;
  let phone: Awaited<ReturnType<typeof preparePhoneChallenge>> | undefined;
  const pushMethods = chosen.length === 0 && (method === 'push' || method.startsWith('push:')) ? await userPushMethods(services, tenant, user.id) : [];
  const pushMethod = pushMethods.find((m) => m.id === method || m.type === method);
  if (pushMethod !== undefined) {
    // Fatigue limits first (PUSH-02): a refused push is never shown on a device.
    const push = await preparePush(services, tenant, user.id, now);
    row = {
      ...base,
      // By type: any of the user's authenticators may answer; by id: that one.
      method_id: method === pushMethod.id ? pushMethod.id : null,
      type: 'push',
      status: 'pending',
      expires_at: push.expiresAt,
      destination: null,
      code_hash: null,
      mode: `${push.number === null ? 'approve_only' : 'number'}${push.pin ? '+pin' : ''}`,
      reason: null,
      call_state: null,
      reference: null,
      number: push.number,
    };
  } else if (chosen.length === 0) {
    const phoneMethods = await userPhoneMethods(services, tenant, user.id);
    const phoneMethod = choosePhoneMethod(phoneMethods, method);
    if (phoneMethod === undefined) {
      if (['totp', 'oath', 'sms', 'voice', 'push'].includes(method) || methods.length + phoneMethods.length === 0) {
        throw new CountersignError('NOT_FOUND', `the user has no active ${method} method`);
      }
      const known = [...methods.map((m) => m.id), ...phoneMethods.map((m) => m.id)];
      throw invalidInput('method', `"${method}" is not one of the user's methods (${known.join(', ')}) nor a method type`);
    }
    // Limits and the country allow-list are checked before anything is stored or sent (OOB-07).
    phone = await preparePhoneChallenge(services, tenant, { ...base, user_id: user.id }, phoneMethod);
    row = phone.row;
  } else {
    const first = chosen[0];
    row = {
      ...base,
      // A challenge by type accepts a code from any method of that type; by id, from that one.
      method_id: chosen.length === 1 || method === first?.id ? (first?.id ?? null) : null,
      type: first?.type ?? method,
      status: 'pending',
      expires_at: now + settings.challenge_ttl_seconds * 1000,
      destination: null,
      code_hash: null,
      mode: null,
      reason: null,
      call_state: null,
      reference: null,
    };
  }
  await writeTransaction(services.db, services.store.dialect, async (trx) => {
    // Open challenges per user are capped (SECURITY.md RL-04): checked and inserted under the
    // write lock (SQLite) or the user's row lock (PostgreSQL), so racing creates cannot exceed it.
    let lock = trx.selectFrom('users').select('id').where('id', '=', user.id);
    if (services.store.dialect === 'postgres') lock = lock.forUpdate();
    await lock.execute();
    const open = await trx
      .selectFrom('challenges')
      .select(['expires_at'])
      .where('user_id', '=', user.id)
      .where('status', 'in', OPEN_STATUSES)
      .where('expires_at', '>', now)
      .orderBy('expires_at')
      .execute();
    if (open.length >= settings.challenge_max_open) {
      const retryAfter = Math.max(1, Math.ceil((Number(open[0]?.expires_at ?? now) - now) / 1000));
      throw new CountersignError('RATE_LIMITED', `the user already has ${settings.challenge_max_open} open challenges; answer one or wait for one to expire`, { retryAfter });
    }
    await trx.insertInto('challenges').values(row).execute();
  });
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'challenge.created', target: user.id, detail: { challenge: row.id, type: row.type } });
  // The text leaves, or the call is placed, once the challenge is stored; the answer comes later.
  if (phone !== undefined) row = await dispatchPhoneChallenge(services, tenant, row, phone);
  // Authenticators listening on their live stream are told at once.
  if (row.type === 'push') {
    services.notifier.publish(pushTopic(user.id));
    notifyDevices(services, tenant, user.id, row.id, row.method_id?.replace(/^push:/, '') ?? null);
  }
  return view(row);
}

/** A challenge as its own application sees it; another application's challenge does not exist for it. */
async function loadChallenge(services: Services, principal: Principal, tenant: TenantRow, id: string): Promise<ChallengeRow> {
  let query = services.db.selectFrom('challenges').selectAll().where('id', '=', id).where('tenant_id', '=', tenant.id);
  if (principal.kind === 'application') query = query.where('application_id', '=', principal.applicationId);
  const row = await query.executeTakeFirst();
  if (row === undefined) throw notFound(`challenge ${id}`);
  return row;
}

async function expireIfDue(services: Services, row: ChallengeRow): Promise<ChallengeRow> {
  if (isOpen(row.status) && Number(row.expires_at) <= services.clock().getTime() && (await decideChallenge(services, row.id, 'expired'))) {
    return { ...row, status: 'expired' };
  }
  return row;
}

export async function getChallenge(services: Services, principal: Principal, tenant: TenantRow, id: string, waitSeconds: number, signal?: AbortSignal): Promise<ChallengeView> {
  const deadline = services.clock().getTime() + waitSeconds * 1000;
  let row = await expireIfDue(services, await loadChallenge(services, principal, tenant, id));
  while (isOpen(row.status) && !signal?.aborted) {
    const left = Math.min(deadline, Number(row.expires_at)) - services.clock().getTime();
    if (left <= 0) break;
    // Woken at once by a decision in this process; re-reading each second catches decisions
    // taken by another process on the same store.
    await services.notifier.wait(id, Math.min(left, 1000), signal);
    row = await expireIfDue(services, await loadChallenge(services, principal, tenant, id));
  }
  return view(row);
}

export async function answerChallenge(services: Services, principal: Principal, tenant: TenantRow, id: string, input: { code?: unknown }): Promise<ChallengeView> {
  let row = await expireIfDue(services, await loadChallenge(services, principal, tenant, id));
  if (!isOpen(row.status)) throw new CountersignError('CONFLICT', `the challenge is ${row.status}, no longer pending`);
  if (row.code_hash !== null) return answerPhoneCode(services, principal, tenant, row, input.code);
  if (!(CODE_METHOD_TYPES as readonly string[]).includes(row.type)) throw new CountersignError('CONFLICT', `a ${row.type} challenge is not answered with a code`);
  const user = await services.db.selectFrom('users').select('username').where('id', '=', row.user_id).executeTakeFirstOrThrow();
  const methods = row.method_id !== null ? [row.method_id] : (await activeCodeMethods(services, tenant, { id: row.user_id })).filter((m) => m.type === row.type).map((m) => m.id);
  // The attempt is taken from the challenge before the code is checked (atomic cap): however
  // many answers race, at most challenge_max_attempts codes are checked for one challenge.
  const max = tenantSettings(tenant).challenge_max_attempts;
  const taken = await services.db
    .updateTable('challenges')
    .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
    .where('id', '=', row.id)
    .where('status', '=', 'pending')
    .where('attempts', '<', max)
    .returning('attempts')
    .executeTakeFirst();
  if (taken === undefined) throw new CountersignError('CONFLICT', 'the challenge has no attempts left or was decided by another request');
  const outcome = await verifyCode(services, principal, tenant, { username: user.username, code: input.code, methodIds: methods, ip: row.ip ?? undefined, challengeId: row.id });
  if (outcome.result === 'approved') {
    if (!(await decideChallenge(services, row.id, 'approved'))) throw new CountersignError('CONFLICT', 'the challenge was decided by another request');
    return view({ ...row, status: 'approved' });
  }
  if (outcome.reason === 'locked_out' || outcome.reason === 'blocked' || outcome.reason === 'policy_block' || outcome.reason === 'phishing_resistant_required') {
    await decideChallenge(services, row.id, 'denied');
    return { ...view({ ...row, status: 'denied' }), reason: outcome.reason };
  }
  if (outcome.replayed === true) {
    // A replay of a valid code (often a racing copy of the answer that approves this very
    // challenge) is not a guess: it counts against the user's lockout in verifyCode but gives
    // its attempt back, so copies of a code cannot fail the challenge its first use approves.
    await services.db.updateTable('challenges').set((eb) => ({ attempts: eb('attempts', '-', 1) })).where('id', '=', row.id).where('status', '=', 'pending').execute();
  } else if (Number(taken.attempts) >= max) {
    await decideChallenge(services, row.id, 'failed');
  }
  row = await loadChallenge(services, principal, tenant, id);
  // Another request approved the challenge meanwhile: this refused code must not read as an
  // approval to its caller (an application checks `status`), so it is answered like a late one.
  if (row.status === 'approved') throw new CountersignError('CONFLICT', 'the challenge was decided by another request');
  return { ...view(row), reason: outcome.reason };
}
