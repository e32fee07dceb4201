import type { FastifyInstance } from 'fastify';

/**
 * Imports arrive as files: CSV and PSKC (XML) bodies are read as text. Registered only inside
 * the plugins whose routes take files (Fastify encapsulation), so every other route keeps
 * answering 415 for a body that is not JSON.
 */
export function acceptFileBodies(app: FastifyInstance): void {
  app.addContentTypeParser(['text/csv', 'text/plain', 'application/xml', 'text/xml', 'application/pskc+xml'], { parseAs: 'string' }, (_request, body, done) => {
    done(null, body);
  });
}
