import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { Services } from '../services.js';
import { withActorDetail } from '../flows/actor-context.js';
import { installAdminAuthorization } from './auth.js';
import { installErrorHandling } from './errors.js';
import { adminAccessRoutes } from './routes/admin-access.js';
import { adminEnrollmentRoutes } from './routes/admin-enrollment.js';
import { adminGreetingRoutes } from './routes/admin-greetings.js';
import { adminMethodRoutes } from './routes/admin-methods.js';
import { adminNotificationRoutes } from './routes/admin-notifications.js';
import { adminOutboxRoutes } from './routes/admin-outbox.js';
import { adminPolicyRoutes } from './routes/admin-policies.js';
import { adminPushRoutes } from './routes/admin-push.js';
import { adminReportRoutes } from './routes/admin-reports.js';
import { adminTenantRoutes } from './routes/admin-tenants.js';
import { adminTokenRoutes } from './routes/admin-tokens.js';
import { adminUserRoutes } from './routes/admin-users.js';
import { adminWebhookRoutes } from './routes/admin-webhooks.js';
import { appPasswordRoutes } from './routes/app-passwords.js';
import { authApiRoutes } from './routes/auth-api.js';
import { authenticatorRoutes } from './routes/authenticator.js';
import { authenticatorAppRoutes } from './routes/authenticator-app.js';
import { enrollmentRoutes } from './routes/enrollment.js';
import { healthRoutes } from './routes/health.js';
import { telephonyWebhookRoutes } from './routes/telephony-webhooks.js';

/**
 * Fastify's `trustProxy` from `trusted_proxies`: `request.ip` (and hostname, protocol) comes
 * from X-Forwarded-For (-Host, -Proto) only through those proxies — the client is the last
 * address in the chain that none of them added. No proxies configured: `false`, the headers are
 * ignored and `request.ip` is the socket's peer, so no client can choose its own address.
 */
export function trustProxyOption(config: Pick<Config, 'trustedProxies'>): false | string[] {
  return config.trustedProxies.length === 0 ? false : [...config.trustedProxies];
}

/**
 * Builds the HTTP server (Fastify's "build in one function, listen in another"): tests call
 * this and use `app.inject()`; `countersign serve` calls it and listens.
 */
export async function buildServer(given: Services): Promise<FastifyInstance> {
  // Audit records made for an admin request carry who (key name, role) and why (the reason header).
  const services = withActorDetail(given);
  const app = Fastify({
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- without it the instance is typed with pino's Logger, which Fastify's plugin types do not accept
    loggerInstance: services.log as FastifyBaseLogger,
    trustProxy: trustProxyOption(services.config),
    bodyLimit: 1024 * 1024,
    // Unknown fields are refused (not silently dropped) so a typo is reported, naming the field.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  installErrorHandling(app);
  // Every /v1/admin route: an administrator key whose role allows it (admin-roles.ts), before any route.
  installAdminAuthorization(app, services);
  // Fastify reads text/plain bodies by default; here only the import routes take text
  // (file-bodies.ts), so a text body sent to a JSON endpoint is refused with 415.
  app.removeContentTypeParser('text/plain');

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Countersign', version: '0.1.0', description: 'Multi-factor authentication: the Auth API for applications and the admin API.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An application key (csk_…) or an administrator key (csa_…).' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());

  await app.register(healthRoutes, { services });
  await app.register(authApiRoutes, { services });
  await app.register(adminTenantRoutes, { services });
  await app.register(adminUserRoutes, { services });
  await app.register(adminWebhookRoutes, { services });
  await app.register(adminMethodRoutes, { services });
  await app.register(adminTokenRoutes, { services });
  await app.register(adminNotificationRoutes, { services });
  await app.register(adminOutboxRoutes, { services });
  await app.register(adminGreetingRoutes, { services });
  await app.register(adminPushRoutes, { services });
  await app.register(adminPolicyRoutes, { services });
  await app.register(adminReportRoutes, { services });
  await app.register(appPasswordRoutes, { services });
  await app.register(adminAccessRoutes, { services });
  await app.register(adminEnrollmentRoutes, { services });
  await app.register(enrollmentRoutes, { services });
  await app.register(authenticatorRoutes, { services });
  await app.register(authenticatorAppRoutes);
  await app.register(telephonyWebhookRoutes, { services });
  app.get('/', { schema: { hide: true } }, (_request, reply) => reply.redirect('/docs'));
  return app;
}
