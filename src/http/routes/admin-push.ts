import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { listDevices, removeDevice, startActivation } from '../../flows/push.js';
import { invalidInput } from '../../core/errors.js';
import type { Services } from '../../services.js';
import { adminUser } from '../admin-context.js';
import { ErrorBody, TenantQuery, UserParams } from '../schemas.js';

/** Push authenticators of a user: start an activation (a single-use link for the QR code), list, remove. */
const tags = ['Admin: push'];
const security = [{ bearer: [] }];
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };

export const adminPushRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.post(
    '/v1/admin/users/:user/push/activation',
    {
      schema: {
        tags,
        security,
        summary: 'Start activating an authenticator: a single-use link (for a QR code), valid 10 minutes',
        params: UserParams,
        querystring: TenantQuery,
        description: 'Optional JSON body: {"with_totp": true} — the authenticator also gets a TOTP secret for offline codes.',
        response: { 201: Type.Object({ activation_url: Type.String(), activation_code: Type.String(), expires_at: Type.String() }), ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      const body: unknown = request.body;
      const withTotp = typeof body === 'object' && body !== null ? (body as { with_totp?: unknown }).with_totp : undefined;
      if (withTotp !== undefined && typeof withTotp !== 'boolean') throw invalidInput('with_totp', 'must be true or false');
      return reply.code(201).send(await startActivation(services, principal, tenant, user, { withTotp: withTotp === true }));
    },
  );

  const Device = Type.Object({ id: Type.String(), name: Type.String(), channel: Type.String(), created_at: Type.String(), last_seen_at: Type.Union([Type.String(), Type.Null()]) });
  app.get(
    '/v1/admin/users/:user/push/devices',
    { schema: { tags, security, summary: 'The user’s activated authenticators', params: UserParams, querystring: TenantQuery, response: { 200: Type.Object({ devices: Type.Array(Device) }), ...errors } } },
    async (request) => {
      const { user } = await adminUser(services, request, request.params.user);
      return { devices: await listDevices(services, user.id) };
    },
  );

  app.delete(
    '/v1/admin/users/:user/push/devices/:device',
    {
      schema: {
        tags,
        security,
        summary: 'Remove an authenticator: it can no longer answer',
        params: Type.Object({ user: Type.String({ minLength: 1, maxLength: 256 }), device: Type.String({ maxLength: 64 }) }),
        querystring: TenantQuery,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      await removeDevice(services, principal, tenant, user, request.params.device);
      return reply.code(204).send(null);
    },
  );
};
