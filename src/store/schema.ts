import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { PolicyTables } from './schema-policies.js';
import type { UsageTables } from './schema-usage.js';
import type { WebhookTables } from './schema-webhooks.js';
import type { EnrollmentTables } from './schema-enrollment.js';

/** A nullable column added by a later migration: inserts may leave it out (it is then null). */
type Later<T> = ColumnType<T | null, T | null | undefined, T | null>;

/**
 * The tables, as Kysely sees them. Times are milliseconds since the Unix epoch (UTC), stored as
 * integers so that the same comparisons work on SQLite and PostgreSQL. Flags are 0/1 integers.
 * One row per credential (`methods`); nothing here is a JSON column that queries look into
 * (`tenants.settings` and `audit_events.detail` are read and written whole).
 */
export interface Database extends PolicyTables, UsageTables, WebhookTables, EnrollmentTables {
  tenants: TenantsTable;
  users: UsersTable;
  user_phones: UserPhonesTable;
  user_groups: UserGroupsTable;
  applications: ApplicationsTable;
  api_keys: ApiKeysTable;
  methods: MethodsTable;
  data_keys: DataKeysTable;
  challenges: ChallengesTable;
  audit_events: AuditEventsTable;
  audit_head: AuditHeadTable;
  notifications: NotificationsTable;
  store_meta: StoreMetaTable;
  telephony_log: TelephonyLogTable;
  outbox: OutboxTable;
  rate_windows: RateWindowsTable;
  webhook_events: WebhookEventsTable;
  phone_greetings: PhoneGreetingsTable;
  push_activations: PushActivationsTable;
  push_devices: PushDevicesTable;
  bypasses: BypassesTable;
  remember_tokens: RememberTokensTable;
  mfa_successes: MfaSuccessesTable;
  app_passwords: AppPasswordsTable;
}

export interface TenantsTable {
  id: string;
  name: string;
  /** TenantSettings as JSON, validated on every write. */
  settings: string;
  created_at: number;
  /**
   * Migration 008: how many enabled conditional access policies the tenant has, set by
   * flows/policies.ts in the transaction of every policy change. Sign-ins skip reading the
   * policies when it is 0. Written through Kysely, but not part of TenantRow (select type
   * never): tenant rows are built by hand (flows/tenants.ts, flows/api-keys.ts) and may be
   * older than the sign-in, so readers take it fresh, joined in the query that reads the user
   * (`sql.ref('tenants.policy_count')`, see flows/policies.ts policyCountColumn).
   */
  policy_count: ColumnType<never, never, number>;
}

export type MfaState = 'disabled' | 'enabled' | 'enforced';
export type UserStatus = 'active' | 'blocked';

export interface UsersTable {
  id: string;
  tenant_id: string;
  /** The UPN, lower-cased: unique per tenant. */
  username: string;
  display_name: string | null;
  email: string | null;
  mfa_state: MfaState;
  status: UserStatus;
  /** Why the user is blocked: 'fraud' (reported fraud) or 'admin'; null when active. */
  blocked_reason: 'fraud' | 'admin' | null;
  /** Until when a block lasts (fraud block); null = until an administrator unblocks. */
  blocked_until: number | null;
  /** Failed verifications since failed_since (RFC 4226 §7.3: counted across all sessions). */
  failed_count: Generated<number>;
  failed_since: number | null;
  locked_until: number | null;
  /** argon2id PHC string of the PIN asked on calls in PIN mode; null = no PIN set. */
  pin_hash: Later<string>;
  created_at: number;
  updated_at: number;
}

export type PhoneType = 'mobile' | 'office' | 'alternate';

export interface UserPhonesTable {
  id: string;
  tenant_id: string;
  user_id: string;
  type: PhoneType;
  /** E.164 */
  number: string;
  created_at: number;
  /** When the number was proven (a code sent to it read back) or pre-registered by an administrator; null = not usable yet. */
  verified_at: Later<number>;
  /** While the number is being proven: HMAC of the code sent to it, its expiry, attempts used. */
  verify_code_hash: Later<string>;
  verify_expires_at: Later<number>;
  verify_attempts: Generated<number>;
}

export interface UserGroupsTable {
  tenant_id: string;
  user_id: string;
  name: string;
}

export interface ApplicationsTable {
  id: string;
  tenant_id: string;
  name: string;
  created_at: number;
}

export type ApiKeyKind = 'admin' | 'application';
/** What an administrator key may do (Azure's roles): see src/http/admin-roles.ts. */
export type AdminRole = 'global_admin' | 'authentication_admin' | 'reader';

