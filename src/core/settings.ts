import { invalidInput } from './errors.js';
import { MAX_TRUSTED_RANGES, normalizeRange } from './ip-ranges.js';

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
  /** Phone calls: `press` (# approves), `pin` (the user's PIN then #), or `code` (the call reads a code out). */
  readonly voice_mode: 'press' | 'pin' | 'code';
  /** Text messages: `one_way` (a code to type in) or `two_way` (the user replies to the text). */
  readonly sms_mode: 'one_way' | 'two_way';
  /** Azure "two-way text message timeout": how long a reply is awaited, in seconds. */
  readonly sms_two_way_timeout_seconds: number;
  /** The number calls (and texts, when the provider allows) come from, E.164; null = the provider's. */
  readonly caller_id: string | null;
  /** Language of the spoken prompts (BCP 47), e.g. en-US. */
  readonly phone_language: string;
  /** Azure fraud alert: users may report fraud (0# on a call, the fraud code in reply to a text). */
  readonly fraud_alert_enabled: boolean;
  /** Keys that report fraud on a call before # (Azure default 0). */
  readonly fraud_code: string;
  /** Block the user who reports fraud. */
  readonly fraud_block_user: boolean;
  /** How long the fraud block lasts, in days (Azure: 90); 0 = until an administrator unblocks. */
  readonly fraud_block_days: number;
  /** Azure fraud alert "addresses notified": who is e-mailed when a user reports fraud (at most 20). */
  readonly fraud_notify_emails: string[];
  /** ISO 3166 countries texts and calls may go to; empty = any. */
  readonly phone_countries: string[];
  /** Texts and calls per destination number within the window (SECURITY.md OOB-07). */
  readonly phone_limit_per_number: number;
  /** … per user. */
  readonly phone_limit_per_user: number;
  /** … per client IP. */
  readonly phone_limit_per_ip: number;
  /** … per country calling code (+44, …), against toll fraud. */
  readonly phone_limit_per_country: number;
  /** The window of these limits, in minutes. */
  readonly phone_limit_window_minutes: number;
  /** How long a push waits for its answer, in seconds. */
  readonly push_ttl_seconds: number;
  /** Approve-only push (no number matching) for legacy clients: off unless a tenant asks (SECURITY.md PUSH-01). */
  readonly push_approve_only: boolean;
  /** Push fatigue (PUSH-02): pushes per user in 5 minutes … */
  readonly push_limit_per_5_minutes: number;
  /** … and since the user's last approved push. */
  readonly push_limit_since_success: number;
  /** PIN mode for push: approving also asks for the user's PIN (as calls do in PIN mode). */
  readonly push_pin_mode: boolean;
  /** Azure "Allow users to create app passwords to sign in to non-browser apps" (off by default). */
  readonly app_passwords_allowed: boolean;
  /** Azure trusted IPs: sign-ins from these ranges (at most 50 CIDRs, IPv4 and IPv6) skip the second factor. */
  readonly trusted_ips: string[];
  /** Azure "remember multi-factor authentication on trusted devices", in days; 0 = off. */
  readonly remember_mfa_days: number;
  /** MFA Server caching: a success for the same user and application is reused for this many seconds; 0 = off. */
  readonly cache_seconds: number;
  /** MFA Server caching also requires the same client IP. */
  readonly cache_by_ip: boolean;
  /** Licensed seats (Azure's per-enabled-user model): a warning is recorded when enabled users exceed it; null = no limit. */
  readonly seats: number | null;
  /**
   * Azure "registration campaign": users whose only methods are texts and calls are nudged to
   * register `method` (the authenticator: push or totp); "not now" snoozes them for
   * `snooze_days` (0–14, Azure's range; 0 = nudged at every sign-in); members of
   * `excluded_groups` are never nudged.
   */
  readonly registration_campaign: RegistrationCampaignSettings;
}

