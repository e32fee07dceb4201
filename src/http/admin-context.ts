import type { FastifyRequest } from 'fastify';
import { tenantForAdmin } from '../flows/tenants.js';
import { findUser } from '../flows/users.js';
import type { Services } from '../services.js';
import type { TenantRow, UserRow } from '../store/schema.js';
import { requireAdmin } from './auth.js';

/** Who is calling an admin route and which tenant (`?tenant=`) it acts on. */
export async function adminTenant(services: Services, request: FastifyRequest) {
  const principal = await requireAdmin(services, request);
  const ref = (request.query as { tenant?: string } | undefined)?.tenant;
  const tenant: TenantRow = await tenantForAdmin(services, principal, ref);
  return { principal, tenant };
}

export async function adminUser(services: Services, request: FastifyRequest, userRef: string) {
  const context = await adminTenant(services, request);
  const user: UserRow = await findUser(services.db, context.tenant.id, userRef);
  return { ...context, user };
}
