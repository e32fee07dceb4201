import { randomUUID } from 'node:crypto';
import type { CallStep, Dispatch } from '../channels/types.js';
import { CountersignError } from '../core/errors.js';
import { maskPhone, phoneRegion, REFUSED_LINE_TYPES } from '../core/phone.js';
import type { Services } from '../services.js';
import { purgeWindows, takeFromWindow } from '../store/rate-windows.js';
import type { TenantRow } from '../store/schema.js';
import { tenantSettings } from './tenants.js';

/**
 * Sending texts and placing calls for the flows: the tenant's country allow-list and rate
 * limits first (SECURITY.md OOB-07: per destination number, user, client IP and country calling
 * code), all checked before any provider is called; then the send, recorded in the telephony
 * log (time, tenant, user, masked number, kind, provider id, status, units) for the usage report.
 */
export interface PhoneSendContext {
  readonly tenant: TenantRow;
  readonly userId: string | null;
  readonly challengeId: string | null;
  readonly ip: string | null;
  readonly purpose: 'challenge' | 'phone_verification';
}

/** Refuses (403 or 429 with Retry-After) before anything is sent; counts the send otherwise. */
export async function admitPhoneSend(services: Services, context: PhoneSendContext, to: string): Promise<void> {
  const settings = tenantSettings(context.tenant);
  const { country, callingCode, type } = phoneRegion(to);
  if (type !== undefined && REFUSED_LINE_TYPES.includes(type)) {
    throw new CountersignError('FORBIDDEN', `${maskPhone(to)} is a ${type === 'PREMIUM_RATE' ? 'premium-rate' : 'shared-cost'} number: Countersign does not text or call those`);
  }
  if (settings.phone_countries.length > 0 && (country === null || !settings.phone_countries.includes(country))) {
    throw new CountersignError('FORBIDDEN', `texts and calls to ${country ?? `+${callingCode}`} numbers are not allowed in this tenant (setting phone_countries)`);
  }
  const now = services.clock().getTime();
  const windowMs = settings.phone_limit_window_minutes * 60_000;
  const t = context.tenant.id;
  const limits: [string, number, string][] = [[`${t}:phone:number:${to}`, settings.phone_limit_per_number, `this number (${maskPhone(to)})`]];
  if (context.userId !== null) limits.push([`${t}:phone:user:${context.userId}`, settings.phone_limit_per_user, 'this user']);
  if (context.ip !== null) limits.push([`${t}:phone:ip:${context.ip}`, settings.phone_limit_per_ip, 'this IP address']);
  limits.push([`${t}:phone:cc:${callingCode}`, settings.phone_limit_per_country, `numbers starting +${callingCode}`]);
  for (const [key, max, what] of limits) {
    const take = await takeFromWindow(services.db, key, max, windowMs, now);
    if (!take.allowed) {
      throw new CountersignError('RATE_LIMITED', `too many texts and calls to ${what}: at most ${max} in ${settings.phone_limit_window_minutes} minutes`, { retryAfter: take.retryAfterSeconds });
    }
  }
  // Windows older than a day are never read again.
  if (Math.random() < 0.01) await purgeWindows(services.db, now - 86_400_000);
}

async function logSend(services: Services, context: PhoneSendContext, kind: 'sms' | 'call', provider: string, to: string, id: string): Promise<void> {
  const now = services.clock().getTime();
  await services.db
    .insertInto('telephony_log')
    .values({
      id,
      tenant_id: context.tenant.id,
      user_id: context.userId,
      challenge_id: context.challengeId,
      kind,
      purpose: context.purpose,
      provider,
      provider_id: null,
      number_masked: maskPhone(to),
      country: phoneRegion(to).country,
      status: 'sending',
      units: 0,
      error: null,
      created_at: now,
      updated_at: now,
    })
    .execute();
}

async function logDispatch(services: Services, reference: string, dispatch: Dispatch): Promise<void> {
  await services.db
    .updateTable('telephony_log')
    .set({ provider_id: dispatch.providerId === '' ? null : dispatch.providerId, status: dispatch.status, units: dispatch.units, error: dispatch.error ?? null, updated_at: services.clock().getTime() })
    .where('id', '=', reference)
    .execute();
  if (dispatch.status === 'failed') services.log.warn({ reference, error: dispatch.error }, 'telephony provider refused a send');
}

/** Sends a text; `reference` names it in the telephony log and in the provider's callbacks. */
export async function sendText(services: Services, context: PhoneSendContext, to: string, text: string, reference: string = randomUUID()): Promise<Dispatch> {
  const sms = services.channels.sms;
  await logSend(services, context, 'sms', sms.provider, to, reference);
  const dispatch = await sms.send({ reference, tenantId: context.tenant.id, to, from: tenantSettings(context.tenant).caller_id ?? undefined, text, challengeId: context.challengeId });
  await logDispatch(services, reference, dispatch);
  return dispatch;
}

export function canPlaceCalls(services: Services): boolean {
  return services.channels.voice !== undefined;
}

export async function placeCall(services: Services, context: PhoneSendContext, to: string, opening: CallStep, reference: string): Promise<Dispatch> {
  const voice = services.channels.voice;
  if (voice === undefined) throw new CountersignError('CONFLICT', `the ${services.channels.sms.provider} telephony provider cannot place calls (configure telephony.provider twilio or outbox)`);
  await logSend(services, context, 'call', voice.provider, to, reference);
  const dispatch = await voice.call({ reference, tenantId: context.tenant.id, to, from: tenantSettings(context.tenant).caller_id ?? undefined, challengeId: context.challengeId, opening });
  await logDispatch(services, reference, dispatch);
  return dispatch;
}

/** A provider's later report (delivered, answered, completed, no-answer, …) on a send. */
export async function recordTelephonyStatus(services: Services, reference: string, status: string, units?: number): Promise<void> {
  await services.db
    .updateTable('telephony_log')
    .set({ status, ...(units === undefined ? {} : { units }), updated_at: services.clock().getTime() })
    .where('id', '=', reference)
    .execute();
}

export interface TelephonyLogView {
  id: string;
  at: string;
  user_id: string | null;
  challenge_id: string | null;
  kind: 'sms' | 'call';
  purpose: string;
  provider: string;
  provider_id: string | null;
  number: string;
  country: string | null;
  status: string;
  units: number;
  error: string | null;
}

/** The telephony log of a tenant, newest first: what the usage report counts. Numbers are masked. */
export async function listTelephonyLog(services: Services, tenant: TenantRow, options: { limit: number; since?: number | undefined }): Promise<TelephonyLogView[]> {
  let query = services.db.selectFrom('telephony_log').selectAll().where('tenant_id', '=', tenant.id).orderBy('created_at', 'desc').orderBy('id').limit(options.limit);
  if (options.since !== undefined) query = query.where('created_at', '>=', options.since);
  const rows = await query.execute();
  return rows.map((r) => ({
    id: r.id,
    at: new Date(Number(r.created_at)).toISOString(),
    user_id: r.user_id,
    challenge_id: r.challenge_id,
    kind: r.kind,
    purpose: r.purpose,
    provider: r.provider,
    provider_id: r.provider_id,
    number: r.number_masked,
    country: r.country,
    status: r.status,
    units: Number(r.units),
    error: r.error,
  }));
}
