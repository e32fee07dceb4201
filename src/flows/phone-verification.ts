import { randomUUID } from 'node:crypto';
import { CountersignError } from '../core/errors.js';
import { maskPhone } from '../core/phone.js';
import { normalizePhone, parsePhoneType } from '../core/user-fields.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { ChallengeRow, TenantRow, UserRow } from '../store/schema.js';
import { OPEN_STATUSES, type ChallengeView } from './challenge-state.js';
import { answerPhoneCode, dispatchPhoneChallenge, preparePhoneChallenge } from './phone-challenges.js';
import { tenantSettings } from './tenants.js';

/**
 * Proving a phone number (SECURITY.md OOB-05: only verified numbers take sign-in texts and
 * calls): a code goes to the number — a text to a mobile number, a call that reads it out to an
 * office or alternate one — and the number becomes usable when the code is read back. The
 * proof is a challenge of its own (method `verify:<type>`), so it has the same single use,
 * expiry, attempt cap, lockout and limits as a sign-in code. Numbers an administrator enters
 * directly are pre-registered and need no proof (Azure could not do this).
 */
export interface PhoneVerificationView {
  challenge_id: string;
  type: string;
  number: string;
  status: string;
  expires_at: string;
}

export async function startPhoneVerification(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, typeInput: unknown, numberInput: unknown): Promise<PhoneVerificationView> {
  const type = parsePhoneType(typeInput);
  const number = normalizePhone(numberInput, tenantSettings(tenant).default_country, 'number');
  const now = services.clock().getTime();
  const current = await services.db.selectFrom('user_phones').selectAll().where('user_id', '=', user.id).where('type', '=', type).executeTakeFirst();
  if (current?.number === number && current.verified_at !== null) throw new CountersignError('CONFLICT', `the ${type} number ${maskPhone(number)} is already verified`);
  const base = { id: randomUUID(), tenant_id: tenant.id, application_id: null, user_id: user.id, app: null, ip: null, event_title: null, event_detail: null, attempts: 0, created_at: now, decided_at: null, number: null, remember_issued_at: null };
  // Limits and the country allow-list first: nothing changes when they refuse.
  const prepared = await preparePhoneChallenge(services, tenant, base, { id: `verify:${type}`, type: type === 'mobile' ? 'sms' : 'voice', label: '', phoneType: type, number }, { forceCode: true });
  await services.db.transaction().execute(async (trx) => {
    // A new number replaces the old one of its type, unverified until proven.
    if (current === undefined) {
      await trx.insertInto('user_phones').values({ id: randomUUID(), tenant_id: tenant.id, user_id: user.id, type, number, created_at: now, verified_at: null }).execute();
    } else if (current.number !== number) {
      await trx.updateTable('user_phones').set({ number, verified_at: null, created_at: now }).where('id', '=', current.id).execute();
    }
    await trx.insertInto('challenges').values(prepared.row).execute();
  });
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'phone.verification_started', target: user.id, detail: { type, number: maskPhone(number) } });
  const row = await dispatchPhoneChallenge(services, tenant, prepared.row, prepared);
  return { challenge_id: row.id, type, number, status: row.status, expires_at: new Date(Number(row.expires_at)).toISOString() };
}

/** Reads the code back: the newest open proof of that number type. Approved → the number is verified. */
export async function confirmPhoneVerification(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, typeInput: unknown, code: unknown): Promise<ChallengeView & { verified: boolean }> {
  const type = parsePhoneType(typeInput);
  const row: ChallengeRow | undefined = await services.db
    .selectFrom('challenges')
    .selectAll()
    .where('user_id', '=', user.id)
    .where('method_id', '=', `verify:${type}`)
    .where('status', 'in', OPEN_STATUSES)
    .where('expires_at', '>', services.clock().getTime())
    .orderBy('created_at', 'desc')
    .executeTakeFirst();
  if (row === undefined) {
    const phone = await services.db.selectFrom('user_phones').select(['number', 'verified_at']).where('user_id', '=', user.id).where('type', '=', type).executeTakeFirst();
    if (phone?.verified_at !== null && phone?.verified_at !== undefined) throw new CountersignError('CONFLICT', `the ${type} number ${maskPhone(phone.number)} is already verified`);
    throw new CountersignError('NOT_FOUND', `no code is waiting to be read back for the ${type} number (codes are good for 10 minutes): start again with phone verify`);
  }
  const answer = await answerPhoneCode(services, principal, tenant, row, code);
  if (answer.status !== 'approved') return { ...answer, verified: false };
  const proven = await services.db
    .updateTable('user_phones')
    .set({ verified_at: services.clock().getTime() })
    .where('user_id', '=', user.id)
    .where('type', '=', type)
    .where('number', '=', row.destination ?? '')
    .executeTakeFirst();
  // The number was replaced while its code travelled: the code proved a number the user no longer has.
  if (proven.numUpdatedRows === 0n) return { ...answer, verified: false, reason: 'number_changed' };
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'phone.verified', target: user.id, detail: { type, number: maskPhone(row.destination ?? '') } });
  return { ...answer, verified: true };
}
