import type { TwilioConfig } from '../../config.js';
import type { Dispatch, OutgoingSms, SmsChannel } from '../types.js';
import { createTwilioRestClient, safeTwilioError } from './rest-client.js';

/**
 * Texts through Twilio's Messages API. The sender is the tenant's caller ID or the configured
 * number or Messaging Service; delivery reports come back to `/v1/telephony/twilio/status` with
 * the telephony log id in `ref`, when this server has a public URL for Twilio to call. A refusal
 * is returned as a `failed` dispatch (the caller records it), not thrown.
 */
export function createTwilioSms(config: TwilioConfig, publicUrl: string | undefined, fetchImpl: typeof fetch = fetch): SmsChannel {
  const client = createTwilioRestClient(config, fetchImpl);
  const base = publicUrl?.replace(/\/+$/, '');
  return {
    provider: 'twilio',
    async send(sms: OutgoingSms): Promise<Dispatch> {
      try {
        const message = await client.sendMessage({
          to: sms.to,
          from: sms.from ?? config.from,
          body: sms.text,
          statusCallback: base === undefined ? undefined : `${base}/v1/telephony/twilio/status?ref=${encodeURIComponent(sms.reference)}`,
        });
        if (FAILED.has(message.status)) return { providerId: message.sid, status: 'failed', units: 0, error: `Twilio reported the message ${message.status}` };
        return { providerId: message.sid, status: SENT.has(message.status) ? 'sent' : 'queued', units: message.numSegments ?? 1 };
      } catch (error) {
        return { providerId: '', status: 'failed', units: 0, error: safeTwilioError(error) };
      }
    },
  };
}

/** Twilio's Message statuses: accepted, scheduled and queued wait; sending and later have left Twilio. */
const SENT = new Set(['sending', 'sent', 'delivered', 'read']);
const FAILED = new Set(['failed', 'undelivered', 'canceled']);
