import type { TwilioConfig } from '../../config.js';
import type { Dispatch, OutgoingCall, VoiceChannel } from '../types.js';
import { createTwilioRestClient, safeTwilioError } from './rest-client.js';

/**
 * Calls through Twilio's Calls API. Twilio asks this server what to say when the callee answers
 * (`/v1/telephony/twilio/voice`, TwiML from twiml.ts) and reports the call's progress to
 * `/v1/telephony/twilio/status`, both with the telephony log id in `ref` — so a call needs a
 * public URL. A refusal is returned as a `failed` dispatch, not thrown.
 */
export const RING_TIMEOUT_SECONDS = 30;

export function createTwilioVoice(config: TwilioConfig, publicUrl: string | undefined, fetchImpl: typeof fetch = fetch): VoiceChannel {
  const client = createTwilioRestClient(config, fetchImpl);
  const base = publicUrl?.replace(/\/+$/, '');
  return {
    provider: 'twilio',
    async call(call: OutgoingCall): Promise<Dispatch> {
      if (base === undefined) return failed('public_url is not configured: Twilio cannot reach the call script');
      const from = call.from ?? config.from;
      if (from.startsWith('MG')) return failed('a Messaging Service SID cannot place calls: set a caller ID or a Twilio number in twilio.from');
      const ref = encodeURIComponent(call.reference);
      try {
        const created = await client.createCall({
          to: call.to,
          from,
          url: `${base}/v1/telephony/twilio/voice?ref=${ref}`,
          statusCallback: `${base}/v1/telephony/twilio/status?ref=${ref}`,
          timeoutSeconds: RING_TIMEOUT_SECONDS,
        });
        if (FAILED.has(created.status)) return { providerId: created.sid, status: 'failed', units: 0, error: `Twilio reported the call ${created.status}` };
        return { providerId: created.sid, status: created.status === 'queued' ? 'queued' : 'ringing', units: 1 };
      } catch (error) {
        return failed(safeTwilioError(error));
      }
    },
  };
}

const FAILED = new Set(['failed', 'busy', 'no-answer', 'canceled']);

function failed(error: string): Dispatch {
  return { providerId: '', status: 'failed', units: 0, error };
}
