import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { invalidInput } from '../../core/errors.js';
import { createEnrollmentLink, listEnrollmentLinks, preregisterPhone, revokeEnrollmentLink } from '../../flows/enrollment.js';
import { createCampaignLinks, listCampaignTargets } from '../../flows/registration-campaign.js';
import type { Services } from '../../services.js';
import { adminTenant, adminUser } from '../admin-context.js';
import { ErrorBody, Nullable, TenantQuery, UserParams } from '../schemas.js';

/**
 * Registration, the administrator's side: a user's enrollment link (created — the token shown
 * once — listed, revoked), the registration campaign (who it targets; links for all of them at
 * once), and pre-registered phone numbers (ready at once, without proof, with a reason).
 */
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };
const security = [{ bearer: [] }];
const tags = ['Admin: registration'];

const Link = Type.Object({
  id: Type.String(),
  username: Type.String(),
  methods: Type.Array(Type.String()),
  status: Type.String(),
  created_by: Type.String(),
  created_at: Type.String(),
  expires_at: Type.String(),
  first_method_at: Nullable(Type.String()),
  used_at: Nullable(Type.String()),
  revoked_at: Nullable(Type.String()),
});

/**
 * An optional JSON body, read by hand: Fastify refuses a POST without a body against an
 * optional body schema, and `curl -X POST` sends none. Unknown fields are refused by name.
 */
export function optionalBody(body: unknown, fields: readonly string[]): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw invalidInput('body', 'must be a JSON object');
  for (const key of Object.keys(body)) if (!fields.includes(key)) throw invalidInput(key, `is not a field here (${fields.join(', ')})`);
  return body as Record<string, unknown>;
}

export const adminEnrollmentRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.post(
    '/v1/admin/users/:user/enrollment-link',
    {
      schema: {
        tags,
        security,
        summary: 'Create the user’s enrollment link (single use, expiring); the token is shown once',
        description:
          'Optional JSON body {"expires_in_seconds": 60–2592000 (default 604800, 7 days), "methods": a subset of the tenant’s allowed_methods among totp, push, sms, voice}. The link opens the self-service API /v1/enrollment with its token as bearer. A new link revokes the user’s open one. It is spent when the user completes, and at the latest 15 minutes after the first method is registered through it.',
        params: UserParams,
        querystring: TenantQuery,
        response: {
          201: Type.Object({ id: Type.String(), username: Type.String(), enrollment_url: Type.String(), token: Type.String(), methods: Type.Array(Type.String()), expires_at: Type.String() }),
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return reply.code(201).send(await createEnrollmentLink(services, principal, tenant, user, optionalBody(request.body, ['expires_in_seconds', 'methods'])));
    },
  );

  app.get(
    '/v1/admin/users/:user/enrollment-link',
    { schema: { tags, security, summary: 'The user’s enrollment links, newest first (never a token)', params: UserParams, querystring: TenantQuery, response: { 200: Type.Object({ links: Type.Array(Link) }), ...errors } } },
    async (request) => {
      const { tenant, user } = await adminUser(services, request, request.params.user);
      return { links: await listEnrollmentLinks(services, tenant, user) };
    },
  );

  app.delete(
    '/v1/admin/users/:user/enrollment-link',
    { schema: { tags, security, summary: 'Revoke the user’s open enrollment link: its next use is refused', params: UserParams, querystring: TenantQuery, response: { 200: Link, ...errors } } },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return revokeEnrollmentLink(services, principal, tenant, user);
    },
  );

  app.post(
    '/v1/admin/users/:user/phones',
    {
      schema: {
        tags,
        security,
        summary: 'Pre-register a phone number: usable for texts and calls at once, without proof by the user',
        description: '`verified` must be true and `reason` says why the number needs no proof; both are audited, and the user is notified (a new credential).',
        params: UserParams,
        querystring: TenantQuery,
        body: Type.Object(
          { number: Type.String({ maxLength: 40 }), type: Type.Optional(Type.String({ maxLength: 16, description: 'mobile (default), office or alternate' })), verified: Type.Boolean(), reason: Type.String({ maxLength: 500 }) },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ type: Type.String(), number: Type.String(), verified: Type.Boolean(), replaced: Type.Boolean() }), ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return reply.code(201).send(await preregisterPhone(services, principal, tenant, user, request.body));
    },
  );

  const Target = Type.Object({ id: Type.String(), username: Type.String(), display_name: Nullable(Type.String()), methods: Type.Array(Type.String()), snoozes: Type.Integer() });
  app.get(
    '/v1/admin/registration-campaign',
    {
      schema: {
        tags,
        security,
        summary: 'The registration campaign: its settings and the users it targets (only texts and calls, not snoozed, not excluded)',
        querystring: Type.Object(
          { tenant: Type.Optional(Type.String({ minLength: 1 })), after: Type.Optional(Type.String({ maxLength: 256 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            enabled: Type.Boolean(),
            method: Type.String(),
            snooze_days: Type.Integer(),
            excluded_groups: Type.Array(Type.String()),
            method_allowed: Type.Boolean(),
            users: Type.Array(Target),
            next: Nullable(Type.String()),
          }),
          ...errors,
        },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return listCampaignTargets(services, tenant, { after: request.query.after, limit: request.query.limit });
    },
  );

  app.post(
    '/v1/admin/registration-campaign/links',
    {
      schema: {
        tags,
        security,
        summary: 'An enrollment link for the campaign’s method for every targeted user without an open link; the URLs are shown once',
        querystring: TenantQuery,
        description: 'Optional JSON body {"expires_in_seconds": 60–2592000 (default 604800, 7 days)}. Refused (409) while the campaign is off.',
        response: {
          201: Type.Object({ count: Type.Integer(), skipped: Type.Integer(), links: Type.Array(Type.Object({ username: Type.String(), enrollment_url: Type.String(), expires_at: Type.String() })) }),
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      return reply.code(201).send(await createCampaignLinks(services, principal, tenant, optionalBody(request.body, ['expires_in_seconds'])));
    },
  );
};
