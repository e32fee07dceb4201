import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createAppPassword, listAppPasswords, revokeAllAppPasswords, revokeAppPassword, verifyAppPassword } from '../../flows/app-passwords.js';
import type { Services } from '../../services.js';
import { adminUser } from '../admin-context.js';
import { requireApplication } from '../auth.js';
import { ErrorBody, Nullable, TenantQuery, UserParams } from '../schemas.js';

/**
 * App passwords (SECURITY.md APP-01): the Auth API's check for legacy clients, and the admin
 * routes that create (shown once), list and revoke a user's app passwords.
 */
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 429: ErrorBody };
const security = [{ bearer: [] }];
const adminTags = ['Admin: app passwords'];

const AppPassword = Type.Object({ id: Type.String(), name: Type.String(), created_at: Type.String(), last_used_at: Nullable(Type.String()), last_used_ip: Nullable(Type.String()) });

export const appPasswordRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.post(
    '/v1/app-passwords/verify',
    {
      schema: {
        tags: ['Auth API'],
        security,
        summary: 'Check an app password from a legacy client (IMAP, EAS, SMTP): a single-factor sign-in',
        description:
          'Only for legacy clients: `client` defaults to "legacy"; "browser" is refused (403, app_password_not_for_browser). Rate-limited per user and per client IP (`ip`, else the request’s address): 429 with Retry-After. A wrong password counts towards the user’s lockout. Unknown users answer invalid_password.',
        body: Type.Object(
          {
            username: Type.String({ minLength: 1, maxLength: 256 }),
            password: Type.String({ minLength: 1, maxLength: 200 }),
            client: Type.Optional(Type.Union([Type.Literal('legacy'), Type.Literal('browser')])),
            ip: Type.Optional(Type.String({ maxLength: 64 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ result: Type.String(), reason: Type.String() }), ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await requireApplication(services, request);
      const outcome = await verifyAppPassword(services, principal, tenant, request.body, request.ip);
      return { result: outcome.result, reason: outcome.reason };
    },
  );

  app.post(
    '/v1/admin/users/:user/app-passwords',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Create an app password for one of the user’s devices; the password is shown once',
        params: UserParams,
        querystring: TenantQuery,
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 100, description: 'the device, e.g. "Alice’s iPhone Mail"' }) }, { additionalProperties: false }),
        response: { 201: Type.Object({ id: Type.String(), name: Type.String(), password: Type.String(), created_at: Type.String() }), ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return reply.code(201).send(await createAppPassword(services, principal, tenant, user, request.body.name));
    },
  );

  app.get(
    '/v1/admin/users/:user/app-passwords',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'The user’s app passwords (names and last use; never a password)',
        params: UserParams,
        querystring: TenantQuery,
        response: { 200: Type.Object({ app_passwords: Type.Array(AppPassword) }), ...errors },
      },
    },
    async (request) => {
      const { user } = await adminUser(services, request, request.params.user);
      return { app_passwords: await listAppPasswords(services, user) };
    },
  );

  app.delete(
    '/v1/admin/users/:user/app-passwords/:id',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Revoke one app password (by id or name): its next use fails',
        params: Type.Object({ user: Type.String({ minLength: 1, maxLength: 256 }), id: Type.String({ minLength: 1, maxLength: 100 }) }),
        querystring: TenantQuery,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      await revokeAppPassword(services, principal, tenant, user, request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/v1/admin/users/:user/app-passwords',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Revoke all the user’s app passwords',
        params: UserParams,
        querystring: TenantQuery,
        response: { 200: Type.Object({ revoked: Type.Integer() }), ...errors },
      },
    },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return { revoked: await revokeAllAppPasswords(services, principal, tenant, user) };
    },
  );
};