export interface ApiKeysTable {
  id: string;
  kind: ApiKeyKind;
  /** null on an admin key = every tenant. */
  tenant_id: string | null;
  application_id: string | null;
  name: string;
  /** SHA-256 of the key, hex. Keys carry 256 random bits, so a fast hash is enough. */
  key_hash: string;
  created_at: number;
  revoked_at: number | null;
  /** When its expiry unused was recorded in the audit log. */
  expired_at: number | null;
  /** An admin key's role; null on an application key. */
  role: AdminRole | null;
}

export type MethodType = 'totp' | 'oath';
export type MethodStatus = 'pending' | 'active';
export type OtpKind = 'hotp' | 'totp';

export interface MethodsTable {
  id: string;
  tenant_id: string;
  /** null = an OATH token in the tenant's inventory, not yet assigned. */
  user_id: string | null;
  type: MethodType;
  status: MethodStatus;
  label: string;
  is_default: Generated<number>;
  otp_kind: OtpKind;
  algorithm: 'SHA1' | 'SHA256' | 'SHA512';
  digits: number;
  /** TOTP step in seconds; null for HOTP. */
  period: number | null;
  /**
   * The lowest HOTP counter or TOTP time step that may still be accepted. A verification that
   * matches step s consumes it with `SET counter = s + 1 WHERE counter <= s` (RFC 6238 §5.2).
   */
  counter: number;
  /** AES-256-GCM sealed seed (see secret-box.ts); never the seed itself. */
  secret: string;
  key_id: string;
  serial: string | null;
  manufacturer: string | null;
  model: string | null;
  created_at: number;
  activated_at: number | null;
  last_used_at: number | null;
}

export interface DataKeysTable {
  id: string;
  /** The key-encryption key that wraps this data key. */
  kek_id: string;
  wrapped_key: string;
  active: number;
  created_at: number;
}

/** Open: pending (a code challenge), sent (a text), calling, answered (a call). Then one final status. */
export type ChallengeStatus = 'pending' | 'sent' | 'calling' | 'answered' | 'approved' | 'denied' | 'fraud' | 'expired' | 'failed';

export interface ChallengesTable {
  id: string;
  tenant_id: string;
  /** The application that created it; only that application reads or answers it. */
  application_id: string | null;
  user_id: string;
  method_id: string | null;
  type: string;
  status: ChallengeStatus;
  app: string | null;
  ip: string | null;
  event_title: string | null;
  event_detail: string | null;
  attempts: Generated<number>;
  expires_at: number;
  created_at: number;
  decided_at: number | null;
  /** sms/voice: the E.164 number the text or call went to. */
  destination: Later<string>;
  /** HMAC of a one-time code sent by text or read out by a call (never the code). */
  code_hash: Later<string>;
  /** sms: one_way | two_way; voice: press | pin | code. */
  mode: Later<string>;
  /** Why a final status was reached: no_answer, busy, hang_up, timeout, wrong_pin, not_confirmed, … */
  reason: Later<string>;
  /** A call's progress (JSON: core/call-script.ts CallState). */
  call_state: Later<string>;
  /** The telephony log id of the text or call (providers echo it in callbacks). */
  reference: Later<string>;
  /** push: the number the sign-in screen shows and the user types into the authenticator (number matching). */
  number: Later<string>;
  /** When the application was given a remember token for this approval (once only). */
  remember_issued_at: Later<number>;
}

export interface AuditEventsTable {
  seq: number;
  at: number;
  tenant_id: string | null;
  actor: string;
  action: string;
  target: string | null;
  /** JSON object, never holding a code, seed, password or key. */
  detail: string;
  prev_hash: string;
  hash: string;
}

export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

/** `superseded`: queued before e-mail was sent at all (migration 010), never sent. */
export type NotificationStatus = 'queued' | 'sent' | 'failed' | 'superseded';

/** A message waiting for (or sent through) a channel; never holding a code, seed or key. */
export interface NotificationsTable {
  id: string;
  tenant_id: string;
  user_id: string | null;
  /** What happened: `otp_replay`, … */
  kind: string;
  /** `email` now; the phone and push channels add theirs. */
  channel: string;
  /** Where it goes (the user's email at the time), or null when the user has none (then `failed` at once). */
  recipient: string | null;
  status: NotificationStatus;
  /** JSON object for the message template. */
  detail: string;
  created_at: number;
  sent_at: number | null;
  /** E-mail delivery (migration 010): tries so far, when to try again, a sender's claim, the last failure. */
  attempts: Generated<number>;
  next_attempt_at: Later<number>;
  locked_until: Later<number>;
  last_error: Later<string>;
}

