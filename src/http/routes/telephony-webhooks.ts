import { timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { isValidTwilioSignature } from '../../channels/twilio/signature.js';
import { emptyMessagingResponse, renderCallStep } from '../../channels/twilio/twiml.js';
import type { CallStep } from '../../channels/types.js';
import { CountersignError } from '../../core/errors.js';
import { maskPhone } from '../../core/phone.js';
import { callAnswered, callKeys, inboundText, providerStatus } from '../../flows/phone-challenges.js';
import { recordTelephonyStatus } from '../../flows/telephony.js';
import { onceOnly, purgeWebhookEvents } from '../../flows/webhook-events.js';
import type { Services } from '../../services.js';
import { ErrorBody } from '../schemas.js';

/**
 * What telephony providers call back: Twilio's voice webhooks (the call script as TwiML, the
 * keys pressed), status callbacks and incoming texts, each refused unless its X-Twilio-Signature
 * is valid for `public_url` + path; and incoming texts from a generic SMS gateway, with a shared
 * token. A retried or replayed webhook (Twilio's I-Twilio-Idempotency-Token, a gateway's id) is
 * handled once. Unknown numbers and references are ignored with a log line, never touching
 * another challenge.
 */
type Form = Record<string, string>;

const hidden = { hide: true } as const;

export const telephonyWebhookRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(typeof body === 'string' ? body : body.toString('utf8'))));
  });

  const twilio = services.config.telephony.twilio;
  const publicUrl = services.config.publicUrl;

  /** The signed form of a Twilio webhook and its idempotency token, or a 403 (logged) when the signature does not hold. */
  function twilioForm(request: FastifyRequest): { form: Form; token: string | undefined } {
    if (twilio === undefined || publicUrl === undefined) throw new CountersignError('NOT_FOUND', 'Twilio webhooks are not configured (telephony.twilio and public_url)');
    const form = (request.body ?? {}) as Form;
    const signature = request.headers['x-twilio-signature'];
    if (!isValidTwilioSignature(twilio.authToken, `${publicUrl}${request.url}`, form, typeof signature === 'string' ? signature : undefined)) {
      request.log.warn({ path: request.routeOptions.url }, 'refused a Twilio webhook with a missing or bad X-Twilio-Signature');
      throw new CountersignError('FORBIDDEN', 'X-Twilio-Signature: missing or not valid for this request');
    }
    const token = request.headers['i-twilio-idempotency-token'];
    return { form, token: typeof token === 'string' ? token : undefined };
  }

  /** Handles a signed webhook once per idempotency token (Twilio's retries carry the same one). */
  function once<T>(request: FastifyRequest, token: string | undefined, work: () => Promise<T>, duplicate: () => T): Promise<T> {
    return onceOnly(services, 'twilio', token, work, () => {
      request.log.info({ path: request.routeOptions.url }, 'ignored a Twilio webhook already handled (same idempotency token)');
      return duplicate();
    });
  }

  function reference(request: FastifyRequest): string {
    const ref = (request.query as { ref?: unknown }).ref;
    if (typeof ref !== 'string' || !/^[0-9a-f-]{36}$/.test(ref)) throw new CountersignError('INVALID_INPUT', 'ref: must be the reference Countersign gave the provider');
    return ref;
  }

  const twiml = (reply: FastifyReply, xml: string) => reply.type('text/xml; charset=utf-8').send(xml);
  const hangUp: CallStep = { prompts: [], hangup: true };
  const voiceUrls = (ref: string) => {
    const base = `${publicUrl ?? ''}/v1/telephony/twilio/voice`;
    return { gather: `${base}/gather?ref=${ref}`, timeout: `${base}/gather?ref=${ref}&timeout=1` };
  };
  const schema = { ...hidden, response: { 400: ErrorBody, 403: ErrorBody, 404: ErrorBody } };

  app.post('/v1/telephony/twilio/voice', { schema }, async (request, reply) => {
    const ref = reference(request);
    const { token } = twilioForm(request);
    const step = await once(request, token, () => callAnswered(services, ref), () => hangUp);
    return twiml(reply, renderCallStep(step, voiceUrls(ref)));
  });

  app.post('/v1/telephony/twilio/voice/gather', { schema }, async (request, reply) => {
    const ref = reference(request);
    const { form, token } = twilioForm(request);
    const timedOut = (request.query as { timeout?: string }).timeout !== undefined;
    // Twilio posts the digits without the key that ended the gather; FinishedOnKey names it.
    const keys = timedOut ? '' : `${form['Digits'] ?? ''}${form['FinishedOnKey'] === '#' ? '#' : ''}`;
    const step = await once(request, token, () => callKeys(services, ref, keys), () => hangUp);
    return twiml(reply, renderCallStep(step, voiceUrls(ref)));
  });

  app.post('/v1/telephony/twilio/status', { schema: { ...schema, response: { ...schema.response, 204: Type.Null() } } }, async (request, reply) => {
    const ref = reference(request);
    const { form, token } = twilioForm(request);
    await once(request, token, async () => {
      const status = form['CallStatus'] ?? form['MessageStatus'] ?? '';
      if (!/^[a-z-]{1,20}$/.test(status)) throw new CountersignError('INVALID_INPUT', 'CallStatus or MessageStatus: missing or malformed');
      // Units for the usage report: a text's segments, a call's started minutes.
      const segments = Number(form['NumSegments']);
      const seconds = Number(form['CallDuration']);
      const units = Number.isInteger(segments) && segments > 0 ? segments : Number.isInteger(seconds) && seconds > 0 ? Math.ceil(seconds / 60) : undefined;
      await recordTelephonyStatus(services, ref, status, units);
      await providerStatus(services, ref, status);
    }, () => undefined);
    return reply.code(204).send(null);
  });

  app.post('/v1/telephony/twilio/sms', { schema }, async (request, reply) => {
    const { form } = twilioForm(request);
    const from = form['From'] ?? '';
    if (!/^\+[1-9]\d{6,14}$/.test(from)) {
      request.log.info('ignored an incoming text without a valid From number');
    } else {
      // MessageSid is signed (the idempotency header is not): a replayed text is handled once.
      await onceOnly<string>(
        services,
        'twilio-sms',
        form['MessageSid'] ?? form['SmsSid'],
        () => inboundText(services, from, (form['Body'] ?? '').slice(0, 160)),
        () => {
          request.log.info({ from: maskPhone(from) }, 'ignored an incoming text already handled (same MessageSid)');
          return 'duplicate';
        },
      );
      // Events older than a week are never retried: forget them now and then.
      if (Math.random() < 0.01) await purgeWebhookEvents(services, services.clock().getTime() - 7 * 86_400_000);
    }
    return twiml(reply, emptyMessagingResponse());
  });

  app.post(
    '/v1/telephony/http/inbound',
    {
      schema: {
        ...hidden,
        body: Type.Object({ from: Type.String({ maxLength: 20 }), text: Type.String({ maxLength: 1600 }), id: Type.Optional(Type.String({ maxLength: 128 })) }, { additionalProperties: false }),
        response: { 200: Type.Object({ result: Type.String() }), 400: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (request) => {
      const expected = services.config.telephony.http?.inboundToken;
      if (expected === undefined) throw new CountersignError('NOT_FOUND', 'incoming texts from an SMS gateway are not configured (telephony.http.inbound_token)');
      const given = request.headers['x-countersign-token'];
      const a = Buffer.from(typeof given === 'string' ? given : '');
      const b = Buffer.from(expected);
      if (a.length !== b.length || !timingSafeEqual(a, b)) {
        request.log.warn('refused an incoming text with a missing or wrong X-Countersign-Token');
        throw new CountersignError('FORBIDDEN', 'X-Countersign-Token: missing or wrong');
      }
      if (!/^\+[1-9]\d{6,14}$/.test(request.body.from)) throw new CountersignError('INVALID_INPUT', 'from: must be an E.164 number such as +14255550100');
      const { from, text, id } = request.body;
      return { result: await onceOnly<string>(services, 'http-sms', id, () => inboundText(services, from, text.slice(0, 160)), () => 'duplicate') };
    },
  );
};