export interface RegistrationCampaignSettings {
  readonly enabled: boolean;
  readonly method: 'push' | 'totp';
  readonly snooze_days: number;
  readonly excluded_groups: string[];
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
  voice_mode: 'press',
  sms_mode: 'one_way',
  sms_two_way_timeout_seconds: 300,
  caller_id: null,
  phone_language: 'en-US',
  fraud_alert_enabled: true,
  fraud_code: '0',
  fraud_block_user: true,
  fraud_block_days: 90,
  fraud_notify_emails: [],
  phone_countries: [],
  phone_limit_per_number: 3,
  phone_limit_per_user: 5,
  phone_limit_per_ip: 10,
  phone_limit_per_country: 100,
  phone_limit_window_minutes: 10,
  push_ttl_seconds: 60,
  push_approve_only: false,
  push_limit_per_5_minutes: 3,
  push_limit_since_success: 10,
  push_pin_mode: false,
  app_passwords_allowed: false,
  trusted_ips: [],
  remember_mfa_days: 0,
  cache_seconds: 0,
  cache_by_ip: false,
  seats: null,
  registration_campaign: Object.freeze({ enabled: false, method: 'push', snooze_days: 1, excluded_groups: [] }),
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
  sms_two_way_timeout_seconds: [60, 600],
  fraud_block_days: [0, 365],
  phone_limit_per_number: [1, 100],
  phone_limit_per_user: [1, 100],
  phone_limit_per_ip: [1, 1000],
  phone_limit_per_country: [1, 100000],
  phone_limit_window_minutes: [1, 1440],
  push_ttl_seconds: [30, 300],
  push_limit_per_5_minutes: [1, 50],
  push_limit_since_success: [1, 100],
  remember_mfa_days: [0, 365],
  cache_seconds: [0, 86400],
};

const CHOICES: Partial<Record<keyof TenantSettings, readonly string[]>> = {
  voice_mode: ['press', 'pin', 'code'],
  sms_mode: ['one_way', 'two_way'],
};
const FLAGS: readonly (keyof TenantSettings)[] = ['fraud_alert_enabled', 'fraud_block_user', 'push_approve_only', 'push_pin_mode', 'app_passwords_allowed', 'cache_by_ip'];

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
    } else if (CHOICES[field as keyof TenantSettings] !== undefined) {
      const choices = CHOICES[field as keyof TenantSettings] ?? [];
      if (typeof value !== 'string' || !choices.includes(value)) throw invalidInput(field, `must be one of ${choices.join(', ')}`);
    } else if (FLAGS.includes(field as keyof TenantSettings)) {
      if (typeof value !== 'boolean') throw invalidInput(field, 'must be true or false');
    } else if (field === 'seats') {
      // The CLI passes text for a setting whose default is null: "250" is read as the number.
      const seats = typeof value === 'string' && /^\d{1,8}$/.test(value) ? Number(value) : value;
      if (seats !== null && (typeof seats !== 'number' || !Number.isInteger(seats) || seats < 1 || seats > 10_000_000)) throw invalidInput(field, 'must be a whole number of at least 1 (at most 10000000), or null for no limit');
      next[field] = seats;
      continue;
    } else if (field === 'caller_id') {
      if (value !== null && (typeof value !== 'string' || !/^\+[1-9]\d{6,14}$/.test(value))) throw invalidInput(field, 'must be an E.164 number such as +14255550100, or null');
    } else if (field === 'phone_language') {
      if (typeof value !== 'string' || !/^[a-z]{2,3}(-[A-Z]{2})?$/.test(value)) throw invalidInput(field, 'must be a language tag such as en-US or fr-FR');
    } else if (field === 'fraud_code') {
      if (typeof value !== 'string' || !/^[0-9]{1,4}$/.test(value)) throw invalidInput(field, 'must be 1–4 digits');
    } else if (field === 'phone_countries') {
      if (!Array.isArray(value) || value.some((c) => typeof c !== 'string' || !/^[A-Z]{2}$/.test(c))) {
        throw invalidInput(field, 'must be a list of two-letter ISO 3166 country codes (empty = any country)');
      }
      next[field] = [...new Set(value as string[])];
      continue;
    } else if (field === 'registration_campaign') {
      next[field] = parseRegistrationCampaign(value, current.registration_campaign);
      continue;
    } else if (field === 'fraud_notify_emails') {
      if (!Array.isArray(value) || value.some((a) => typeof a !== 'string' || a.length > 254 || !/^[^\s@<>",;()]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(a.trim()))) {
        throw invalidInput(field, 'must be a list of e-mail addresses such as security@contoso.com');
      }
      const addresses = [...new Set((value as string[]).map((a) => a.trim()))];
      if (addresses.length > 20) throw invalidInput(field, `at most 20 addresses; got ${addresses.length}`);
      next[field] = addresses;
      continue;
    } else if (field === 'trusted_ips') {
      if (!Array.isArray(value)) throw invalidInput(field, 'must be a list of CIDR ranges such as 203.0.113.0/24 or 2001:db8::/32');
      const ranges = [...new Set(value.map((range) => normalizeRange(range, field)))];
      if (ranges.length > MAX_TRUSTED_RANGES) throw invalidInput(field, `at most ${MAX_TRUSTED_RANGES} ranges (Azure's limit); got ${ranges.length}`);
      next[field] = ranges;
      continue;
    }
    next[field] = value;
  }
  return Object.freeze(next) as unknown as TenantSettings;
}

