import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { answerChallenge, createChallenge, getChallenge } from '../../flows/challenges.js';
import { parseIp, preauth } from '../../flows/preauth.js';
import { verifyCode } from '../../flows/verify-code.js';
import { forgetRememberedDevices } from '../../flows/remembered-devices.js';
import { normalizeUsername } from '../../core/user-fields.js';
import { handOverChallenge, handOverVerification } from '../../flows/approvals.js';
import type { Services } from '../../services.js';
import { requireApplication } from '../auth.js';
import { ErrorBody, IdParams } from '../schemas.js';

/** The Auth API (SPEC "Public contracts"): what applications call, with an application key. */
const Challenge = Type.Object({
  id: Type.String(),
  status: Type.String(),
  type: Type.String(),
  expires_at: Type.String(),
  number: Type.Optional(Type.Integer()),
  reason: Type.Optional(Type.String()),
  remember_token: Type.Optional(Type.String({ description: 'once, with the first approved answer or read, when the tenant remembers MFA (remember_mfa_days): present it to preauth' })),
});
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 429: ErrorBody };
const tags = ['Auth API'];
const security = [{ bearer: [] }];

export const authApiRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const context = (request: Parameters<typeof requireApplication>[1]) => requireApplication(services, request);

  app.post(
    '/v1/preauth',
    {
      schema: {
        tags,
        security,
        summary: 'Decide what a sign-in needs before any factor',
        body: Type.Object(
          {
            username: Type.String({ minLength: 1, maxLength: 256 }),
            ip: Type.Optional(Type.String({ maxLength: 64 })),
            client: Type.Optional(Type.Union([Type.Literal('browser'), Type.Literal('legacy')])),
            remember_token: Type.Optional(Type.String({ maxLength: 512 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            result: Type.String(),
            reason: Type.String(),
            methods: Type.Array(Type.Object({ id: Type.String(), type: Type.String(), label: Type.String(), default: Type.Boolean() })),
            trace: Type.Array(Type.Object({ check: Type.String(), said: Type.String(), decided: Type.Optional(Type.Boolean()) }), { description: 'each check consulted, in order, and what it said' }),
            nudge: Type.Optional(
              Type.Object(
                { method: Type.String(), snooze_days: Type.Integer(), message: Type.String() },
                { description: 'the registration campaign: offer the user to register this stronger method (after the sign-in), or snooze it with POST /v1/registration-campaign/snooze' },
              ),
            ),
          }),
          ...errors,
        },
      },
    },
    async (request) => {
      const { principal, tenant } = await context(request);
      return preauth(services, principal, tenant, request.body);
    },
  );

  app.post(
    '/v1/challenges',
    {
      schema: {
        tags,
        security,
        summary: 'Start a verification with one of the user’s methods',
        body: Type.Object(
          {
            username: Type.String({ minLength: 1, maxLength: 256 }),
            method: Type.String({ minLength: 1, maxLength: 64, description: 'a method id, or a type: totp, oath' }),
            context: Type.Optional(
              Type.Object(
                {
                  app: Type.Optional(Type.String({ maxLength: 200 })),
                  ip: Type.Optional(Type.String({ maxLength: 64 })),
                  event: Type.Optional(Type.Object({ title: Type.String({ maxLength: 200 }), detail: Type.Optional(Type.String({ maxLength: 1000 })) }, { additionalProperties: false })),
                },
                { additionalProperties: false },
              ),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: Challenge, ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await context(request);
      return reply.code(201).send(await createChallenge(services, principal, tenant, request.body));
    },
  );

  app.get(
    '/v1/challenges/:id',
    {
      schema: {
        tags,
        security,
        summary: 'Read a challenge; with ?wait=N, wait up to N seconds for it to leave pending',
        params: IdParams,
        querystring: Type.Object({ wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 60 })) }, { additionalProperties: false }),
        response: { 200: Challenge, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await context(request);
      const abort = new AbortController();
      request.raw.once('close', () => abort.abort());
      return handOverChallenge(services, principal, tenant, await getChallenge(services, principal, tenant, request.params.id, request.query.wait ?? 0, abort.signal));
    },
  );

  app.post(
    '/v1/challenges/:id/answer',
    {
      schema: {
        tags,
        security,
        summary: 'Answer a code challenge',
        params: IdParams,
        body: Type.Object({ code: Type.String({ minLength: 1, maxLength: 16 }) }, { additionalProperties: false }),
        response: { 200: Challenge, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await context(request);
      return handOverChallenge(services, principal, tenant, await answerChallenge(services, principal, tenant, request.params.id, request.body));
    },
  );

  app.post(
    '/v1/verify',
    {
      schema: {
        tags,
        security,
        summary: 'Check a code from any of the user’s code methods (one shot)',
        body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }), code: Type.String({ minLength: 1, maxLength: 16 }), ip: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false }),
        response: { 200: Type.Object({ result: Type.String(), reason: Type.String(), remember_token: Type.Optional(Type.String()) }), ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await context(request);
      const ip = parseIp(request.body.ip);
      const outcome = await verifyCode(services, principal, tenant, { username: request.body.username, code: request.body.code, ip });
      if (outcome.result !== 'approved' || outcome.user === undefined) return { result: outcome.result, reason: outcome.reason };
      return { result: outcome.result, reason: outcome.reason, ...(await handOverVerification(services, principal, tenant, outcome.user.id, ip ?? null)) };
    },
  );

  // "Forget my devices" on the application's account page: the user revokes every remembered device.
  app.post(
    '/v1/remembered-devices/forget',
    {
      schema: {
        tags,
        security,
        summary: 'Revoke every remembered device of a user, on the user’s own request (the application’s “forget my devices”)',
        description: 'Every remember token of the user stops working at the next preauth, for every application. An unknown user answers {revoked: 0}, like a user with none.',
        body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false }),
        response: { 200: Type.Object({ revoked: Type.Integer() }), ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await context(request);
      const user = await services.db.selectFrom('users').select('id').where('tenant_id', '=', tenant.id).where('username', '=', normalizeUsername(request.body.username)).executeTakeFirst();
      return { revoked: user === undefined ? 0 : await forgetRememberedDevices(services, principal, tenant, user.id) };
    },
  );
};
