import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import {
  completeEnrollment,
  enrollmentActivateTotp,
  enrollmentConfirmPhone,
  enrollmentInfo,
  enrollmentStartPhone,
  enrollmentStartPush,
  enrollmentStartTotp,
  openEnrollment,
  type EnrollmentSession,
} from '../../flows/enrollment.js';
import { snoozeNudge } from '../../flows/registration-campaign.js';
import type { Services } from '../../services.js';
import { requireApplication } from '../auth.js';
import { optionalBody } from './admin-enrollment.js';
import { ErrorBody, Method, Nullable } from '../schemas.js';

/**
 * The self-service registration API an enrollment link opens (`${public_url}/authenticator/#enroll=…`, opened by the authenticator web app):
 * the user's browser (or, later, the portal) calls it with the link's token as bearer
 * (`Authorization: Bearer cse_…`). Application and administrator keys are not accepted here,
 * and the token is accepted nowhere else. Also the Auth API's "not now" for the registration
 * campaign's nudge.
 */
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 429: ErrorBody };
const tags = ['Enrollment (self-service)'];
const security = [{ bearer: [] }];
const description = 'Authorization: Bearer <the enrollment link’s token, cse_…>. A used, revoked or expired link is refused with 401 and a message saying which.';

const Registered = Type.Object({ id: Type.String(), type: Type.String(), label: Type.String() });

async function sessionOf(services: Services, request: FastifyRequest): Promise<EnrollmentSession> {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return openEnrollment(services, match?.[1]);
}

export const enrollmentRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.get(
    '/v1/enrollment',
    {
      schema: {
        tags,
        security,
        summary: 'Who the link is for, which methods it may register, and what is registered already',
        description,
        response: {
          200: Type.Object({
            username: Type.String(),
            display_name: Nullable(Type.String()),
            tenant: Type.String(),
            mfa_state: Type.String(),
            expires_at: Type.String(),
            methods: Type.Array(Type.String()),
            registered: Type.Array(Registered),
          }),
          ...errors,
        },
      },
    },
    async (request) => enrollmentInfo(services, await sessionOf(services, request)),
  );

  app.post(
    '/v1/enrollment/totp',
    {
      schema: {
        tags,
        security,
        summary: 'Start registering an authenticator app: the secret, otpauth URI and QR code, shown once',
        description: `${description} Optional JSON body {"label": 1–64 characters}.`,
        response: { 201: Type.Object({ method: Method, secret: Type.String(), uri: Type.String(), qr_png: Type.String(), qr_svg: Type.String() }), ...errors },
      },
    },
    async (request, reply) => reply.code(201).send(await enrollmentStartTotp(services, await sessionOf(services, request), optionalBody(request.body, ['label']))),
  );

  app.post(
    '/v1/enrollment/totp/activate',
    {
      schema: {
        tags,
        security,
        summary: 'Activate the authenticator app with its first code (the newest pending one, or method_id)',
        description,
        body: Type.Object({ code: Type.String({ minLength: 1, maxLength: 16 }), method_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })) }, { additionalProperties: false }),
        response: { 200: Method, ...errors },
      },
    },
    async (request) => enrollmentActivateTotp(services, await sessionOf(services, request), request.body),
  );

  app.post(
    '/v1/enrollment/push',
    {
      schema: {
        tags,
        security,
        summary: 'An activation link (QR code) for the Countersign Authenticator: single use, 10 minutes',
        description: `${description} Optional JSON body {"with_totp": true}: the authenticator also gets a TOTP secret (when the link allows totp). At most 3 activation links are open per enrollment link (429 beyond); the device that activates with one counts as registered through the link.`,
        response: { 201: Type.Object({ activation_url: Type.String(), activation_code: Type.String(), expires_at: Type.String() }), ...errors },
      },
    },
    async (request, reply) => reply.code(201).send(await enrollmentStartPush(services, await sessionOf(services, request), optionalBody(request.body, ['with_totp']))),
  );

  app.post(
    '/v1/enrollment/phone',
    {
      schema: {
        tags,
        security,
        summary: 'Register a phone number: a code goes to it (a text to a mobile, a call to an office or alternate number)',
        description: `${description} A link only adds: 409 when a verified number of that type is registered already.`,
        body: Type.Object({ number: Type.String({ maxLength: 40 }), type: Type.Optional(Type.String({ maxLength: 16 })) }, { additionalProperties: false }),
        response: {
          201: Type.Object({ challenge_id: Type.String(), type: Type.String(), number: Type.String(), status: Type.String(), expires_at: Type.String() }),
          ...errors,
          502: ErrorBody,
        },
      },
    },
    async (request, reply) => reply.code(201).send(await enrollmentStartPhone(services, await sessionOf(services, request), request.body)),
  );

  app.post(
    '/v1/enrollment/phone/confirm',
    {
      schema: {
        tags,
        security,
        summary: 'Read back the code sent to the number; a proven number is registered',
        description,
        body: Type.Object({ code: Type.String({ maxLength: 16 }), type: Type.Optional(Type.String({ maxLength: 16 })) }, { additionalProperties: false }),
        response: {
          200: Type.Object({ id: Type.String(), status: Type.String(), type: Type.String(), expires_at: Type.String(), reason: Type.Optional(Type.String()), verified: Type.Boolean() }),
          ...errors,
        },
      },
    },
    async (request) => enrollmentConfirmPhone(services, await sessionOf(services, request), request.body),
  );

  app.post(
    '/v1/enrollment/complete',
    {
      schema: {
        tags,
        security,
        summary: 'Finish registering: the link is spent; an enabled user becomes enforced',
        description: `${description} Needs at least one registered method (409 otherwise).`,
        response: { 200: Type.Object({ completed: Type.Boolean(), mfa_state: Type.String(), registered: Type.Array(Registered) }), ...errors },
      },
    },
    async (request) => completeEnrollment(services, await sessionOf(services, request)),
  );

  app.post(
    '/v1/registration-campaign/snooze',
    {
      schema: {
        tags: ['Auth API'],
        security: [{ bearer: [] }],
        summary: 'The user chose "not now" on the registration campaign’s nudge: no nudge for the tenant’s snooze days',
        body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false }),
        response: { 200: Type.Object({ username: Type.String(), snoozed_until: Type.String() }), ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await requireApplication(services, request);
      return snoozeNudge(services, principal, tenant, request.body.username);
    },
  );
};
