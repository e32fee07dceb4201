import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { AuditEntry } from './store/audit-log.js';
import type { Store } from './store/database.js';
import type { GroupCommit } from './store/group-commit.js';
import type { Keyring } from './store/keyring.js';
import type { AdminRole, Database } from './store/schema.js';
import type { SecretBox } from './store/secret-box.js';
import type { ChallengeNotifier } from './flows/challenge-notifier.js';
import type { PushChannels } from './channels/push/push-channels.js';
import type { GeoLocator } from './channels/geoip.js';
import type { SmsChannel, VoiceChannel } from './channels/types.js';
import type { EmailChannel } from './channels/email/types.js';

/**
 * What flows are given by the composition root (app.ts): the store, the keys, a clock and a
 * random source (injected so tests can fix them), the audit log and a logger. Flows receive
 * this object; nothing reads globals.
 */
export interface Services {
  readonly config: Config;
  readonly store: Store;
  readonly db: Kysely<Database>;
  readonly keyring: Keyring;
  readonly secrets: SecretBox;
  readonly clock: () => Date;
  readonly random: (bytes: number) => Buffer;
  readonly log: Logger;
  readonly notifier: ChallengeNotifier;
  /** Where texts, calls and e-mail go: the local outbox by default, or the configured provider (e-mail: `email.smtp_url`). */
  readonly channels: { readonly sms: SmsChannel; readonly voice: VoiceChannel | undefined; readonly push: PushChannels; readonly email: EmailChannel };
  /** Locations of IP addresses for push requests, from the GeoIP database (`geoip.database`); null everywhere without one. */
  readonly geo: GeoLocator;
  /** Short write transactions committed together with their audit records (group commit). */
  readonly writes: GroupCommit;
  audit(entry: AuditEntry): Promise<void>;
}

/** Who is acting, for authorization and the audit log. */
export type Principal =
  | { readonly kind: 'admin'; readonly keyId: string; readonly tenantId: string | null; readonly role: AdminRole; readonly name: string }
  | { readonly kind: 'application'; readonly keyId: string; readonly applicationId: string; readonly tenantId: string }
  | { readonly kind: 'cli' }
  | { readonly kind: 'system' };

export function actorOf(principal: Principal): string {
  switch (principal.kind) {
    case 'admin':
      return `admin-key:${principal.keyId}`;
    case 'application':
      return `application:${principal.applicationId}`;
    case 'cli':
      return 'cli';
    case 'system':
      return 'system';
  }
}
