/** Table types of migration 009-usage: Usage and reports: per-tenant daily usage counts and sign-in records (issue 5 items 10, 11). */
export interface UsageTables {
  sign_ins: SignInsTable;
  usage_days: UsageDaysTable;
  seat_states: SeatStatesTable;
}

export type SignInKind = 'preauth' | 'verify' | 'challenge' | 'app_password';
export type SignInResult = 'approved' | 'denied' | 'fraud';

/** One sign-in decision, projected from its audit record (flows/sign-ins.ts); `seq` is that record's. */
export interface SignInsTable {
  seq: number;
  tenant_id: string;
  at: number;
  /** Days since the Unix epoch (UTC). */
  day: number;
  user_id: string | null;
  username: string | null;
  application_id: string | null;
  kind: SignInKind;
  /** none (preauth without a second factor) | totp | oath | sms | voice | push | code (a code no method matched) | app_password */
  method: string;
  result: SignInResult;
  reason: string | null;
  ip: string | null;
  challenge_id: string | null;
}

/** A tenant's enabled users (state enabled or enforced) as last counted on a UTC day, and the seats then. */
export interface UsageDaysTable {
  tenant_id: string;
  day: number;
  enabled_users: number;
  seats: number | null;
  updated_at: number;
}

/** Whether a tenant's enabled users are above its seat count (1) or not (0), since `changed_at`. */
export interface SeatStatesTable {
  tenant_id: string;
  exceeded: number;
  changed_at: number;
}
