import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { activateDevice, answerPush, authenticateDevice, pendingForDevice, previewActivation, pushTopic } from '../../flows/push.js';
import type { Services } from '../../services.js';
import { ErrorBody, IdParams, Nullable } from '../schemas.js';

/**
 * The device API of the Countersign Authenticator: activate with the code of a link, fetch the
 * pending push requests (signed with the device key), answer one (signed over the challenge,
 * the decision, the typed number and a timestamp). No API key: the device key is the credential.
 */
const tags = ['Authenticator'];
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };

/** How long one live stream lasts before the authenticator must sign a new request. */
const STREAM_LIFETIME_MS = 10 * 60_000;

export const authenticatorRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  // Open live streams end when the server closes, so a graceful shutdown does not wait for clients.
  const streams = new Set<AbortController>();
  app.addHook('preClose', async () => {
    for (const stream of streams) stream.abort();
  });
  app.post(
    '/v1/authenticator/activation',
    {
      schema: {
        tags,
        summary: 'What an activation link is for (tenant, user, expiry), without using it; 404 when it was used or has expired',
        body: Type.Object({ code: Type.String({ maxLength: 64 }) }, { additionalProperties: false }),
        response: { 200: Type.Object({ tenant: Type.String(), username: Type.String(), expires_at: Type.String(), with_totp: Type.Boolean() }), ...errors },
      },
    },
    async (request) => previewActivation(services, request.body.code),
  );
  app.post(
    '/v1/authenticator/activate',
    {
      schema: {
        tags,
        summary: 'Activate an authenticator with the code of an activation link; only its P-256 public key is kept',
        body: Type.Object(
          {
            code: Type.String({ maxLength: 64 }),
            public_key: Type.String({ maxLength: 400 }),
            name: Type.String({ maxLength: 100 }),
            channel: Type.Optional(Type.String({ maxLength: 16, description: 'poll (default), webpush, fcm or apns' })),
            target: Type.Optional(Type.String({ maxLength: 4096, description: 'the Web Push subscription (JSON) or the FCM/APNs token' })),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            device_id: Type.String(),
            tenant: Type.String(),
            username: Type.String(),
            totp: Type.Optional(Type.Object({ secret: Type.String(), uri: Type.String(), algorithm: Type.String(), digits: Type.Integer(), period: Type.Integer() })),
          }),
          ...errors,
        },
      },
    },
    async (request, reply) => reply.code(201).send(await activateDevice(services, request.body)),
  );

  const Pending = Type.Object({
    id: Type.String(),
    type: Type.String(),
    application: Nullable(Type.String()),
    ip: Nullable(Type.String()),
    location: Nullable(Type.String()),
    event: Nullable(Type.Object({ title: Type.String(), detail: Nullable(Type.String()) })),
    expires_at: Type.String(),
    number_required: Type.Boolean(),
    pin_required: Type.Boolean(),
  });
  app.get(
    '/v1/authenticator/pending',
    {
      schema: {
        tags,
        summary: 'The push requests this authenticator may answer (Authorization: Device <id>.<timestamp>.<signature>)',
        response: { 200: Type.Object({ requests: Type.Array(Pending) }), ...errors },
      },
    },
    async (request) => {
      const device = await authenticateDevice(services, request.headers.authorization, 'GET', '/v1/authenticator/pending');
      return { requests: await pendingForDevice(services, device) };
    },
  );

  // The live stream (Server-Sent Events) while an authenticator is open: the pending requests at
  // once, again the moment a push is created for the user, and every few seconds in any case
  // (a request created in another process, or while this one was sending, is never missed long).
  app.get(
    '/v1/authenticator/stream',
    { schema: { tags, summary: 'Server-Sent Events: `event: pending` with the requests, at once and whenever one arrives (signed like /pending, path /v1/authenticator/stream)', response: { ...errors } } },
    async (request, reply) => {
      const device = await authenticateDevice(services, request.headers.authorization, 'GET', '/v1/authenticator/stream');
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      const closed = new AbortController();
      streams.add(closed);
      // The response's close: the client went away (the request's own close comes as soon as its body is read).
      raw.once('close', () => closed.abort());
      request.raw.socket.once('close', () => closed.abort());
      // A stream lasts at most STREAM_LIFETIME_MS; the authenticator then signs a new request.
      const ends = setTimeout(() => closed.abort(), STREAM_LIFETIME_MS);
      try {
        while (!closed.signal.aborted) {
          // The device is read again each round: a removed authenticator stops receiving at once.
          const current = await services.db.selectFrom('push_devices').select(['id', 'tenant_id', 'user_id', 'public_key']).where('id', '=', device.id).where('user_id', '=', device.user_id).executeTakeFirst();
          if (current === undefined) break;
          const requests = await pendingForDevice(services, current);
          raw.write(`event: pending\ndata: ${JSON.stringify({ requests })}\n\n`);
          await services.notifier.wait(pushTopic(device.user_id), 5000, closed.signal);
        }
      } catch (error) {
        request.log.warn({ err: error }, 'an authenticator stream ended on an error');
      } finally {
        clearTimeout(ends);
        streams.delete(closed);
        raw.end();
      }
    },
  );

  app.post(
    '/v1/authenticator/challenges/:id/answer',
    {
      schema: {
        tags,
        summary: 'Approve (with the number shown at sign-in), deny, or deny and report fraud — signed by the device',
        params: IdParams,
        body: Type.Object(
          {
            device_id: Type.String({ maxLength: 64 }),
            decision: Type.String({ maxLength: 16 }),
            number: Type.Optional(Type.String({ maxLength: 8 })),
            pin: Type.Optional(Type.String({ maxLength: 16 })),
            timestamp: Type.Integer(),
            signature: Type.String({ maxLength: 200 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ id: Type.String(), status: Type.String(), reason: Type.Optional(Type.Union([Type.Literal('wrong_number'), Type.Literal('wrong_pin')])) }), ...errors },
      },
    },
    async (request) => answerPush(services, request.params.id, request.body),
  );

  // What a browser needs to subscribe to Web Push for this server (applicationServerKey).
  app.get(
    '/v1/authenticator/web-push-key',
    { schema: { tags, summary: 'The VAPID public key for Web Push subscriptions (null when Web Push is not configured)', response: { 200: Type.Object({ public_key: Nullable(Type.String()) }), ...errors } } },
    () => ({ public_key: services.config.push.webPush?.publicKey ?? null }),
  );
};
