import type { Kysely } from 'kysely';
import type { EmailConfig } from '../../config.js';
import type { Database } from '../../store/schema.js';
import type { SecretBox } from '../../store/secret-box.js';
import { createOutboxEmailChannel } from './outbox-email.js';
import { createSmtpChannel } from './smtp.js';
import type { EmailChannel } from './types.js';

/** SMTP when `email.smtp_url` is configured, the local outbox otherwise (as telephony-channels.ts picks texts and calls). */
export function createEmailChannel(config: EmailConfig, db: Kysely<Database>, secrets: SecretBox, clock: () => Date): EmailChannel {
  return config.smtpUrl === undefined ? createOutboxEmailChannel(db, secrets, clock) : createSmtpChannel(config.smtpUrl, config.from);
}
