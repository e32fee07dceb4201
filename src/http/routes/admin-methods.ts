import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { activateMethod, deleteMethod, enrollTotp, listMethods, setDefaultMethod } from '../../flows/methods.js';
import type { Services } from '../../services.js';
import { adminUser } from '../admin-context.js';
import { ErrorBody, Method, TenantQuery, UserMethodParams, UserParams } from '../schemas.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };
const tags = ['Admin: methods'];
const security = [{ bearer: [] }];

export const adminMethodRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.get('/v1/admin/users/:user/methods', { schema: { tags, security, summary: 'List a user’s methods', params: UserParams, querystring: TenantQuery, response: { 200: Type.Object({ methods: Type.Array(Method) }), ...errors } } }, async (request) => {
    const { user } = await adminUser(services, request, request.params.user);
    return { methods: await listMethods(services, user) };
  });

  app.delete(
    '/v1/admin/users/:user/methods/:method',
    { schema: { tags, security, summary: 'Remove a method (a token goes away with it; unassign a token to keep it)', params: UserMethodParams, querystring: TenantQuery, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      await deleteMethod(services, principal, tenant, user, request.params.method);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/admin/users/:user/methods/:method/default',
    { schema: { tags, security, summary: 'Make a method the user’s default', params: UserMethodParams, querystring: TenantQuery, response: { 200: Method, ...errors } } },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return setDefaultMethod(services, principal, tenant, user, request.params.method);
    },
  );

  app.post(
    '/v1/admin/users/:user/methods/totp',
    {
      schema: {
        tags,
        security,
        summary: 'Start enrolling an authenticator app: returns the secret, otpauth URI and QR code once',
        params: UserParams,
        querystring: TenantQuery,
        body: Type.Optional(
          Type.Object(
            {
              algorithm: Type.Optional(Type.String()),
              digits: Type.Optional(Type.Integer()),
              period: Type.Optional(Type.Integer()),
              label: Type.Optional(Type.String({ maxLength: 64 })),
            },
            { additionalProperties: false },
          ),
        ),
        response: {
          201: Type.Object({ method: Method, secret: Type.String(), uri: Type.String(), qr_png: Type.String(), qr_svg: Type.String() }),
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return reply.code(201).send(await enrollTotp(services, principal, tenant, user, request.body ?? {}));
    },
  );

  app.post(
    '/v1/admin/users/:user/methods/:method/activate',
    {
      schema: {
        tags,
        security,
        summary: 'Activate a pending method with its first correct code',
        params: UserMethodParams,
        querystring: TenantQuery,
        body: Type.Object({ code: Type.String({ minLength: 1, maxLength: 16 }) }, { additionalProperties: false }),
        response: { 200: Method, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant, user } = await adminUser(services, request, request.params.user);
      return activateMethod(services, principal, tenant, user, request.params.method, request.body.code);
    },
  );
};
