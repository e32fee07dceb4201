import { invalidInput } from './errors.js';

/**
 * A tenant's service settings (Azure MFA "service settings"). Stored whole as JSON on the tenant;
 * every change is validated here and refused as a whole, so a rejected change leaves the old
 * settings untouched.
 */
export const METHOD_TYPES = ['totp', 'oath', 'push', 'sms', 'voice', 'webauthn'] as const;
export type MethodTypeName = (typeof METHOD_TYPES)[number];

export interface TenantSettings {
  /** Azure "Number of MFA denials to trigger account lockout" (NIST 800-63B §5.2.2: ≤ 100). */
  readonly lockout_threshold: number;
  /** Azure "Minutes until account lockout counter is reset". */
  readonly lockout_reset_minutes: number;
  /** Azure "Minutes until account is automatically unblocked". */
  readonly lockout_minutes: number;
  /** TOTP steps accepted either side of now: 1 (RFC 6238 §5.2) or 0 for strict mode. */
  readonly totp_window: number;
  /** HOTP look-ahead s (RFC 4226 §7.4). */
  readonly hotp_look_ahead: number;
  /** Methods users of this tenant may use. */
  readonly allowed_methods: MethodTypeName[];
  /** Region for phone numbers written without +country code (ISO 3166-1 alpha-2). */
  readonly default_country: string;
  /** How long a challenge stays open, in seconds. */
  readonly challenge_ttl_seconds: number;
  /** Wrong answers a single challenge takes before it fails. */
  readonly challenge_max_attempts: number;
  /** Open (pending) challenges one user may have at once (SECURITY.md RL-04). */
  readonly challenge_max_open: number;
}

export const DEFAULT_SETTINGS: TenantSettings = Object.freeze({
  lockout_threshold: 10,
  lockout_reset_minutes: 10,
  lockout_minutes: 15,
  totp_window: 1,
  hotp_look_ahead: 10,
  allowed_methods: [...METHOD_TYPES],
  default_country: 'US',
  challenge_ttl_seconds: 300,
  challenge_max_attempts: 5,
  challenge_max_open: 10,
});

const RANGES: Partial<Record<keyof TenantSettings, readonly [number, number]>> = {
  lockout_threshold: [1, 100],
  lockout_reset_minutes: [1, 1440],
  lockout_minutes: [1, 43200],
  totp_window: [0, 1],
  hotp_look_ahead: [0, 50],
  challenge_ttl_seconds: [30, 600],
  challenge_max_attempts: [1, 10],
  challenge_max_open: [1, 50],
};

/** Applies a partial change to settings; throws INVALID_INPUT naming the first bad field. */
export function applySettingsChange(current: TenantSettings, change: Record<string, unknown>): TenantSettings {
  const next: Record<string, unknown> = { ...current };
  for (const [field, value] of Object.entries(change)) {
    // Own properties only: `in` would also accept inherited names such as `toString`.
    if (!Object.hasOwn(DEFAULT_SETTINGS, field)) throw invalidInput(field, 'is not a tenant setting');
    const range = RANGES[field as keyof TenantSettings];
    if (range !== undefined) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < range[0] || value > range[1]) {
        throw invalidInput(field, `must be a whole number from ${range[0]} to ${range[1]}`);
      }
    } else if (field === 'allowed_methods') {
      if (!Array.isArray(value) || value.length === 0 || value.some((m) => !METHOD_TYPES.includes(m as MethodTypeName))) {
        throw invalidInput(field, `must be a non-empty list of ${METHOD_TYPES.join(', ')}`);
      }
      next[field] = [...new Set(value)];
      continue;
    } else if (field === 'default_country') {
      if (typeof value !== 'string' || !/^[A-Z]{2}$/.test(value)) throw invalidInput(field, 'must be a two-letter ISO 3166 country code, e.g. US');
    }
    next[field] = value;
  }
  return Object.freeze(next) as unknown as TenantSettings;
}

/** Reads stored settings, filling defaults for settings added since they were written. */
export function parseStoredSettings(json: string): TenantSettings {
  // Every request reads its tenant's settings; the same text gives the same frozen object.
  const cached = parsed.get(json);
  if (cached !== undefined) return cached;
  const stored = JSON.parse(json) as Record<string, unknown>;
  const known = Object.fromEntries(Object.entries(stored).filter(([k]) => Object.hasOwn(DEFAULT_SETTINGS, k)));
  const merged: TenantSettings = Object.freeze({ ...DEFAULT_SETTINGS, ...known, allowed_methods: Object.freeze([...((known['allowed_methods'] as MethodTypeName[] | undefined) ?? DEFAULT_SETTINGS.allowed_methods)]) as MethodTypeName[] });
  if (parsed.size >= 1000) parsed.clear();
  parsed.set(json, merged);
  return merged;
}

const parsed = new Map<string, TenantSettings>();
