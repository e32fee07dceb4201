import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { BYPASS_DEFAULT_SECONDS, BYPASS_MAX_SECONDS, grantBypass, listBypasses, revokeBypass } from '../../flows/bypasses.js';
import { forgetRememberedDevices } from '../../flows/remembered-devices.js';
import { listBlockedUsers, unblockUser, unlockUser } from '../../flows/user-blocks.js';
import type { Services } from '../../services.js';
import { adminTenant, adminUser } from '../admin-context.js';
import { ErrorBody, Nullable, TenantQuery, User, UserParams } from '../schemas.js';

/**
 * Access controls an administrator applies to one user (Azure MFA service settings and MFA
 * Server): one-time bypasses and the bypass report (SECURITY.md BYP-01), revoking remembered
 * devices (SES-05), unlocking after a lockout (RL-01), unblocking after a fraud report or an
 * administrator's block (PUSH-04), and the blocked-users report.
 */
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };
const security = [{ bearer: [] }];
const bypassTags = ['Admin: bypasses'];
const userTags = ['Admin: users'];

const Bypass = Type.Object({
  id: Type.String(),
  username: Type.String(),
  reason: Type.String(),
  granted_by: Type.String(),
  status: Type.String({ description: 'active, used, expired or revoked' }),
  created_at: Type.String(),
  expires_at: Type.String(),
  used_at: Nullable(Type.String()),
  used_by: Nullable(Type.String({ description: 'the application whose sign-in used it' })),
});

const BlockedUser = Type.Object({
  user_id: Type.String(),
  username: Type.String(),
  kind: Type.String({ description: 'blocked (by an administrator or after a fraud report) or locked_out (failed second factors)' }),
  reason: Type.String({ description: 'fraud or admin for a block; failed_attempts for a lockout' }),
  since: Nullable(Type.String()),
  until: Nullable(Type.String({ description: 'null: until an administrator unblocks' })),
});

export const adminAccessRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.post(
    '/v1/admin/users/:user/bypass',
    {
      schema: {
        tags: bypassTags,
        security,
        summary: 'Grant a one-time bypass: the user’s next sign-in within N seconds skips the second factor',
        description: `The next preauth of the user answers allow / bypass and uses it up; unused, it expires. A new grant replaces one still open. \`seconds\` defaults to ${BYPASS_DEFAULT_SECONDS}, at most ${BYPASS_MAX_SECONDS}; \`reason\` is required and audited.`,
        params: UserParams,
        querystring: TenantQuery,
        body: Type.Object(
          {
            seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: BYPASS_MAX_SECONDS, description: `how long it may be used (default ${BYPASS_DEFAULT_SECONDS})` })),
            reason: Type.String({ minLength: 1, maxLength: 500, description: 'why the user may skip the second factor, e.g. "phone lost, ticket 4711"' }),
          },
          { additionalProperties: false },
        ),
        response: { 201: Bypass, ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      return reply.code(201).send(await grantBypass(services, principal, tenant, request.params.user, request.body));
    },
  );

  app.get(
    '/v1/admin/bypasses',
    {
      schema: {
        tags: bypassTags,
        security,
        summary: 'The bypass report: bypasses granted in the tenant, newest first',
        description: 'Filter by `username` and by `status` (active, used, expired, revoked). Expiries not yet recorded are recorded (bypass.expired) on the way.',
        querystring: Type.Object(
          {
            tenant: Type.Optional(Type.String({ minLength: 1, description: 'Tenant id or name (a tenant-scoped key may omit it).' })),
            username: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
            status: Type.Optional(Type.String({ description: 'active, used, expired or revoked' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ bypasses: Type.Array(Bypass) }), ...errors },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return { bypasses: await listBypasses(services, tenant, { username: request.query.username, status: request.query.status }) };
    },
  );

  app.delete(
    '/v1/admin/bypasses/:id',
    {
      schema: {
        tags: bypassTags,
        security,
        summary: 'Revoke a bypass that is still open (409 when it was already used, expired or revoked)',
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) }),
        querystring: TenantQuery,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      await revokeBypass(services, principal, tenant, request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/v1/admin/users/:user/remembered-devices',
    {
      schema: {
        tags: userTags,
        security,
        summary: 'Revoke all the user’s remembered devices: their remember tokens fail from the next preauth',
        params: UserParams,
        querystring: TenantQuery,
        response: { 200: Type.Object({ revoked: Type.Integer() }), ...errors },
      },
    },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return { revoked: await forgetRememberedDevices(services, principal, tenant, user.id) };
    },
  );

  app.post(
    '/v1/admin/users/:user/unlock',
    {
      schema: {
        tags: userTags,
        security,
        summary: 'Unlock a user: clear a lockout and the failure counter (409 when there is nothing to clear)',
        params: UserParams,
        querystring: TenantQuery,
        response: { 200: User, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return unlockUser(services, principal, tenant, user);
    },
  );

  app.post(
    '/v1/admin/users/:user/unblock',
    {
      schema: {
        tags: userTags,
        security,
        summary: 'Unblock a user blocked by an administrator or after a fraud report (409 when not blocked)',
        params: UserParams,
        querystring: TenantQuery,
        response: { 200: User, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return unblockUser(services, principal, tenant, user);
    },
  );

  app.get(
    '/v1/admin/blocked-users',
    {
      schema: {
        tags: userTags,
        security,
        summary: 'The blocked-users report: blocks (fraud, admin) and lockouts in force now',
        querystring: TenantQuery,
        response: { 200: Type.Object({ users: Type.Array(BlockedUser) }), ...errors },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return { users: await listBlockedUsers(services, tenant) };
    },
  );
};
