import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../store/schema.js';
import type { SecretBox } from '../../store/secret-box.js';
import type { EmailChannel, OutgoingEmail } from './types.js';

/**
 * E-mail's local outbox, the default when no SMTP server is configured: each message is a row of
 * the telephony outbox (kind `email`, the address in `to_number`), sealed like texts are, which a
 * person reads with `countersign outbox list` or GET /v1/admin/outbox.
 */
export function createOutboxEmailChannel(db: Kysely<Database>, secrets: SecretBox, clock: () => Date): EmailChannel {
  return {
    provider: 'outbox',
    async send(email: OutgoingEmail) {
      const id = randomUUID();
      const { sealed, keyId } = await secrets.seal(Buffer.from(`Subject: ${email.subject}\n\n${email.text}`, 'utf8'), `outbox:${id}`);
      const now = clock().getTime();
      await db
        .insertInto('outbox')
        .values({ id, tenant_id: email.tenantId, kind: 'email', to_number: email.to, from_number: null, text_sealed: sealed, key_id: keyId, status: 'delivered', challenge_id: null, reference: email.reference, created_at: now, updated_at: now })
        .execute();
      return { providerId: id };
    },
    close: () => Promise.resolve(),
  };
}
