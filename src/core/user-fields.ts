import { parsePhoneNumberWithError, type CountryCode } from 'libphonenumber-js/max';
import { invalidInput } from './errors.js';

/** Validation of the fields a user is made of, shared by the API, the CLI and CSV imports. */
export const MFA_STATES = ['disabled', 'enabled', 'enforced'] as const;
export type MfaStateName = (typeof MFA_STATES)[number];

export const PHONE_TYPES = ['mobile', 'office', 'alternate'] as const;
export type PhoneTypeName = (typeof PHONE_TYPES)[number];

// A UPN or plain account name: no spaces or control characters; compared case-insensitively.
const USERNAME = /^[^\s\p{Cc}]{1,256}$/u;
// Deliberately loose (RFC 5322 is not a regex); catches typos, not every invalid address.
const EMAIL = /^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+\.[^\s@\p{Cc}]+$/u;

export function normalizeUsername(value: unknown, field = 'username'): string {
  if (typeof value !== 'string' || !USERNAME.test(value.trim())) {
    throw invalidInput(field, 'must be 1–256 characters without spaces or control characters (e.g. alice@contoso.com)');
  }
  return value.trim().toLowerCase();
}

export function normalizeEmail(value: unknown, field = 'email'): string | null {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value !== 'string' || value.length > 320 || !EMAIL.test(value.trim())) throw invalidInput(field, 'is not an email address');
  return value.trim();
}

export function normalizeDisplayName(value: unknown, field = 'display_name'): string | null {
  if (value === null || value === undefined || value === '') return null;
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point (LOG-02)
  if (typeof value !== 'string' || value.length > 256 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw invalidInput(field, 'must be at most 256 characters without control characters');
  }
  return value.trim();
}

export function parseMfaState(value: unknown, field = 'mfa_state'): MfaStateName {
  const state = MFA_STATES.find((s) => s === (typeof value === 'string' ? value.trim().toLowerCase() : value));
  if (state === undefined) throw invalidInput(field, `must be one of ${MFA_STATES.join(', ')}`);
  return state;
}

export function parsePhoneType(value: unknown, field = 'type'): PhoneTypeName {
  const type = PHONE_TYPES.find((t) => t === value);
  if (type === undefined) throw invalidInput(field, `must be one of ${PHONE_TYPES.join(', ')}`);
  return type;
}

/** A phone number in E.164 (+14255550100), parsed by libphonenumber-js. */
export function normalizePhone(value: unknown, defaultCountry: string, field = 'phone'): string {
  if (typeof value !== 'string' || value.trim() === '') throw invalidInput(field, 'must be a phone number');
  try {
    const parsed = parsePhoneNumberWithError(value, defaultCountry as CountryCode);
    if (!parsed.isValid()) throw new Error('invalid');
    return parsed.number;
  } catch {
    throw invalidInput(field, `"${value.slice(0, 32)}" is not a valid phone number (write it as +<country code><number>)`);
  }
}

export function normalizeGroups(value: unknown, field = 'groups'): string[] {
  if (!Array.isArray(value) || value.some((g) => typeof g !== 'string' || g.trim() === '' || g.length > 128)) {
    throw invalidInput(field, 'must be a list of group names (1–128 characters each)');
  }
  return [...new Set(value.map((g: string) => g.trim()))];
}
