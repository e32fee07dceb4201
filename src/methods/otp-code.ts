import { matchHotp, matchTotp, type OtpMatch } from '../core/otp/match-otp.js';
import type { TenantSettings } from '../core/settings.js';
import type { MethodRow } from '../store/schema.js';

/**
 * Code methods: `totp` (authenticator app) and `oath` (hardware token, HOTP or TOTP) share
 * the same check; they differ in how they are enrolled (totp/enroll-totp.ts, oath/import).
 */
export const CODE_METHOD_TYPES = ['totp', 'oath'] as const;

/** Azure: at most five OATH tokens / authenticator apps per user. */
export const MAX_CODE_METHODS = 5;

/** A code as users type it: 6 or 8 digits (spaces allowed between groups). */
export const CODE_PATTERN = /^\d{6}(\d{2})?$/;

export function normalizeCode(value: string): string {
  return value.replace(/\s+/g, '');
}

export function matchMethodCode(row: MethodRow, seed: Uint8Array, code: string, settings: TenantSettings, nowMs: number): OtpMatch {
  if (code.length !== row.digits) return { result: 'no_match' };
  const params = { algorithm: row.algorithm, digits: row.digits };
  const nextCounter = Number(row.counter);
  if (row.otp_kind === 'hotp') return matchHotp(seed, params, code, { nextCounter, lookAhead: settings.hotp_look_ahead });
  return matchTotp(seed, params, code, { nowMs, period: row.period ?? 30, window: settings.totp_window, nextCounter });
}
