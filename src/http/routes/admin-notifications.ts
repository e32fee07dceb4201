import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { listNotifications } from '../../flows/notifications.js';
import { findUser } from '../../flows/users.js';
import type { Services } from '../../services.js';
import { adminTenant } from '../admin-context.js';
import { ErrorBody, Nullable } from '../schemas.js';

const Notification = Type.Object({
  id: Type.String(),
  user_id: Nullable(Type.String()),
  kind: Type.String(),
  channel: Type.String(),
  recipient: Nullable(Type.String()),
  status: Type.String(),
  detail: Type.Record(Type.String(), Type.Unknown()),
  created_at: Type.String(),
});

export const adminNotificationRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.get(
    '/v1/admin/notifications',
    {
      schema: {
        tags: ['Admin: audit'],
        security: [{ bearer: [] }],
        summary: 'The notification outbox, newest first (what users and administrators are to be told)',
        querystring: Type.Object(
          { tenant: Type.Optional(Type.String()), user: Type.Optional(Type.String({ maxLength: 256 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ notifications: Type.Array(Notification) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      const user = request.query.user === undefined ? undefined : await findUser(services.db, tenant.id, request.query.user);
      return { notifications: await listNotifications(services, tenant, { userId: user?.id, limit: request.query.limit ?? 100 }) };
    },
  );
};