/** Facts about the store itself, by name (`audit_key_check`: see keyring.ts). */
export interface StoreMetaTable {
  name: string;
  value: string;
}

export interface TelephonyLogTable {
  /** Countersign's reference for the text or call. */
  id: string;
  tenant_id: string;
  user_id: string | null;
  challenge_id: string | null;
  kind: 'sms' | 'call';
  /** challenge | phone_verification */
  purpose: string;
  provider: string;
  provider_id: string | null;
  /** +1 XXX-XXX-4788: the full number is never logged. */
  number_masked: string;
  /** ISO 3166 country of the number. */
  country: string | null;
  status: string;
  units: number;
  error: string | null;
  created_at: number;
  updated_at: number;
}

export interface OutboxTable {
  id: string;
  tenant_id: string;
  /** `email`: an e-mail kept here when no SMTP server is configured (to_number holds the address). */
  kind: 'sms' | 'call' | 'email';
  to_number: string;
  from_number: string | null;
  /** The text, or a call's transcript, sealed like seeds (a text may hold a code). */
  text_sealed: string;
  key_id: string;
  status: string;
  challenge_id: string | null;
  reference: string;
  created_at: number;
  updated_at: number;
}

export interface RateWindowsTable {
  key: string;
  window_start: number;
  count: number;
}

/** A tenant's call prompt (Azure's custom voice messages), per language and message type. */
export interface PhoneGreetingsTable {
  /** Random: also the unguessable name under which the audio is served to the provider. */
  id: string;
  tenant_id: string;
  language: string;
  /** greeting | pin_greeting | fraud_prompt | fraud_confirmed | success | denied | retry | code */
  kind: string;
  /** What is spoken (text-to-speech), and what the outbox shows; also kept beside an audio file. */
  text: string;
  /** The uploaded audio file, base64 (at most 1 MB), or null for text-to-speech. */
  audio: string | null;
  audio_type: string | null;
  updated_at: number;
}

export interface PushActivationsTable {
  id: string;
  tenant_id: string;
  user_id: string;
  /** SHA-256 of the activation code (128 random bits): the code itself is shown once. */
  code_hash: string;
  expires_at: number;
  used_at: number | null;
  /** 1: activation also enrolls a TOTP method whose secret goes to the authenticator (offline codes). */
  with_totp: Generated<number>;
  created_at: number;
  /** The enrollment link it was started through (migration 012), or null. */
  enrollment_link_id: Generated<string | null>;
}

/** An activated authenticator: only its P-256 public key is kept (SECURITY.md PUSH-03). */
export interface PushDevicesTable {
  id: string;
  tenant_id: string;
  user_id: string;
  name: string;
  /** SPKI DER, base64. */
  public_key: string;
  /** How it is told of a request when not streaming: `poll` (it fetches), `webpush`, `fcm`, `apns`. */
  channel: string;
  /** The channel's address of the device: a Web Push subscription (JSON), an FCM or APNs token. */
  target: Later<string>;
  created_at: number;
  last_seen_at: number | null;
}

export interface WebhookEventsTable {
  provider: string;
  event_id: string;
  received_at: number;
}

export type TenantRow = Selectable<TenantsTable>;
export type UserRow = Selectable<UsersTable>;
export type MethodRow = Selectable<MethodsTable>;
export type NewMethod = Insertable<MethodsTable>;
export type ChallengeRow = Selectable<ChallengesTable>;
export type UserUpdate = Updateable<UsersTable>;

/** A one-time bypass (Azure MFA Server): the next preauth within its time allows without a second factor. */
export interface BypassesTable {
  id: string;
  tenant_id: string;
  user_id: string;
  reason: string;
  /** Who granted it (the administrator key's actor string). */
  granted_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /** The application whose preauth used it. */
  used_by: string | null;
  revoked_at: number | null;
  /** When its expiry unused was recorded in the audit log. */
  expired_at: number | null;
}

/** "Remember MFA on this device": a token bound to a user and an application, stored as its hash. */
export interface RememberTokensTable {
  id: string;
  tenant_id: string;
  user_id: string;
  application_id: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
}

/** The last approved second factor per user, application (and client IP), for MFA Server caching. */
export interface MfaSuccessesTable {
  tenant_id: string;
  user_id: string;
  application_id: string;
  /** '' when the application gave no IP. */
  ip: string;
  at: number;
}

/** App passwords for legacy (non-browser) clients: generated, shown once, stored as hashes. */
export interface AppPasswordsTable {
  id: string;
  tenant_id: string;
  user_id: string;
  name: string;
  password_hash: string;
  created_at: number;
  last_used_at: number | null;
  last_used_ip: string | null;
}
