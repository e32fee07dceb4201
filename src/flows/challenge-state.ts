import type { Services } from '../services.js';
import type { ChallengeRow, ChallengeStatus } from '../store/schema.js';

/**
 * A challenge's life: open (`pending` for a code; `sent` for a text; `calling`, then `answered`,
 * for a call), then exactly one final status — `approved`, `denied`, `fraud`, `expired`,
 * `failed` — reached by one atomic `UPDATE … WHERE status IN (open)` (SPEC: single use).
 */
export const OPEN_STATUSES: readonly ChallengeStatus[] = ['pending', 'sent', 'calling', 'answered'];

export function isOpen(status: ChallengeStatus): boolean {
  return OPEN_STATUSES.includes(status);
}

export interface ChallengeView {
  id: string;
  status: ChallengeStatus;
  type: string;
  expires_at: string;
  number?: number;
  /** Why the challenge ended or an answer did not approve: `invalid_code`, `locked_out`, `no_answer`, `wrong_pin`, … */
  reason?: string;
}

export function viewChallenge(row: ChallengeRow): ChallengeView {
  const view: ChallengeView = { id: row.id, status: row.status, type: row.type, expires_at: new Date(Number(row.expires_at)).toISOString() };
  // Number matching: the sign-in screen shows this; the user types it into the authenticator.
  if (row.number !== null) view.number = Number(row.number);
  if (row.reason !== null && !isOpen(row.status)) view.reason = row.reason;
  return view;
}

/** Moves an open challenge to a final status, once; wakes its waiters. Returns whether this call did it. */
export async function decideChallenge(services: Services, id: string, status: ChallengeStatus, reason: string | null = null): Promise<boolean> {
  const result = await services.db
    .updateTable('challenges')
    .set({ status, reason, decided_at: services.clock().getTime() })
    .where('id', '=', id)
    .where('status', 'in', OPEN_STATUSES)
    .executeTakeFirst();
  const decided = result.numUpdatedRows === 1n;
  if (decided) services.notifier.publish(id);
  return decided;
}

/** Ends every open challenge of a user (blocked: by an administrator or a fraud report), waking their waiters. */
export async function denyOpenChallenges(services: Services, userId: string, reason: string): Promise<number> {
  const open = await services.db.selectFrom('challenges').select('id').where('user_id', '=', userId).where('status', 'in', OPEN_STATUSES).execute();
  let denied = 0;
  for (const { id } of open) if (await decideChallenge(services, id, 'denied', reason)) denied++;
  return denied;
}
