import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import { applySettingsChange, DEFAULT_SETTINGS, parseStoredSettings, type TenantSettings } from '../core/settings.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';

export interface Tenant {
  id: string;
  name: string;
  created_at: string;
}

export const DEFAULT_TENANT_NAME = 'default';

export function publicTenant(row: TenantRow): Tenant {
  return { id: row.id, name: row.name, created_at: new Date(Number(row.created_at)).toISOString() };
}

export function validateTenantName(name: unknown): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$/.test(name)) {
    throw invalidInput('name', 'must be 1–63 letters, digits, spaces, dots, dashes or underscores, starting with a letter or digit');
  }
  return name;
}

export async function createTenant(services: Services, principal: Principal, name: string): Promise<Tenant> {
  validateTenantName(name);
  if (principal.kind === 'admin' && principal.tenantId !== null) {
    throw new CountersignError('FORBIDDEN', 'a tenant administrator key cannot create tenants');
  }
  const existing = await services.db.selectFrom('tenants').select('id').where('name', '=', name).executeTakeFirst();
  if (existing !== undefined) throw new CountersignError('CONFLICT', `tenant ${name} already exists`);
  const row: TenantRow = { id: randomUUID(), name, settings: JSON.stringify(DEFAULT_SETTINGS), created_at: services.clock().getTime() };
  // Concurrent creates of one name: the unique key decides, and the loser gets 409, not a 500.
  const inserted = await services.db.insertInto('tenants').values(row).onConflict((oc) => oc.column('name').doNothing()).executeTakeFirst();
  if (inserted.numInsertedOrUpdatedRows !== 1n) throw new CountersignError('CONFLICT', `tenant ${name} already exists`);
  await services.audit({ tenantId: row.id, actor: actorOf(principal), action: 'tenant.created', target: row.id, detail: { name } });
  return publicTenant(row);
}

/** Finds a tenant by id or name (SPEC: "T is a tenant id or name"). */
export async function findTenant(services: Services, ref: string): Promise<TenantRow> {
  const row = await services.db
    .selectFrom('tenants')
    .selectAll()
    .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
    // A name may look like another tenant's id: the id, which never changes, wins.
    .orderBy(sql`case when ${sql.ref('id')} = ${ref} then 0 else 1 end`)
    .executeTakeFirst();
  if (row === undefined) throw notFound(`tenant ${ref}`);
  return row;
}

/** The tenant an admin may act on: its own key's tenant, or the one it names. */
export async function tenantForAdmin(services: Services, principal: Principal, ref: string | undefined): Promise<TenantRow> {
  if (principal.kind === 'admin' && principal.tenantId !== null) {
    const own = await findTenant(services, principal.tenantId);
    if (ref !== undefined && ref !== own.id && ref !== own.name) {
      // Nothing crosses tenants: a tenant-scoped key sees other tenants as absent.
      throw notFound(`tenant ${ref}`);
    }
    return own;
  }
  if (ref === undefined || ref === '') {
    throw invalidInput('tenant', 'is required (query parameter ?tenant=ID_OR_NAME)');
  }
  return findTenant(services, ref);
}

export async function listTenants(services: Services, principal: Principal): Promise<Tenant[]> {
  let query = services.db.selectFrom('tenants').selectAll().orderBy('name');
  if (principal.kind === 'admin' && principal.tenantId !== null) query = query.where('id', '=', principal.tenantId);
  return (await query.execute()).map(publicTenant);
}

export async function deleteTenant(services: Services, principal: Principal, tenant: TenantRow): Promise<void> {
  if (principal.kind === 'admin' && principal.tenantId !== null) {
    throw new CountersignError('FORBIDDEN', 'a tenant administrator key cannot delete tenants');
  }
  await services.db.deleteFrom('tenants').where('id', '=', tenant.id).execute();
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'tenant.deleted', target: tenant.id, detail: { name: tenant.name } });
}

export function tenantSettings(tenant: TenantRow): TenantSettings {
  return parseStoredSettings(tenant.settings);
}

export async function updateTenantSettings(
  services: Services,
  principal: Principal,
  tenant: TenantRow,
  change: Record<string, unknown>,
): Promise<TenantSettings> {
  // Validated whole before anything is written: a refused change leaves the old settings.
  const next = applySettingsChange(tenantSettings(tenant), change);
  await services.db.updateTable('tenants').set({ settings: JSON.stringify(next) }).where('id', '=', tenant.id).execute();
  await services.audit({
    tenantId: tenant.id,
    actor: actorOf(principal),
    action: 'settings.updated',
    target: tenant.id,
    detail: { fields: Object.keys(change).join(',') },
  });
  return next;
}
