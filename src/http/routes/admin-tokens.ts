import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { invalidInput } from '../../core/errors.js';
import { assignToken, deleteToken, importTokens, withKeyHint, listTokens, resyncToken, unassignToken } from '../../flows/tokens.js';
import type { Services } from '../../services.js';
import { acceptFileBodies } from '../file-bodies.js';
import { adminTenant } from '../admin-context.js';
import { ErrorBody, IdParams, RefusedEntry, TenantQuery, Token } from '../schemas.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 413: ErrorBody, 415: ErrorBody };
const tags = ['Admin: hardware tokens'];
const security = [{ bearer: [] }];

function pskFromHeader(value: string | string[] | undefined): Uint8Array | undefined {
  if (value === undefined) return undefined;
  const hex = Array.isArray(value) ? value[0] : value;
  if (hex === undefined || !/^([0-9a-fA-F]{2}){16,32}$/.test(hex)) throw invalidInput('x-countersign-psk', 'must be the pre-shared key in hex (32 hex digits for AES-128)');
  return Buffer.from(hex, 'hex');
}

export const adminTokenRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  acceptFileBodies(app);
  app.post(
    '/v1/admin/tokens/import',
    {
      bodyLimit: services.config.importBodyLimit,
      schema: {
        tags,
        security,
        summary: 'Import OATH tokens from the Azure CSV or a PSKC (RFC 6030) file',
        description:
          'Send the file as the body (text/csv or application/xml). An encrypted PSKC file needs its pre-shared key in the X-Countersign-PSK header (hex) or its password in X-Countersign-PSKC-Password.',
        consumes: ['text/csv', 'application/xml', 'application/pskc+xml'],
        querystring: TenantQuery,
        body: Type.String(),
        response: {
          200: Type.Object({
            format: Type.String(),
            imported: Type.Array(Type.Object({ position: Type.String(), id: Type.String(), serial: Type.String(), username: Type.Union([Type.String(), Type.Null()]) })),
            refused: Type.Array(RefusedEntry),
          }),
          ...errors,
        },
      },
    },
    async (request) => {
      const { principal, tenant } = await adminTenant(services, request);
      const password = request.headers['x-countersign-pskc-password'];
      const psk = pskFromHeader(request.headers['x-countersign-psk']);
      try {
        return await importTokens(services, principal, tenant, request.body, {
          ...(psk === undefined ? {} : { preSharedKey: psk }),
          ...(typeof password === 'string' ? { password } : {}),
        });
      } catch (error) {
        throw withKeyHint(error, 'send it in the X-Countersign-PSK header (hex)', 'send it in the X-Countersign-PSKC-Password header');
      }
    },
  );

  app.get(
    '/v1/admin/tokens',
    {
      schema: {
        tags,
        security,
        summary: 'List the tenant’s hardware tokens (assigned and in inventory)',
        querystring: Type.Object({ tenant: Type.Optional(Type.String()), unassigned: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
        response: { 200: Type.Object({ tokens: Type.Array(Token) }), ...errors },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return { tokens: await listTokens(services, tenant, { unassigned: request.query.unassigned }) };
    },
  );

  app.post(
    '/v1/admin/tokens/:id/assign',
    {
      schema: {
        tags,
        security,
        summary: 'Assign a token from the inventory to a user (id or serial number)',
        params: IdParams,
        querystring: TenantQuery,
        body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false }),
        response: { 200: Token, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await adminTenant(services, request);
      return assignToken(services, principal, tenant, request.params.id, request.body.username);
    },
  );

  app.post('/v1/admin/tokens/:id/unassign', { schema: { tags, security, summary: 'Return a token to the inventory', params: IdParams, querystring: TenantQuery, response: { 200: Token, ...errors } } }, async (request) => {
    const { principal, tenant } = await adminTenant(services, request);
    return unassignToken(services, principal, tenant, request.params.id);
  });

  app.post(
    '/v1/admin/tokens/:id/resync',
    {
      schema: {
        tags,
        security,
        summary: 'Resynchronise an HOTP token with two consecutive codes',
        params: IdParams,
        querystring: TenantQuery,
        body: Type.Object({ code1: Type.String({ maxLength: 16 }), code2: Type.String({ maxLength: 16 }) }, { additionalProperties: false }),
        response: { 200: Token, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await adminTenant(services, request);
      return resyncToken(services, principal, tenant, request.params.id, request.body);
    },
  );

  app.delete('/v1/admin/tokens/:id', { schema: { tags, security, summary: 'Delete a token', params: IdParams, querystring: TenantQuery, response: { 204: Type.Null(), ...errors } } }, async (request, reply) => {
    const { principal, tenant } = await adminTenant(services, request);
    await deleteToken(services, principal, tenant, request.params.id);
    return reply.code(204).send(null);
  });
};