/** A change to the registration campaign: the fields given replace those of `current`; each is checked. */
function parseRegistrationCampaign(value: unknown, current: RegistrationCampaignSettings): RegistrationCampaignSettings {
  const field = 'registration_campaign';
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidInput(field, 'must be an object {enabled, method, snooze_days, excluded_groups}');
  const change = value as Record<string, unknown>;
  for (const key of Object.keys(change)) {
    if (!['enabled', 'method', 'snooze_days', 'excluded_groups'].includes(key)) throw invalidInput(`${field}.${key}`, 'is not a campaign setting (enabled, method, snooze_days, excluded_groups)');
  }
  const enabled = change['enabled'] ?? current.enabled;
  if (typeof enabled !== 'boolean') throw invalidInput(`${field}.enabled`, 'must be true or false');
  const method = change['method'] ?? current.method;
  if (method !== 'push' && method !== 'totp') throw invalidInput(`${field}.method`, 'must be push or totp (the authenticator app users are nudged to register)');
  const snooze = change['snooze_days'] ?? current.snooze_days;
  if (typeof snooze !== 'number' || !Number.isInteger(snooze) || snooze < 0 || snooze > 14) throw invalidInput(`${field}.snooze_days`, 'must be a whole number from 0 to 14');
  const groups = change['excluded_groups'] ?? current.excluded_groups;
  if (!Array.isArray(groups) || groups.length > 100 || groups.some((g) => typeof g !== 'string' || g.trim() === '' || g.length > 256)) {
    throw invalidInput(`${field}.excluded_groups`, 'must be a list of at most 100 group names');
  }
  return Object.freeze({ enabled, method, snooze_days: snooze, excluded_groups: [...new Set((groups as string[]).map((g) => g.trim()))] });
}

/** Reads stored settings, filling defaults for settings added since they were written. */
export function parseStoredSettings(json: string): TenantSettings {
  // Every request reads its tenant's settings; the same text gives the same frozen object.
  const cached = parsed.get(json);
  if (cached !== undefined) return cached;
  const stored = JSON.parse(json) as Record<string, unknown>;
  const known = Object.fromEntries(Object.entries(stored).filter(([k]) => Object.hasOwn(DEFAULT_SETTINGS, k)));
  const merged: TenantSettings = Object.freeze({
    ...DEFAULT_SETTINGS,
    ...known,
    allowed_methods: Object.freeze([...((known['allowed_methods'] as MethodTypeName[] | undefined) ?? DEFAULT_SETTINGS.allowed_methods)]) as MethodTypeName[],
    phone_countries: Object.freeze([...((known['phone_countries'] as string[] | undefined) ?? DEFAULT_SETTINGS.phone_countries)]) as string[],
    trusted_ips: Object.freeze([...((known['trusted_ips'] as string[] | undefined) ?? DEFAULT_SETTINGS.trusted_ips)]) as string[],
    fraud_notify_emails: Object.freeze([...((known['fraud_notify_emails'] as string[] | undefined) ?? DEFAULT_SETTINGS.fraud_notify_emails)]) as string[],
    registration_campaign: Object.freeze({ ...DEFAULT_SETTINGS.registration_campaign, ...((known['registration_campaign'] as Partial<RegistrationCampaignSettings> | undefined) ?? {}) }),
  });
  if (parsed.size >= 1000) parsed.clear();
  parsed.set(json, merged);
  return merged;
}

const parsed = new Map<string, TenantSettings>();
