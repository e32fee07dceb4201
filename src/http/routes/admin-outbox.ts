import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { listOutbox, pressOutbox, replyOutbox, showOutbox } from '../../flows/outbox.js';
import { tenantForAdmin } from '../../flows/tenants.js';
import type { Services } from '../../services.js';
import { requireAdmin } from '../auth.js';
import { ErrorBody, IdParams, Nullable } from '../schemas.js';

/**
 * The local outbox over HTTP (the same as `countersign outbox`): texts and calls sent through the
 * default provider, newest first; answer a call with keys, reply to a text. An administrator key
 * for one tenant sees that tenant's messages; a key for every tenant sees all, or `?tenant=`.
 */
const Message = Type.Object({
  id: Type.String(),
  kind: Type.Union([Type.Literal('sms'), Type.Literal('call'), Type.Literal('email')]),
  to: Type.String(),
  text: Type.String(),
  status: Type.String(),
  challenge_id: Nullable(Type.String()),
  created_at: Type.String(),
});
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };
const tags = ['Admin: outbox'];
const security = [{ bearer: [] }];
const TenantQuery = Type.Object({ tenant: Type.Optional(Type.String()) }, { additionalProperties: false });

export const adminOutboxRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  /** The tenant an outbox request is limited to: the key's own, `?tenant=`, or none (every tenant). */
  async function scope(request: { query: { tenant?: string | undefined } } & Parameters<typeof requireAdmin>[1]): Promise<string | undefined> {
    const principal = await requireAdmin(services, request);
    if (principal.tenantId === null && request.query.tenant === undefined) return undefined;
    return (await tenantForAdmin(services, principal, request.query.tenant)).id;
  }

  app.get(
    '/v1/admin/outbox',
    {
      schema: {
        tags,
        security,
        summary: 'Texts and calls in the local outbox, newest first',
        querystring: Type.Object({ tenant: Type.Optional(Type.String()), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })) }, { additionalProperties: false }),
        response: { 200: Type.Object({ messages: Type.Array(Message) }), ...errors },
      },
    },
    async (request) => ({ messages: await listOutbox(services, { tenantId: await scope(request), limit: request.query.limit ?? 50 }) }),
  );

  app.get(
    '/v1/admin/outbox/:id',
    { schema: { tags, security, summary: 'One text or call of the local outbox', params: IdParams, querystring: TenantQuery, response: { 200: Message, ...errors } } },
    async (request) => showOutbox(services, request.params.id, await scope(request)),
  );

  app.post(
    '/v1/admin/outbox/:id/press',
    {
      schema: {
        tags,
        security,
        summary: 'Answer a call of the outbox and press keys (# approves; 0# then 1 reports fraud; PIN then # in PIN mode)',
        params: IdParams,
        querystring: TenantQuery,
        body: Type.Object({ digits: Type.String({ maxLength: 21 }) }, { additionalProperties: false }),
        response: { 200: Message, ...errors },
      },
    },
    async (request) => pressOutbox(services, request.params.id, request.body.digits, await scope(request)),
  );

  app.post(
    '/v1/admin/outbox/:id/reply',
    {
      schema: {
        tags,
        security,
        summary: 'Reply to a text of the outbox from the phone it went to (two-way text messages)',
        params: IdParams,
        querystring: TenantQuery,
        body: Type.Object({ text: Type.String({ minLength: 1, maxLength: 160 }) }, { additionalProperties: false }),
        response: { 200: Type.Object({ message: Message, result: Type.String() }), ...errors },
      },
    },
    async (request) => replyOutbox(services, request.params.id, request.body.text, await scope(request)),
  );
};
