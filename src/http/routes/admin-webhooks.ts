import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { EVENT_NAMES } from '../../core/events.js';
import { EMAIL_TEMPLATE_NAMES, getEmailTemplate, setEmailTemplate } from '../../flows/email.js';
import { createWebhook, deleteWebhook, listDeliveries, listWebhooks, redeliver, WEBHOOK_MAX_ATTEMPTS } from '../../flows/webhooks.js';
import type { Services } from '../../services.js';
import { adminTenant } from '../admin-context.js';
import { ErrorBody, IdParams, Nullable, TenantQuery } from '../schemas.js';

/**
 * Events to subscribers (issue 5 item 12): a tenant's webhook endpoints (add — the signing secret
 * is shown once —, list, remove), each endpoint's delivery log and redelivery, and the e-mail
 * templates (Azure's "MFA has been turned on for your account", the fraud alert).
 */
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };
const security = [{ bearer: [] }];
const tags = ['Admin: webhooks and e-mail'];

const Webhook = Type.Object({ id: Type.String(), url: Type.String({ description: 'in full only in the answer that adds the endpoint; listings show the scheme, host and port, the path and query masked (…): they often hold a credential' }), events: Type.Array(Type.String()), description: Type.String(), created_at: Type.String(), created_by: Type.String() });
const Delivery = Type.Object({
  id: Type.String(),
  event_id: Type.String(),
  event_type: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
  attempts: Type.Integer(),
  next_attempt_at: Nullable(Type.String()),
  last_status_code: Nullable(Type.Integer()),
  last_error: Nullable(Type.String()),
  created_at: Type.String(),
  delivered_at: Nullable(Type.String()),
});
const EmailTemplate = Type.Object({
  name: Type.String(),
  subject: Type.String(),
  body: Type.String(),
  placeholders: Type.Array(Type.String()),
  customized: Type.Boolean(),
  updated_at: Nullable(Type.String()),
});
const TemplateParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 64, description: EMAIL_TEMPLATE_NAMES.join(' or ') }) });

const SIGNATURE_HELP =
  'Each delivery is a POST of the event as JSON with `Countersign-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, `Countersign-Event` and `Countersign-Delivery` (its id). Verify the HMAC in constant time and refuse a t older than 5 minutes. Answer 2xx within 10 s; otherwise it is retried after 1 min, 5 min, 30 min, 2 h, 6 h, 12 h and 24 h (' +
  `${WEBHOOK_MAX_ATTEMPTS} attempts in all).`;

export const adminWebhookRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.post(
    '/v1/admin/webhooks',
    {
      schema: {
        tags,
        security,
        summary: 'Add a webhook endpoint; its signing secret is in this answer only',
        description: `The URL must be https:// on a public host (no loopback, private or link-local address). \`events\`: event names (${EVENT_NAMES.slice(0, 6).join(', ')}, …), \`prefix.*\` filters (bypass.*) or "*" (the default). ${SIGNATURE_HELP}`,
        querystring: TenantQuery,
        body: Type.Object(
          {
            url: Type.String({ minLength: 1, maxLength: 2000 }),
            events: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 100 })),
            description: Type.Optional(Type.String({ maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ ...Webhook.properties, secret: Type.String() }), ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      return reply.code(201).send(await createWebhook(services, principal, tenant, request.body));
    },
  );

  app.get(
    '/v1/admin/webhooks',
    { schema: { tags, security, summary: 'The tenant’s webhook endpoints (never their secrets; each URL’s path and query masked, as https://hooks.contoso.com/…)', querystring: TenantQuery, response: { 200: Type.Object({ webhooks: Type.Array(Webhook) }), ...errors } } },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return { webhooks: await listWebhooks(services, tenant) };
    },
  );

  app.delete(
    '/v1/admin/webhooks/:id',
    { schema: { tags, security, summary: 'Remove a webhook endpoint and its delivery log', params: IdParams, querystring: TenantQuery, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      await deleteWebhook(services, principal, tenant, request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/admin/webhooks/:id/deliveries',
    {
      schema: {
        tags,
        security,
        summary: 'The endpoint’s delivery log, newest event first: status, attempts, next attempt, last HTTP status and error',
        params: IdParams,
        querystring: Type.Object({ ...TenantQuery.properties, limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })) }, { additionalProperties: false }),
        response: { 200: Type.Object({ deliveries: Type.Array(Delivery) }), ...errors },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return { deliveries: await listDeliveries(services, tenant, request.params.id, request.query.limit ?? 50) };
    },
  );

  app.post(
    '/v1/admin/webhooks/:id/deliveries/:delivery/redeliver',
    {
      schema: {
        tags,
        security,
        summary: 'Send one delivery again, now (whatever its status)',
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }), delivery: Type.String({ minLength: 1, maxLength: 200 }) }),
        querystring: TenantQuery,
        response: { 202: Delivery, ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      return reply.code(202).send(await redeliver(services, principal, tenant, request.params.id, request.params.delivery));
    },
  );

  app.get(
    '/v1/admin/email-templates/:name',
    {
      schema: {
        tags,
        security,
        summary: 'An e-mail template of the tenant: mfa_enabled (Azure’s “MFA has been turned on for your account”) or fraud_alert',
        params: TemplateParams,
        querystring: TenantQuery,
        response: { 200: EmailTemplate, ...errors },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return getEmailTemplate(services, tenant, request.params.name);
    },
  );

  app.put(
    '/v1/admin/email-templates/:name',
    {
      schema: {
        tags,
        security,
        summary: 'Replace an e-mail template’s subject and body (plain text with {placeholders}), or go back to the built-in text with {"reset": true}',
        params: TemplateParams,
        querystring: TenantQuery,
        body: Type.Object({ subject: Type.Optional(Type.String({ maxLength: 200 })), body: Type.Optional(Type.String({ maxLength: 20_000 })), reset: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
        response: { 200: EmailTemplate, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await adminTenant(services, request);
      return setEmailTemplate(services, principal, tenant, request.params.name, request.body);
    },
  );
};
