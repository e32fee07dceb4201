import { randomUUID } from 'node:crypto';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { BypassesTable, TenantRow } from '../store/schema.js';
import { findUser } from './users.js';

/**
 * One-time bypass (Azure MFA Server; SECURITY.md BYP-01): an administrator lets one user sign in
 * without the second factor, once, within N seconds (default 300, at most 1800), for a stated
 * reason. The next preauth of the user uses it up (one statement: of many sign-ins racing, one
 * gets it). Granting, use, revocation and expiry are audited; expiry is recorded when it is
 * noticed (a preauth of the user, a listing of bypasses), at most once per bypass.
 */
export const BYPASS_DEFAULT_SECONDS = 300;
export const BYPASS_MAX_SECONDS = 1800;

export type BypassStatus = 'active' | 'used' | 'expired' | 'revoked';

export interface BypassView {
  id: string;
  username: string;
  reason: string;
  granted_by: string;
  status: BypassStatus;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  /** The application whose sign-in used it. */
  used_by: string | null;
}

type BypassRow = BypassesTable;

function statusOf(row: BypassRow, now: number): BypassStatus {
  if (row.used_at !== null) return 'used';
  if (row.revoked_at !== null) return 'revoked';
  return Number(row.expires_at) > now ? 'active' : 'expired';
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(Number(ms)).toISOString();
}

function view(row: BypassRow, username: string, applications: Map<string, string>, now: number): BypassView {
  return {
    id: row.id,
    username,
    reason: row.reason,
    granted_by: row.granted_by,
    status: statusOf(row, now),
    created_at: iso(row.created_at) ?? '',
    expires_at: iso(row.expires_at) ?? '',
    used_at: iso(row.used_at),
    used_by: row.used_by === null ? null : (applications.get(row.used_by) ?? row.used_by),
  };
}

export async function grantBypass(services: Services, principal: Principal, tenant: TenantRow, username: string, input: { seconds?: unknown; reason?: unknown }): Promise<BypassView> {
  const seconds = input.seconds ?? BYPASS_DEFAULT_SECONDS;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > BYPASS_MAX_SECONDS) throw invalidInput('seconds', `must be a whole number from 1 to ${BYPASS_MAX_SECONDS}`);
  const reason = typeof input.reason === 'string' ? input.reason.trim() : '';
  if (reason === '' || reason.length > 500 || /\p{Cc}/u.test(reason)) throw invalidInput('reason', 'is required: 1–500 characters saying why the user may skip the second factor');
  const user = await findUser(services.db, tenant.id, username);
  const now = services.clock().getTime();
  const row: BypassRow = { id: randomUUID(), tenant_id: tenant.id, user_id: user.id, reason, granted_by: actorOf(principal), created_at: now, expires_at: now + seconds * 1000, used_at: null, used_by: null, revoked_at: null, expired_at: null };
  await services.writes.run(async (db, record) => {
    // One bypass at a time: a new grant replaces the one still open.
    const replaced = await db.updateTable('bypasses').set({ revoked_at: now }).where('user_id', '=', user.id).where('used_at', 'is', null).where('revoked_at', 'is', null).where('expires_at', '>', now).returning('id').execute();
    for (const old of replaced) record({ tenantId: tenant.id, actor: actorOf(principal), action: 'bypass.revoked', target: user.id, detail: { bypass: old.id, replaced_by: row.id } });
    await db.insertInto('bypasses').values(row).execute();
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'bypass.granted', target: user.id, detail: { bypass: row.id, username: user.username, seconds, reason } });
  });
  return view(row, user.username, new Map(), now);
}

