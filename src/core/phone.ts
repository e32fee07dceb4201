import { parsePhoneNumberFromString } from 'libphonenumber-js/max';

/**
 * Phone numbers as people may see them outside the admin API (logs, audit records, the
 * telephony log, method labels in preauth): the country code and the last four digits only,
 * e.g. `+1 XXX-XXX-4788`.
 */
export function maskPhone(e164: string): string {
  const parsed = parsePhoneNumberFromString(e164);
  if (parsed === undefined) return 'XXXX';
  const national = parsed.formatInternational().replace(`+${parsed.countryCallingCode}`, '').trim();
  const digits = national.replace(/\D/g, '').length;
  let seen = 0;
  const masked = [...national]
    .map((ch) => {
      if (!/\d/.test(ch)) return ch === ' ' ? '-' : ch;
      seen++;
      return seen > digits - 4 ? ch : 'X';
    })
    .join('');
  return `+${parsed.countryCallingCode} ${masked}`;
}

/** The ISO 3166 country, the calling code and the line type (MOBILE, PREMIUM_RATE, …) of an E.164 number. */
export function phoneRegion(e164: string): { country: string | null; callingCode: string; type: string | undefined } {
  const parsed = parsePhoneNumberFromString(e164);
  return { country: parsed?.country ?? null, callingCode: parsed?.countryCallingCode ?? e164.slice(1, 3), type: parsed?.getType() };
}

/** Line types never texted or called: their cost is the toll-fraud business model (SECURITY.md OOB-07). */
export const REFUSED_LINE_TYPES: readonly string[] = ['PREMIUM_RATE', 'SHARED_COST'];
