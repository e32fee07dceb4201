import { createHash, randomUUID } from 'node:crypto';
import { CountersignError, invalidInput } from '../core/errors.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { ApiKeyKind, TenantRow } from '../store/schema.js';
import { createTenant, DEFAULT_TENANT_NAME } from './tenants.js';

/**
 * API keys for administrators and applications. A key is 256 random bits shown once; only its
 * SHA-256 is stored (a slow password hash adds nothing for a random 256-bit secret, and keys
 * are checked on every request).
 */
const PREFIX: Record<ApiKeyKind, string> = { admin: 'csa_', application: 'csk_' };

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

function newKey(services: Services, kind: ApiKeyKind): string {
  return PREFIX[kind] + services.random(32).toString('base64url');
}

export interface CreatedKey {
  id: string;
  api_key: string;
}

export async function createAdminKey(services: Services, principal: Principal, tenantId: string | null, name: string): Promise<CreatedKey> {
  if (principal.kind === 'application') throw new CountersignError('FORBIDDEN', 'applications cannot create administrator keys');
  if (principal.kind === 'admin' && principal.tenantId !== null && principal.tenantId !== tenantId) {
    throw new CountersignError('FORBIDDEN', 'a tenant administrator key can only create keys for its own tenant');
  }
  const id = randomUUID();
  const apiKey = newKey(services, 'admin');
  await services.db
    .insertInto('api_keys')
    .values({ id, kind: 'admin', tenant_id: tenantId, application_id: null, name, key_hash: hashApiKey(apiKey), created_at: services.clock().getTime(), revoked_at: null })
    .execute();
  await services.audit({ tenantId, actor: actorOf(principal), action: 'admin_key.created', target: id, detail: { name } });
  return { id, api_key: apiKey };
}

export interface CreatedApplication {
  id: string;
  name: string;
  api_key: string;
}

export async function createApplication(services: Services, principal: Principal, tenant: TenantRow, name: string): Promise<CreatedApplication> {
  if (typeof name !== 'string' || name.trim() === '' || name.length > 100) throw invalidInput('name', 'must be 1–100 characters');
  const taken = await services.db.selectFrom('applications').select('id').where('tenant_id', '=', tenant.id).where('name', '=', name).executeTakeFirst();
  if (taken !== undefined) throw new CountersignError('CONFLICT', `application ${name} already exists in tenant ${tenant.name}`);
  const id = randomUUID();
  const apiKey = newKey(services, 'application');
  const now = services.clock().getTime();
  await services.db.transaction().execute(async (trx) => {
    // Concurrent creates of one name: the unique key decides, and the loser gets 409, not a 500.
    const inserted = await trx
      .insertInto('applications')
      .values({ id, tenant_id: tenant.id, name, created_at: now })
      .onConflict((oc) => oc.columns(['tenant_id', 'name']).doNothing())
      .executeTakeFirst();
    if (inserted.numInsertedOrUpdatedRows !== 1n) throw new CountersignError('CONFLICT', `application ${name} already exists in tenant ${tenant.name}`);
    await trx
      .insertInto('api_keys')
      .values({ id: randomUUID(), kind: 'application', tenant_id: tenant.id, application_id: id, name, key_hash: hashApiKey(apiKey), created_at: now, revoked_at: null })
      .execute();
  });
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'application.created', target: id, detail: { name } });
  return { id, name, api_key: apiKey };
}

export async function listApplications(services: Services, tenant: TenantRow): Promise<{ id: string; name: string; created_at: string }[]> {
  const rows = await services.db.selectFrom('applications').selectAll().where('tenant_id', '=', tenant.id).orderBy('name').execute();
  return rows.map((r) => ({ id: r.id, name: r.name, created_at: new Date(Number(r.created_at)).toISOString() }));
}

export async function deleteApplication(services: Services, principal: Principal, tenant: TenantRow, ref: string): Promise<void> {
  const result = await services.db
    .deleteFrom('applications')
    .where('tenant_id', '=', tenant.id)
    .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
    .executeTakeFirst();
  if (result.numDeletedRows === 0n) throw new CountersignError('NOT_FOUND', `application ${ref} not found`);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'application.deleted', target: ref });
}

/** The principal behind a bearer key, or undefined for an unknown or revoked key. */
export async function authenticateApiKey(services: Services, key: string): Promise<Principal | undefined> {
  return (await authenticateKey(services, key))?.principal;
}

/**
 * The principal behind a bearer key together with its tenant, read in one query: the Auth API
 * needs both on every request.
 */
export async function authenticateKey(services: Services, key: string): Promise<{ principal: Principal; tenant: TenantRow | undefined } | undefined> {
  if (!/^cs[ak]_[A-Za-z0-9_-]{43}$/.test(key)) return undefined;
  const row = await services.db
    .selectFrom('api_keys')
    .leftJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select(['api_keys.id', 'api_keys.kind', 'api_keys.tenant_id', 'api_keys.application_id', 'api_keys.revoked_at', 'tenants.name', 'tenants.settings', 'tenants.created_at'])
    .where('api_keys.key_hash', '=', hashApiKey(key))
    .executeTakeFirst();
  if (row === undefined || row.revoked_at !== null) return undefined;
  const tenant: TenantRow | undefined =
    row.tenant_id === null || row.name === null || row.settings === null || row.created_at === null
      ? undefined
      : { id: row.tenant_id, name: row.name, settings: row.settings, created_at: row.created_at };
  if (row.kind === 'admin') return { principal: { kind: 'admin', keyId: row.id, tenantId: row.tenant_id }, tenant };
  if (row.application_id === null || tenant === undefined) return undefined;
  return { principal: { kind: 'application', keyId: row.id, applicationId: row.application_id, tenantId: tenant.id }, tenant };
}

/**
 * First start (SPEC Targets): when no administrator key exists, create the default tenant and
 * a first administrator key, and return the key so it can be printed once. Later starts find
 * a key and return undefined, so the key is never shown again.
 */
export async function bootstrapFirstAdmin(services: Services): Promise<{ tenant: string; apiKey: string } | undefined> {
  const anyAdmin = await services.db.selectFrom('api_keys').select('id').where('kind', '=', 'admin').limit(1).executeTakeFirst();
  if (anyAdmin !== undefined) return undefined;
  const system: Principal = { kind: 'system' };
  const tenant = await services.db.selectFrom('tenants').select('name').where('name', '=', DEFAULT_TENANT_NAME).executeTakeFirst();
  if (tenant === undefined) await createTenant(services, system, DEFAULT_TENANT_NAME);
  const key = await createAdminKey(services, system, null, 'first administrator');
  return { tenant: DEFAULT_TENANT_NAME, apiKey: key.api_key };
}
