import type { Kysely } from 'kysely';
import type { Config } from '../config.js';
import type { Database } from '../store/schema.js';
import type { SecretBox } from '../store/secret-box.js';
import { createOutboxChannels } from './outbox/outbox-channel.js';
import { createHttpSms } from './sms/http-gateway.js';
import { createTwilioSms } from './twilio/sms.js';
import { createTwilioVoice } from './twilio/voice.js';
import type { SmsChannel, VoiceChannel } from './types.js';

/** The channels the configuration asks for (config.telephony.provider); the outbox by default. */
export function createTelephonyChannels(config: Config, db: Kysely<Database>, secrets: SecretBox, clock: () => Date): { sms: SmsChannel; voice: VoiceChannel | undefined } {
  const outbox = createOutboxChannels(db, secrets, clock);
  const { provider, twilio, http } = config.telephony;
  if (provider === 'twilio' && twilio !== undefined) return { sms: createTwilioSms(twilio, config.publicUrl), voice: createTwilioVoice(twilio, config.publicUrl) };
  // A plain SMS gateway places no calls: voice goes to Twilio when it is configured too, else nowhere.
  if (provider === 'http' && http !== undefined) return { sms: createHttpSms(http), voice: twilio === undefined ? undefined : createTwilioVoice(twilio, config.publicUrl) };
  return outbox;
}