export async function revokeBypass(services: Services, principal: Principal, tenant: TenantRow, id: string): Promise<void> {
  const now = services.clock().getTime();
  const row = await services.db.selectFrom('bypasses').selectAll().where('id', '=', id).where('tenant_id', '=', tenant.id).executeTakeFirst();
  if (row === undefined) throw notFound(`bypass ${id}`);
  if (statusOf(row, now) !== 'active') throw new CountersignError('CONFLICT', `the bypass is already ${statusOf(row, now)}`);
  await services.writes.run(async (db, record) => {
    const moved = await db.updateTable('bypasses').set({ revoked_at: now }).where('id', '=', id).where('used_at', 'is', null).where('revoked_at', 'is', null).executeTakeFirst();
    if (moved.numUpdatedRows !== 1n) throw new CountersignError('CONFLICT', 'the bypass was used or revoked meanwhile');
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'bypass.revoked', target: row.user_id, detail: { bypass: id } });
  });
}

/** Bypasses of a tenant, newest first; expiries not yet recorded are recorded on the way. */
export async function listBypasses(services: Services, tenant: TenantRow, filter: { username?: string | undefined; status?: string | undefined; limit?: number }): Promise<BypassView[]> {
  if (filter.status !== undefined && !['active', 'used', 'expired', 'revoked'].includes(filter.status)) throw invalidInput('status', 'must be active, used, expired or revoked');
  const now = services.clock().getTime();
  await recordExpiredBypasses(services, tenant.id, null, now);
  let query = services.db
    .selectFrom('bypasses')
    .innerJoin('users', 'users.id', 'bypasses.user_id')
    .selectAll('bypasses')
    .select('users.username')
    .where('bypasses.tenant_id', '=', tenant.id)
    .orderBy('bypasses.created_at', 'desc')
    .limit(filter.limit ?? 500);
  if (filter.username !== undefined) query = query.where('bypasses.user_id', '=', (await findUser(services.db, tenant.id, filter.username)).id);
  const rows = await query.execute();
  const applications = new Map((await services.db.selectFrom('applications').select(['id', 'name']).where('tenant_id', '=', tenant.id).execute()).map((a) => [a.id, a.name]));
  return rows.map((r) => view(r, r.username, applications, now)).filter((v) => filter.status === undefined || v.status === filter.status);
}

/** Records, once each, bypasses that ended unused (of one user, or of the whole tenant). */
export async function recordExpiredBypasses(services: Services, tenantId: string, userId: string | null, now: number): Promise<void> {
  let query = services.db.selectFrom('bypasses').select(['id', 'user_id']).where('tenant_id', '=', tenantId).where('used_at', 'is', null).where('revoked_at', 'is', null).where('expired_at', 'is', null).where('expires_at', '<=', now);
  if (userId !== null) query = query.where('user_id', '=', userId);
  const ended = await query.execute();
  if (ended.length === 0) return;
  await services.writes.run(async (db, record) => {
    for (const row of ended) {
      const moved = await db.updateTable('bypasses').set({ expired_at: now }).where('id', '=', row.id).where('expired_at', 'is', null).executeTakeFirst();
      if (moved.numUpdatedRows === 1n) record({ tenantId, actor: 'system', action: 'bypass.expired', target: row.user_id, detail: { bypass: row.id } });
    }
  });
}

/** The user's open bypass, if any (unused, not revoked, not expired). */
export async function openBypass(services: Services, userId: string, now: number): Promise<{ id: string; expires_at: number } | undefined> {
  const row = await services.db
    .selectFrom('bypasses')
    .select(['id', 'expires_at'])
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .orderBy('created_at', 'desc')
    .executeTakeFirst();
  return row === undefined ? undefined : { id: row.id, expires_at: Number(row.expires_at) };
}

/** Uses the bypass up for this sign-in: true for exactly one of any number of racing callers. */
export async function consumeBypass(services: Services, tenantId: string, userId: string, bypassId: string, applicationId: string | null, now: number): Promise<boolean> {
  return services.writes.run(async (db, record) => {
    const moved = await db
      .updateTable('bypasses')
      .set({ used_at: now, used_by: applicationId })
      .where('id', '=', bypassId)
      .where('used_at', 'is', null)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    if (moved.numUpdatedRows !== 1n) return false;
    record({ tenantId, actor: applicationId === null ? 'system' : `application:${applicationId}`, action: 'bypass.used', target: userId, detail: { bypass: bypassId } });
    return true;
  });
}
