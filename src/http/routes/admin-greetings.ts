import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AUDIO_TYPES, deleteGreeting, greetingAudio, listGreetings, MAX_AUDIO_BYTES, setGreeting } from '../../flows/greetings.js';
import { listTelephonyLog } from '../../flows/telephony.js';
import { invalidInput } from '../../core/errors.js';
import type { Services } from '../../services.js';
import { adminTenant } from '../admin-context.js';
import { ErrorBody, Nullable, TenantQuery } from '../schemas.js';

/**
 * A tenant's call prompts (Azure's custom voice messages): `PUT /v1/admin/greetings/{language}/{kind}`
 * with JSON `{text}` for text-to-speech, or an MP3/WAV body (at most 1 MB; `?text=` optional, what
 * the outbox shows); list and delete. The audio is served to the provider at an unguessable URL.
 */
const Greeting = Type.Object({ language: Type.String(), kind: Type.String(), text: Type.String(), audio: Type.Boolean(), updated_at: Type.String() });
const Params = Type.Object({ language: Type.String({ maxLength: 10 }), kind: Type.String({ maxLength: 32 }) });
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 413: ErrorBody, 415: ErrorBody };
const tags = ['Admin: phone'];
const security = [{ bearer: [] }];

export const adminGreetingRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.addContentTypeParser([...AUDIO_TYPES], { parseAs: 'buffer', bodyLimit: MAX_AUDIO_BYTES }, (_request, body, done) => done(null, body));

  app.get(
    '/v1/admin/greetings',
    { schema: { tags, security, summary: 'The tenant’s own call prompts (the built-in ones apply where none is set)', querystring: TenantQuery, response: { 200: Type.Object({ greetings: Type.Array(Greeting) }), ...errors } } },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return { greetings: await listGreetings(services, tenant) };
    },
  );

  app.put(
    '/v1/admin/greetings/:language/:kind',
    {
      schema: {
        tags,
        security,
        summary: 'Set a call prompt: JSON {text} (spoken), or an MP3/WAV file of at most 1 MB (played)',
        params: Params,
        querystring: Type.Object({ tenant: Type.Optional(Type.String()), text: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false }),
        // Either JSON {text} or audio bytes: checked in the handler (a JSON schema cannot describe a file body).
        response: { 200: Greeting, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await adminTenant(services, request);
      const body: unknown = request.body;
      let input: { text?: unknown; audio?: Buffer };
      if (Buffer.isBuffer(body)) {
        input = { audio: body, ...(request.query.text === undefined ? {} : { text: request.query.text }) };
      } else {
        if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidInput('body', 'send JSON {"text": …} or an audio/mpeg or audio/wav file');
        const unknown = Object.keys(body).find((k) => k !== 'text');
        if (unknown !== undefined) throw invalidInput(unknown, 'is not a known field');
        input = { text: (body as { text?: unknown }).text };
      }
      return setGreeting(services, principal, tenant, request.params.language, request.params.kind, input);
    },
  );

  app.delete(
    '/v1/admin/greetings/:language/:kind',
    { schema: { tags, security, summary: 'Remove a call prompt (the built-in one applies again)', params: Params, querystring: TenantQuery, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      await deleteGreeting(services, principal, tenant, request.params.language, request.params.kind);
      return reply.code(204).send(null);
    },
  );

  const LogEntry = Type.Object({
    id: Type.String(),
    at: Type.String(),
    user_id: Nullable(Type.String()),
    challenge_id: Nullable(Type.String()),
    kind: Type.String(),
    purpose: Type.String(),
    provider: Type.String(),
    provider_id: Nullable(Type.String()),
    number: Type.String(),
    country: Nullable(Type.String()),
    status: Type.String(),
    units: Type.Integer(),
    error: Nullable(Type.String()),
  });
  app.get(
    '/v1/admin/telephony-log',
    {
      schema: {
        tags,
        security,
        summary: 'Texts and calls sent for the tenant, newest first (numbers masked): the telephony usage',
        querystring: Type.Object({ tenant: Type.Optional(Type.String()), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), since: Type.Optional(Type.String({ format: 'date-time' })) }, { additionalProperties: false }),
        response: { 200: Type.Object({ entries: Type.Array(LogEntry) }), ...errors },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      const since = request.query.since === undefined ? undefined : Date.parse(request.query.since);
      if (since !== undefined && Number.isNaN(since)) throw invalidInput('since', 'must be an ISO 8601 time');
      return { entries: await listTelephonyLog(services, tenant, { limit: request.query.limit ?? 100, since }) };
    },
  );

  // Fetched by the telephony provider while a call plays it: no key, an unguessable id.
  app.get('/v1/telephony/audio/:id', { schema: { hide: true, params: Type.Object({ id: Type.String({ pattern: '^[0-9a-f-]{36}$' }) }) } }, async (request, reply) => {
    const { audio, type } = await greetingAudio(services, request.params.id);
    return reply.type(type).header('cache-control', 'private, max-age=300').send(audio);
  });
};
