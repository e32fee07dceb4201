import type { Generated } from 'kysely';

/** Table types of migration 012-enrollment: registration — enrollment links and the registration campaign's snoozes (issue 5 item 1). */
export interface EnrollmentTables {
  enrollment_links: EnrollmentLinksTable;
  registration_snoozes: RegistrationSnoozesTable;
}

/** A single-use enrollment link: the token (≥ 128 bits) is shown once; only its SHA-256 is kept. */
export interface EnrollmentLinksTable {
  id: string;
  tenant_id: string;
  user_id: string;
  /** SHA-256 (hex) of the token. */
  token_hash: string;
  /** Method types the link may register, comma-separated (totp, push, sms, voice). */
  methods: string;
  /** Who created it (the actor string of the audit log). */
  created_by: string;
  created_at: number;
  expires_at: number;
  /** When the first method was registered through it. */
  first_method_at: number | null;
  /** When the user completed registration with it (it is then spent). */
  used_at: number | null;
  revoked_at: number | null;
}

/** The registration campaign: a user who chose "not now" is not nudged before `snoozed_until`. */
export interface RegistrationSnoozesTable {
  user_id: string;
  tenant_id: string;
  snoozed_until: number;
  snoozes: Generated<number>;
}
