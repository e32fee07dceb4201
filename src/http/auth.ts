import type { FastifyRequest } from 'fastify';
import { CountersignError } from '../core/errors.js';
import { authenticateApiKey } from '../flows/api-keys.js';
import type { Principal, Services } from '../services.js';

/** Reads `Authorization: Bearer <key>` and returns who is calling, or throws 401/403. */
async function principalOf(services: Services, request: FastifyRequest): Promise<Principal> {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (match?.[1] === undefined) throw new CountersignError('UNAUTHORIZED', 'authorization: send "Authorization: Bearer <api key>"');
  const principal = await authenticateApiKey(services, match[1]);
  if (principal === undefined) throw new CountersignError('UNAUTHORIZED', 'authorization: the API key is not valid or was revoked');
  return principal;
}

export async function requireAdmin(services: Services, request: FastifyRequest): Promise<Extract<Principal, { kind: 'admin' }>> {
  const principal = await principalOf(services, request);
  if (principal.kind !== 'admin') throw new CountersignError('FORBIDDEN', 'this endpoint needs an administrator key');
  return principal;
}

export async function requireApplication(services: Services, request: FastifyRequest): Promise<Extract<Principal, { kind: 'application' }>> {
  const principal = await principalOf(services, request);
  if (principal.kind !== 'application') throw new CountersignError('FORBIDDEN', 'the Auth API needs an application key (countersign app create)');
  return principal;
}
