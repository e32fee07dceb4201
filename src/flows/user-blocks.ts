import { CountersignError } from '../core/errors.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow, UserRow } from '../store/schema.js';
import { findUser, viewUser, type UserView } from './users.js';

/**
 * What keeps a user from signing in, and how an administrator lifts it (Azure MFA "Block/unblock
 * users" and account lockout; SECURITY.md PUSH-04, RL-01):
 * - a **block**, by an administrator or after the user reported fraud (flows/fraud.ts), for a
 *   number of days or until unblocked: `users.status = 'blocked'`, `blocked_reason`,
 *   `blocked_until`. Unblock lifts it.
 * - a **lockout** after too many failed second factors (store/attempts.ts): `locked_until`, with
 *   the failure counter. Unlock clears both.
 * Each is one conditional UPDATE with its audit record in the same commit: of two administrators
 * racing, one clears it and the other is told there was nothing left to clear (409).
 */

/** One row of the blocked-users report: a block or a lockout in force now. */
export interface BlockedUserView {
  user_id: string;
  username: string;
  /** `blocked` (an administrator or a fraud report) or `locked_out` (failed second factors). */
  kind: 'blocked' | 'locked_out';
  /** For a block: `fraud` or `admin`; for a lockout: `failed_attempts`. */
  reason: 'fraud' | 'admin' | 'failed_attempts';
  /** When it began, from the audit log; null when no record says. */
  since: string | null;
  /** When it ends by itself; null = until an administrator unblocks. */
  until: string | null;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(Number(ms)).toISOString();
}

/** Clears a lockout and the failure counter; 409 when the user is neither locked out nor has failures counted. */
export async function unlockUser(services: Services, principal: Principal, tenant: TenantRow, user: UserRow): Promise<UserView> {
  const now = services.clock().getTime();
  await services.writes.run(async (db, record) => {
    const before = await db.selectFrom('users').select(['failed_count', 'locked_until']).where('id', '=', user.id).where('tenant_id', '=', tenant.id).executeTakeFirst();
    const cleared = await db
      .updateTable('users')
      .set({ failed_count: 0, failed_since: null, locked_until: null, updated_at: now })
      .where('id', '=', user.id)
      .where('tenant_id', '=', tenant.id)
      .where((eb) => eb.or([eb('locked_until', '>', now), eb('failed_count', '>', 0)]))
      .executeTakeFirst();
    if (cleared.numUpdatedRows !== 1n || before === undefined) {
      throw new CountersignError('CONFLICT', `user ${user.username} is not locked out and has no failed attempts counted: there is nothing to unlock`);
    }
    const lockedUntil = before.locked_until !== null && Number(before.locked_until) > now ? Number(before.locked_until) : null;
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'user.unlocked', target: user.id, detail: { username: user.username, locked_until: iso(lockedUntil), failed_count: Number(before.failed_count) } });
  });
  return viewUser(services.db, await findUser(services.db, tenant.id, user.id), now);
}

/** Lifts a block in force (an administrator's or a fraud report's); 409 when the user is not blocked. */
export async function unblockUser(services: Services, principal: Principal, tenant: TenantRow, user: UserRow): Promise<UserView> {
  const now = services.clock().getTime();
  await services.writes.run(async (db, record) => {
    const before = await db.selectFrom('users').select(['blocked_reason', 'blocked_until']).where('id', '=', user.id).where('tenant_id', '=', tenant.id).executeTakeFirst();
    const lifted = await db
      .updateTable('users')
      .set({ status: 'active', blocked_reason: null, blocked_until: null, updated_at: now })
      .where('id', '=', user.id)
      .where('tenant_id', '=', tenant.id)
      .where('status', '=', 'blocked')
      .where((eb) => eb.or([eb('blocked_until', 'is', null), eb('blocked_until', '>', now)]))
      .executeTakeFirst();
    if (lifted.numUpdatedRows !== 1n || before === undefined) {
      throw new CountersignError('CONFLICT', `user ${user.username} is not blocked: there is nothing to unblock`);
    }
    record({
      tenantId: tenant.id,
      actor: actorOf(principal),
      action: 'user.unblocked',
      target: user.id,
      detail: { username: user.username, reason: before.blocked_reason, until: iso(before.blocked_until === null ? null : Number(before.blocked_until)) },
    });
  });
  return viewUser(services.db, await findUser(services.db, tenant.id, user.id), now);
}

/**
 * The blocked-users report: every block and every lockout in force now, by username (a user both
 * blocked and locked out appears twice, once of each kind). A block whose time has passed, or a
 * lockout that has run out, is not listed: preauth no longer refuses for it.
 */
export async function listBlockedUsers(services: Services, tenant: TenantRow): Promise<BlockedUserView[]> {
  const now = services.clock().getTime();
  const rows = await services.db
    .selectFrom('users')
    .select(['id', 'username', 'status', 'blocked_reason', 'blocked_until', 'locked_until'])
    .where('tenant_id', '=', tenant.id)
    .where((eb) =>
      eb.or([
        eb.and([eb('status', '=', 'blocked'), eb.or([eb('blocked_until', 'is', null), eb('blocked_until', '>', now)])]),
        eb('locked_until', '>', now),
      ]),
    )
    .orderBy('username')
    .execute();
  const since = await startedAt(
    services,
    tenant.id,
    rows.map((r) => r.id),
  );
  const views: BlockedUserView[] = [];
  for (const row of rows) {
    if (row.status === 'blocked' && (row.blocked_until === null || Number(row.blocked_until) > now)) {
      views.push({
        user_id: row.id,
        username: row.username,
        kind: 'blocked',
        reason: row.blocked_reason ?? 'admin',
        since: iso(since.get(`user.blocked:${row.id}`) ?? null),
        until: iso(row.blocked_until === null ? null : Number(row.blocked_until)),
      });
    }
    if (row.locked_until !== null && Number(row.locked_until) > now) {
      views.push({
        user_id: row.id,
        username: row.username,
        kind: 'locked_out',
        reason: 'failed_attempts',
        since: iso(since.get(`user.locked_out:${row.id}`) ?? null),
        until: iso(Number(row.locked_until)),
      });
    }
  }
  return views;
}

/** When each user was last blocked and last locked out, from the audit log: `action:userId` → ms. */
async function startedAt(services: Services, tenantId: string, userIds: string[]): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  // In slices, to stay well inside SQLite's limit on bound parameters.
  for (let i = 0; i < userIds.length; i += 500) {
    const slice = userIds.slice(i, i + 500);
    const rows = await services.db
      .selectFrom('audit_events')
      .select(['action', 'target'])
      .select((eb) => eb.fn.max('at').as('at'))
      .where('tenant_id', '=', tenantId)
      .where('action', 'in', ['user.blocked', 'user.locked_out'])
      .where('target', 'in', slice)
      .groupBy(['action', 'target'])
      .execute();
    for (const row of rows) if (row.target !== null && row.at !== null) found.set(`${row.action}:${row.target}`, Number(row.at));
  }
  return found;
}
