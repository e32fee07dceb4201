import { randomUUID } from 'node:crypto';
import type { Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';

/**
 * The notification outbox. Flows queue what a person must be told (SECURITY.md OTP-09: a
 * replayed code is reported to its holder); the email channel, when it comes, sends what is
 * queued. Queuing is a row in the store, so nothing is lost when no channel is configured yet.
 */
export interface NotificationView {
  id: string;
  user_id: string | null;
  kind: string;
  channel: string;
  recipient: string | null;
  status: string;
  detail: Record<string, unknown>;
  created_at: string;
}

export async function queueUserNotification(
  services: Services,
  tenant: TenantRow,
  userId: string,
  kind: string,
  detail: Record<string, string | number | boolean | null>,
): Promise<void> {
  const now = services.clock().getTime();
  // One message per minute and kind is enough: fifty replays of one code are one event to a person.
  const recent = await services.db
    .selectFrom('notifications')
    .select('id')
    .where('user_id', '=', userId)
    .where('kind', '=', kind)
    .where('status', 'in', ['queued', 'sent', 'failed'])
    .where('created_at', '>', now - 60_000)
    .executeTakeFirst();
  if (recent !== undefined) return;
  const user = await services.db.selectFrom('users').select(['email', 'username']).where('id', '=', userId).executeTakeFirst();
  if (user === undefined) return;
  await services.db
    .insertInto('notifications')
    .values({
      id: randomUUID(),
      tenant_id: tenant.id,
      user_id: userId,
      kind,
      channel: 'email',
      recipient: user.email,
      // Kept for the record either way; a user without an e-mail address cannot be told.
      status: user.email === null ? 'failed' : 'queued',
      ...(user.email === null ? { last_error: 'the user has no e-mail address' } : {}),
      detail: JSON.stringify({ username: user.username, ...detail }),
      created_at: now,
      sent_at: null,
    })
    .execute();
}

export async function listNotifications(services: Services, tenant: TenantRow, options: { userId?: string | undefined; limit: number }): Promise<NotificationView[]> {
  let query = services.db.selectFrom('notifications').selectAll().where('tenant_id', '=', tenant.id).orderBy('created_at', 'desc').orderBy('id').limit(options.limit);
  if (options.userId !== undefined) query = query.where('user_id', '=', options.userId);
  const rows = await query.execute();
  return rows.map((r) => ({
    id: r.id,
    user_id: r.user_id,
    kind: r.kind,
    channel: r.channel,
    recipient: r.recipient,
    status: r.status,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
    created_at: new Date(Number(r.created_at)).toISOString(),
  }));
}
