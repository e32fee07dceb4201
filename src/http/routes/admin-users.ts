import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { bulkSetStates, importUsers } from '../../flows/user-import.js';
import { createUser, deleteUser, viewUser, listUsers, blockUser, setUserState, updateUser } from '../../flows/users.js';
import { clearPin, setPin } from '../../flows/pins.js';
import { confirmPhoneVerification, startPhoneVerification } from '../../flows/phone-verification.js';
import type { Services } from '../../services.js';
import { acceptFileBodies } from '../file-bodies.js';
import { adminTenant, adminUser } from '../admin-context.js';
import { ErrorBody, RefusedLine, TenantQuery, User, UserInputProperties, UserParams } from '../schemas.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 413: ErrorBody, 415: ErrorBody };
const tags = ['Admin: users'];
const security = [{ bearer: [] }];

export const adminUserRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  acceptFileBodies(app);
  app.get(
    '/v1/admin/users',
    {
      schema: {
        tags,
        security,
        summary: 'List users, a page at a time, optionally searching username, name and email',
        querystring: Type.Object(
          {
            tenant: Type.Optional(Type.String()),
            search: Type.Optional(Type.String({ maxLength: 256 })),
            cursor: Type.Optional(Type.String({ maxLength: 256 })),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ users: Type.Array(User), next_cursor: Type.Union([Type.String(), Type.Null()]) }), ...errors },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return listUsers(services, tenant, { search: request.query.search, cursor: request.query.cursor, limit: request.query.limit ?? 100 });
    },
  );

  app.post(
    '/v1/admin/users',
    {
      schema: {
        tags,
        security,
        summary: 'Create a user',
        querystring: TenantQuery,
        body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }), ...UserInputProperties }, { additionalProperties: false }),
        response: { 201: User, ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      return reply.code(201).send(await createUser(services, principal, tenant, request.body));
    },
  );

  app.get('/v1/admin/users/:user', { schema: { tags, security, summary: 'Get a user', params: UserParams, querystring: TenantQuery, response: { 200: User, ...errors } } }, async (request) => {
    const { user } = await adminUser(services, request, request.params.user);
    return viewUser(services.db, user, services.clock().getTime());
  });

  app.patch(
    '/v1/admin/users/:user',
    {
      schema: {
        tags,
        security,
        summary: 'Change a user’s name, email, phones, groups or MFA state',
        params: UserParams,
        querystring: TenantQuery,
        body: Type.Object(UserInputProperties, { additionalProperties: false }),
        response: { 200: User, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return updateUser(services, principal, tenant, user, request.body);
    },
  );

  app.delete('/v1/admin/users/:user', { schema: { tags, security, summary: 'Delete a user and their methods', params: UserParams, querystring: TenantQuery, response: { 204: Type.Null(), ...errors } } }, async (request, reply) => {
    const { principal, tenant, user } = await adminUser(services, request, request.params.user);
    await deleteUser(services, principal, tenant, user);
    return reply.code(204).send(null);
  });

  app.put(
    '/v1/admin/users/:user/state',
    {
      schema: {
        tags,
        security,
        summary: 'Set the MFA state: disabled, enabled or enforced',
        params: UserParams,
        querystring: TenantQuery,
        body: Type.Object({ state: Type.String() }, { additionalProperties: false }),
        response: { 200: User, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return setUserState(services, principal, tenant, user, request.body.state);
    },
  );

  app.put(
    '/v1/admin/users/:user/pin',
    {
      schema: {
        tags,
        security,
        summary: 'Set the PIN asked on phone calls in PIN mode (4–16 digits; no 111 or 123 runs; stored as argon2id)',
        params: UserParams,
        querystring: TenantQuery,
        body: Type.Object({ pin: Type.String({ maxLength: 16 }) }, { additionalProperties: false }),
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      await setPin(services, principal, tenant, user.id, request.body.pin);
      return reply.code(204).send(null);
    },
  );
  app.delete(
    '/v1/admin/users/:user/pin',
    { schema: { tags, security, summary: 'Remove the phone PIN of a user', params: UserParams, querystring: TenantQuery, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      await clearPin(services, principal, tenant, user.id);
      return reply.code(204).send(null);
    },
  );

  const PhoneParams = Type.Object({ user: Type.String({ minLength: 1, maxLength: 256 }), type: Type.String({ maxLength: 16 }) });
  app.post(
    '/v1/admin/users/:user/phones/:type/verify',
    {
      schema: {
        tags,
        security,
        summary: 'Prove a phone number: a code goes to it (a text to a mobile, a call to an office or alternate number); the number is usable once the code is read back',
        params: PhoneParams,
        querystring: TenantQuery,
        body: Type.Object({ number: Type.String({ maxLength: 40 }) }, { additionalProperties: false }),
        response: {
          201: Type.Object({ challenge_id: Type.String(), type: Type.String(), number: Type.String(), status: Type.String(), expires_at: Type.String() }),
          ...errors,
          429: ErrorBody,
          502: ErrorBody,
        },
      },
    },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return reply.code(201).send(await startPhoneVerification(services, principal, tenant, user, request.params.type, request.body.number));
    },
  );
  app.post(
    '/v1/admin/users/:user/phones/:type/verify/confirm',
    {
      schema: {
        tags,
        security,
        summary: 'Read back the code sent to a phone number being proven',
        params: PhoneParams,
        querystring: TenantQuery,
        body: Type.Object({ code: Type.String({ maxLength: 16 }) }, { additionalProperties: false }),
        response: {
          200: Type.Object({ id: Type.String(), status: Type.String(), type: Type.String(), expires_at: Type.String(), reason: Type.Optional(Type.String()), verified: Type.Boolean() }),
          ...errors,
        },
      },
    },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return confirmPhoneVerification(services, principal, tenant, user, request.params.type, request.body.code);
    },
  );

  // Unlock and unblock (409 when there is nothing to clear) are in admin-access.ts.
  app.post(
    '/v1/admin/users/:user/block',
    { schema: { tags, security, summary: 'Block a user: every sign-in is denied until unblocked', params: UserParams, querystring: TenantQuery, response: { 200: User, ...errors } } },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return blockUser(services, principal, tenant, user);
    },
  );

  app.post(
    '/v1/admin/users/import',
    {
      bodyLimit: services.config.importBodyLimit,
      schema: {
        tags,
        security,
        summary: 'Create or update users from a CSV: username,display name,email,phone,state',
        consumes: ['text/csv'],
        querystring: TenantQuery,
        body: Type.String({ description: 'CSV text' }),
        response: { 200: Type.Object({ created: Type.Integer(), updated: Type.Integer(), refused: Type.Array(RefusedLine) }), ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await adminTenant(services, request);
      return importUsers(services, principal, tenant, request.body);
    },
  );

  app.post(
    '/v1/admin/users/states',
    {
      bodyLimit: services.config.importBodyLimit,
      schema: {
        tags,
        security,
        summary: 'Set MFA states in bulk from a CSV: username,state',
        consumes: ['text/csv'],
        querystring: TenantQuery,
        body: Type.String({ description: 'CSV text' }),
        response: { 200: Type.Object({ changed: Type.Integer(), refused: Type.Array(RefusedLine) }), ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await adminTenant(services, request);
      return bulkSetStates(services, principal, tenant, request.body);
    },
  );
};
