import type { FastifyRequest } from 'fastify';
import { CountersignError } from '../core/errors.js';
import { authenticateKey } from '../flows/api-keys.js';
import type { TenantRow } from '../store/schema.js';
import type { Principal, Services } from '../services.js';

/** Reads `Authorization: Bearer <key>` and returns who is calling, or throws 401/403. */
async function callerOf(services: Services, request: FastifyRequest): Promise<{ principal: Principal; tenant: TenantRow | undefined }> {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (match?.[1] === undefined) throw new CountersignError('UNAUTHORIZED', 'authorization: send "Authorization: Bearer <api key>"');
  const caller = await authenticateKey(services, match[1]);
  if (caller === undefined) throw new CountersignError('UNAUTHORIZED', 'authorization: the API key is not valid or was revoked');
  return caller;
}

export async function requireAdmin(services: Services, request: FastifyRequest): Promise<Extract<Principal, { kind: 'admin' }>> {
  const { principal } = await callerOf(services, request);
  if (principal.kind !== 'admin') throw new CountersignError('FORBIDDEN', 'this endpoint needs an administrator key');
  return principal;
}

/** An application key and the tenant it belongs to. */
export async function requireApplication(services: Services, request: FastifyRequest): Promise<{ principal: Extract<Principal, { kind: 'application' }>; tenant: TenantRow }> {
  const { principal, tenant } = await callerOf(services, request);
  if (principal.kind !== 'application' || tenant === undefined) throw new CountersignError('FORBIDDEN', 'the Auth API needs an application key (countersign app create)');
  return { principal, tenant };
}
