import { randomUUID } from 'node:crypto';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import { MAX_CODE_METHODS, CODE_METHOD_TYPES, matchMethodCode } from '../methods/otp-code.js';
import { viewMethod, type MethodView } from '../methods/method-view.js';
import { parseTotpOptions, provisionTotp, TOTP_SEED_BYTES, type TotpProvisioning } from '../methods/totp/enroll-totp.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { MethodRow, TenantRow, UserRow } from '../store/schema.js';
import { consumeOtpCounter } from '../store/attempts.js';
import { tenantSettings } from './tenants.js';
import { validateCode } from './verify-code.js';

/**
 * A user's methods: listing, removing, choosing the default, and TOTP enrollment. A TOTP
 * method is created `pending` and becomes usable only after its first correct code, so a
 * secret that never reached the user's app cannot be used to sign in.
 */

/** How long a pending enrollment waits for its first code. */
export const PENDING_TTL_MS = 15 * 60_000;

export async function listMethods(services: Services, user: UserRow): Promise<MethodView[]> {
  const rows = await services.db.selectFrom('methods').selectAll().where('user_id', '=', user.id).orderBy('created_at').orderBy('id').execute();
  return rows.map(viewMethod);
}

export async function findMethod(services: Services, user: UserRow, methodId: string): Promise<MethodRow> {
  const row = await services.db.selectFrom('methods').selectAll().where('id', '=', methodId).where('user_id', '=', user.id).executeTakeFirst();
  if (row === undefined) throw notFound(`method ${methodId}`);
  return row;
}

export async function deleteMethod(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, methodId: string): Promise<void> {
  const method = await findMethod(services, user, methodId);
  await services.db.deleteFrom('methods').where('id', '=', method.id).execute();
  await ensureDefaultMethod(services, user.id);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'method.deleted', target: user.id, detail: { method: method.id, type: method.type } });
}

/**
 * A user with active methods always has a default one (SPEC: "one is the default"): when none is
 * marked — the first registration, or the default was removed or unassigned — the oldest active
 * method becomes the default.
 */
export async function ensureDefaultMethod(services: Services, userId: string): Promise<void> {
  const existing = await services.db.selectFrom('methods').select('id').where('user_id', '=', userId).where('is_default', '=', 1).executeTakeFirst();
  if (existing !== undefined) return;
  const first = await services.db.selectFrom('methods').select('id').where('user_id', '=', userId).where('status', '=', 'active').orderBy('created_at').orderBy('id').executeTakeFirst();
  if (first !== undefined) await services.db.updateTable('methods').set({ is_default: 1 }).where('id', '=', first.id).execute();
}

export async function setDefaultMethod(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, methodId: string): Promise<MethodView> {
  const method = await findMethod(services, user, methodId);
  if (method.status !== 'active') throw new CountersignError('CONFLICT', 'only an active method can be the default');
  await services.db.transaction().execute(async (trx) => {
    await trx.updateTable('methods').set({ is_default: 0 }).where('user_id', '=', user.id).execute();
    await trx.updateTable('methods').set({ is_default: 1 }).where('id', '=', method.id).execute();
  });
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'method.default_set', target: user.id, detail: { method: method.id } });
  return viewMethod({ ...method, is_default: 1 });
}

/** Code methods count toward Azure's limit of five; stale pending enrollments are dropped first. */
export async function assertCodeMethodRoom(services: Services, userId: string): Promise<void> {
  const now = services.clock().getTime();
  await services.db.deleteFrom('methods').where('user_id', '=', userId).where('status', '=', 'pending').where('created_at', '<', now - PENDING_TTL_MS).execute();
  const { count } = await services.db
    .selectFrom('methods')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('user_id', '=', userId)
    .where('type', 'in', [...CODE_METHOD_TYPES])
    .executeTakeFirstOrThrow();
  if (Number(count) >= MAX_CODE_METHODS) {
    throw new CountersignError('LIMIT_REACHED', `the user already has ${MAX_CODE_METHODS} code methods (authenticator apps and tokens); remove one first`);
  }
}

export interface TotpEnrollment extends TotpProvisioning {
  method: MethodView;
}

