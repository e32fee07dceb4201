import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../store/schema.js';
import type { SecretBox } from '../../store/secret-box.js';
import type { CallStep, Dispatch, OutgoingCall, OutgoingSms, SmsChannel, VoiceChannel } from '../types.js';

/**
 * The local outbox: the default provider, the phone network of a laptop. Every text and call is
 * a row that a person reads and answers with `countersign outbox` (or the admin API), so the
 * phone methods work end to end with no provider account. Texts hold one-time codes, so they
 * are stored sealed like seeds (AES-256-GCM, the row id as additional data): a dump of the
 * database shows none.
 */
export function transcriptOf(step: CallStep): string {
  return step.prompts.map((p) => p.text).join(' ');
}

export function createOutboxChannels(db: Kysely<Database>, secrets: SecretBox, clock: () => Date): { sms: SmsChannel; voice: VoiceChannel } {
  async function store(kind: 'sms' | 'call', to: string, from: string | undefined, text: string, status: string, tenantId: string, challengeId: string | null, reference: string): Promise<Dispatch> {
    const id = randomUUID();
    const { sealed, keyId } = await secrets.seal(Buffer.from(text, 'utf8'), `outbox:${id}`);
    const now = clock().getTime();
    await db
      .insertInto('outbox')
      .values({ id, tenant_id: tenantId, kind, to_number: to, from_number: from ?? null, text_sealed: sealed, key_id: keyId, status, challenge_id: challengeId, reference, created_at: now, updated_at: now })
      .execute();
    return { providerId: id, status: kind === 'sms' ? 'sent' : 'ringing', units: 1 };
  }
  return {
    sms: { provider: 'outbox', send: (sms: OutgoingSms) => store('sms', sms.to, sms.from, sms.text, 'delivered', sms.tenantId, sms.challengeId, sms.reference) },
    voice: {
      provider: 'outbox',
      // The opening step is what the person sees when they look at the ringing call.
      call: (call: OutgoingCall) => store('call', call.to, call.from, transcriptOf(call.opening), 'ringing', call.tenantId, call.challengeId, call.reference),
    },
  };
}
