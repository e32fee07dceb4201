import { maskPhone } from '../core/phone.js';
import type { Services } from '../services.js';
import type { PhoneType, TenantRow } from '../store/schema.js';
import { tenantSettings } from './tenants.js';

/**
 * The phone methods of a user, derived from their verified phone numbers as in Azure MFA: the
 * mobile number takes texts and calls, office and alternate numbers take calls. Their ids name
 * the kind and the number's type (`sms:mobile`, `voice:office`), stable while the number is.
 * They are never the default method (SECURITY.md OOB-05: an unrestricted method comes first),
 * and only numbers that were proven or pre-registered by an administrator appear.
 */
export interface PhoneMethod {
  id: string;
  type: 'sms' | 'voice';
  label: string;
  phoneType: PhoneType;
  /** E.164; for the flows only, never shown outside the admin API. */
  number: string;
}

const CALL_ORDER: readonly PhoneType[] = ['mobile', 'office', 'alternate'];

export async function userPhoneMethods(services: Services, tenant: TenantRow, userId: string): Promise<PhoneMethod[]> {
  const allowed = tenantSettings(tenant).allowed_methods;
  if (!allowed.includes('sms') && !allowed.includes('voice')) return [];
  const phones = await services.db.selectFrom('user_phones').select(['type', 'number']).where('user_id', '=', userId).where('verified_at', 'is not', null).execute();
  phones.sort((a, b) => CALL_ORDER.indexOf(a.type) - CALL_ORDER.indexOf(b.type));
  const methods: PhoneMethod[] = [];
  for (const phone of phones) {
    if (phone.type === 'mobile' && allowed.includes('sms')) methods.push({ id: 'sms:mobile', type: 'sms', label: `Text ${maskPhone(phone.number)}`, phoneType: 'mobile', number: phone.number });
  }
  for (const phone of phones) {
    if (allowed.includes('voice')) methods.push({ id: `voice:${phone.type}`, type: 'voice', label: `Call ${maskPhone(phone.number)}`, phoneType: phone.type, number: phone.number });
  }
  return methods;
}

/** The phone method a challenge asks for: by id (`voice:office`) or by type (`sms`, `voice`: the first in Azure's order). */
export function choosePhoneMethod(methods: readonly PhoneMethod[], method: string): PhoneMethod | undefined {
  return methods.find((m) => m.id === method) ?? methods.find((m) => m.type === method);
}