export async function enrollTotp(
  services: Services,
  principal: Principal,
  tenant: TenantRow,
  user: UserRow,
  input: { algorithm?: unknown; digits?: unknown; period?: unknown; label?: unknown },
): Promise<TotpEnrollment> {
  if (!tenantSettings(tenant).allowed_methods.includes('totp')) throw new CountersignError('FORBIDDEN', 'the tenant does not allow authenticator app codes (totp)');
  const options = parseTotpOptions(input);
  if (input.label !== undefined && (typeof input.label !== 'string' || input.label.trim() === '' || input.label.length > 64)) {
    throw invalidInput('label', 'must be 1–64 characters');
  }
  await assertCodeMethodRoom(services, user.id);
  const seed = services.random(TOTP_SEED_BYTES);
  const id = randomUUID();
  const { sealed, keyId } = await services.secrets.seal(seed, id);
  const now = services.clock().getTime();
  const row: MethodRow = {
    id,
    tenant_id: tenant.id,
    user_id: user.id,
    type: 'totp',
    status: 'pending',
    label: typeof input.label === 'string' ? input.label.trim() : 'Authenticator app',
    is_default: 0,
    otp_kind: 'totp',
    algorithm: options.algorithm,
    digits: options.digits,
    period: options.period,
    counter: 0,
    secret: sealed,
    key_id: keyId,
    serial: null,
    manufacturer: null,
    model: null,
    created_at: now,
    activated_at: null,
    last_used_at: null,
  };
  await services.db.insertInto('methods').values(row).execute();
  const provisioning = await provisionTotp(seed, tenant.name, user.username, options);
  seed.fill(0);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'method.enrollment_started', target: user.id, detail: { method: id, type: 'totp' } });
  return { method: viewMethod(row), ...provisioning };
}

/**
 * Activates a pending method with its first correct code. The code's step is consumed like any
 * other, so the code that activated a method cannot then be used to sign in.
 */
export async function activateMethod(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, methodId: string, input: unknown): Promise<MethodView> {
  const code = validateCode(input);
  const method = await findMethod(services, user, methodId);
  if (method.status === 'active') throw new CountersignError('CONFLICT', 'the method is already active');
  const now = services.clock().getTime();
  if (method.created_at < now - PENDING_TTL_MS) throw new CountersignError('CONFLICT', 'the enrollment expired; start it again');
  const seed = await services.secrets.open(method.secret, method.key_id, method.id);
  const match = matchMethodCode(method, seed, code, tenantSettings(tenant), now);
  seed.fill(0);
  if (match.result !== 'match' || !(await consumeOtpCounter(services.db, method.id, match.counter, now))) {
    await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'method.activation_failed', target: user.id, detail: { method: method.id } });
    throw new CountersignError('INVALID_INPUT', 'code: is not the current code of this authenticator');
  }
  return markActive(services, principal, tenant, user, method, now);
}

/**
 * Activates a pending method without a first code, for a secret that goes straight to a device
 * which has just proved it holds its key (the authenticator's TOTP). No time step is spent, so
 * the code the device shows at once is accepted at the first sign-in.
 */
export async function activateDeliveredMethod(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, methodId: string): Promise<MethodView> {
  const method = await findMethod(services, user, methodId);
  if (method.status === 'active') throw new CountersignError('CONFLICT', 'the method is already active');
  return markActive(services, principal, tenant, user, method, services.clock().getTime());
}

async function markActive(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, method: Awaited<ReturnType<typeof findMethod>>, now: number): Promise<MethodView> {
  const hasDefault = await services.db.selectFrom('methods').select('id').where('user_id', '=', user.id).where('is_default', '=', 1).executeTakeFirst();
  await services.db
    .updateTable('methods')
    .set({ status: 'active', activated_at: now, is_default: hasDefault === undefined ? 1 : 0 })
    .where('id', '=', method.id)
    .execute();
  await promoteEnabledUser(services, tenant, user);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'method.activated', target: user.id, detail: { method: method.id, type: method.type } });
  return viewMethod({ ...method, status: 'active', activated_at: now, is_default: hasDefault === undefined ? 1 : 0 });
}

/** Azure: "An Enabled user who completes registration becomes Enforced." */
export async function promoteEnabledUser(services: Services, tenant: TenantRow, user: UserRow): Promise<void> {
  const result = await services.db
    .updateTable('users')
    .set({ mfa_state: 'enforced', updated_at: services.clock().getTime() })
    .where('id', '=', user.id)
    .where('mfa_state', '=', 'enabled')
    .executeTakeFirst();
  if (result.numUpdatedRows === 1n) {
    await services.audit({ tenantId: tenant.id, actor: 'system', action: 'user.state_changed', target: user.id, detail: { from: 'enabled', to: 'enforced', why: 'registration completed' } });
  }
}

/** The bulk form of promoteEnabledUser, for imports: one statement per 500 users, one audit record. */
export async function promoteEnabledUsers(services: Services, tenant: TenantRow, userIds: readonly string[]): Promise<number> {
  let promoted = 0;
  for (let i = 0; i < userIds.length; i += 500) {
    const result = await services.db
      .updateTable('users')
      .set({ mfa_state: 'enforced', updated_at: services.clock().getTime() })
      .where('id', 'in', userIds.slice(i, i + 500))
      .where('mfa_state', '=', 'enabled')
      .executeTakeFirst();
    promoted += Number(result.numUpdatedRows);
  }
  if (promoted > 0) {
    await services.audit({ tenantId: tenant.id, actor: 'system', action: 'users.state_changed', target: tenant.id, detail: { from: 'enabled', to: 'enforced', users: promoted, why: 'registration completed' } });
  }
  return promoted;
}
