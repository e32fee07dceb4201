import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { sql } from 'kysely';
import { Type } from 'typebox';
import { CountersignError } from '../../core/errors.js';
import type { Services } from '../../services.js';

export const healthRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  // Liveness: answers without touching the database (SPEC), so it measures the HTTP stack alone.
  app.get('/healthz', { schema: { hide: true, response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, () => ({ status: 'ok' as const }));

  app.get('/readyz', { schema: { hide: true, response: { 200: Type.Object({ status: Type.Literal('ok'), store: Type.String() }) } } }, async () => {
    try {
      await sql`select 1`.execute(services.db);
    } catch (error) {
      throw new CountersignError('INTERNAL', 'the store does not answer', { cause: error });
    }
    return { status: 'ok' as const, store: services.store.dialect };
  });
};
