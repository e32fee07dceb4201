import { createHash, randomUUID } from 'node:crypto';
import { sql, type Kysely, type Selectable } from 'kysely';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import { actorOf, type Principal, type Services } from '../services.js';
import { preparedQuery } from '../store/prepared-query.js';
import type { AdminRole, ApiKeyKind, ApplicationsTable, Database, TenantRow } from '../store/schema.js';
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

/**
 * Administrator roles, least power first (Azure's built-in roles): a `reader` reads, never a
 * secret; an `authentication_admin` manages users and their methods; a `global_admin` does
 * everything (in its tenant, or everywhere for a key of every tenant). Which routes need which
 * role is decided in one table: src/http/admin-roles.ts.
 */
export const ADMIN_ROLES: readonly AdminRole[] = ['reader', 'authentication_admin', 'global_admin'];

/**
 * The role of a new key when none is given. `global_admin`, because before roles every key
 * could do everything: a script or client that creates a key without a role keeps getting a key
 * that does what it did. Least privilege is one option away (`role`, `--role`), and only a
 * `global_admin` can create keys at all, so the default never exceeds the creator's power.
 */
export const DEFAULT_ADMIN_ROLE: AdminRole = 'global_admin';

/** Whether a key of role `held` may do what needs role `needed`. */
export function roleAllows(held: AdminRole, needed: AdminRole): boolean {
  return ADMIN_ROLES.indexOf(held) >= ADMIN_ROLES.indexOf(needed);
}

export function isAdminRole(value: unknown): value is AdminRole {
  return typeof value === 'string' && (ADMIN_ROLES as readonly string[]).includes(value);
}

/** The principal may manage administrator keys: not an application, and an admin key only as global_admin. */
function requireKeyManager(principal: Principal, doing: string): void {
  if (principal.kind === 'application') throw new CountersignError('FORBIDDEN', `applications cannot ${doing} administrator keys`);
  if (principal.kind === 'admin' && principal.role !== 'global_admin') {
    throw new CountersignError('FORBIDDEN', `this needs the global_admin role; this key is ${principal.role === 'reader' ? 'a reader' : `an ${principal.role}`}`);
  }
}

/**
 * Creates an administrator key. A key never creates a key with more power than its own: only a
 * global_admin creates keys (so no role is above it), and a tenant's key only for its tenant.
 * The answer stays `{id, api_key}` as before roles (clients compare it whole); the role is in
 * the list.
 */
export async function createAdminKey(services: Services, principal: Principal, tenantId: string | null, name: string, role: string = DEFAULT_ADMIN_ROLE): Promise<CreatedKey> {
  requireKeyManager(principal, 'create');
  if (typeof name !== 'string' || name.trim() === '' || name.length > 100) throw invalidInput('name', 'must be 1–100 characters');
  if (!isAdminRole(role)) throw invalidInput('role', `must be one of ${ADMIN_ROLES.join(', ')}`);
  if (principal.kind === 'admin' && principal.tenantId !== null && principal.tenantId !== tenantId) {
    throw new CountersignError('FORBIDDEN', 'a tenant administrator key can only create keys for its own tenant');
  }
  const id = randomUUID();
  const apiKey = newKey(services, 'admin');
  await services.writes.run(async (db, record) => {
    await db
      .insertInto('api_keys')
      .values({ id, kind: 'admin', tenant_id: tenantId, application_id: null, name, key_hash: hashApiKey(apiKey), created_at: services.clock().getTime(), revoked_at: null, role })
      .execute();
    record({ tenantId, actor: actorOf(principal), action: 'admin_key.created', target: id, detail: { name, role, tenant: tenantId } });
  });
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

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());

/** What anyone may see of an administrator key: never the key or its hash. */
export interface AdminKeyView {
  id: string;
  name: string;
  /** The tenant the key is limited to, or null for a key of every tenant. */
  tenant: string | null;
  role: AdminRole;
  created_at: string;
  revoked_at: string | null;
}

/** Administrator keys, revoked ones included; a tenant administrator sees its tenant's keys only. */
export async function listAdminKeys(services: Services, principal: Principal): Promise<AdminKeyView[]> {
  if (principal.kind === 'application') throw new CountersignError('FORBIDDEN', 'applications cannot list administrator keys');
  let query = services.db
    .selectFrom('api_keys')
    .select(['id', 'name', 'tenant_id', 'role', 'created_at', 'revoked_at'])
    .where('kind', '=', 'admin')
    .orderBy('created_at')
    .orderBy('id');
  if (principal.kind === 'admin' && principal.tenantId !== null) query = query.where('tenant_id', '=', principal.tenantId);
  const rows = await query.execute();
  // A key without a role cannot exist after migration 011; reading one as reader fails safe.
  return rows.map((r) => ({ id: r.id, name: r.name, tenant: r.tenant_id, role: r.role ?? 'reader', created_at: iso(r.created_at) ?? '', revoked_at: iso(r.revoked_at) }));
}

/**
 * Revokes an administrator key: it gets 401 on its next request (authentication reads the
 * database every time). The last active global_admin key for every tenant cannot be revoked,
 * so nobody locks themselves out (readers and authentication admins cannot manage keys); a
 * tenant administrator can revoke its own tenant's keys only.
 */
export async function revokeAdminKey(services: Services, principal: Principal, id: string): Promise<void> {
  requireKeyManager(principal, 'revoke');
  const scope = principal.kind === 'admin' ? principal.tenantId : null;
  const key = await services.db.selectFrom('api_keys').select(['id', 'name', 'tenant_id', 'role', 'revoked_at']).where('id', '=', id).where('kind', '=', 'admin').executeTakeFirst();
  // Nothing crosses tenants: another tenant's key is absent to a tenant administrator.
  if (key === undefined || (scope !== null && key.tenant_id !== null && key.tenant_id !== scope)) throw notFound(`administrator key ${id}`);
  if (scope !== null && key.tenant_id === null) throw new CountersignError('FORBIDDEN', 'a tenant administrator key cannot revoke keys for every tenant');
  if (key.revoked_at !== null) throw new CountersignError('CONFLICT', `administrator key ${id} is already revoked`);
  const now = services.clock().getTime();
  const outcome = await services.db.transaction().execute(async (trx): Promise<'revoked' | 'already' | 'last'> => {
    if (key.tenant_id === null && key.role === 'global_admin') {
      // Two revocations of the last two keys for every tenant must not both pass the check
      // below. A no-op write to every active such key serializes them: SQLite takes its write
      // lock, PostgreSQL locks those rows, and the check that follows (a new statement) sees
      // whatever the other transaction committed.
      await trx
        .updateTable('api_keys')
        .set({ revoked_at: sql<null>`revoked_at` })
        .where('kind', '=', 'admin')
        .where('tenant_id', 'is', null)
        .where('revoked_at', 'is', null)
        .execute();
      const other = await trx
        .selectFrom('api_keys')
        .select('id')
        .where('kind', '=', 'admin')
        .where('tenant_id', 'is', null)
        .where('role', '=', 'global_admin')
        .where('revoked_at', 'is', null)
        .where('id', '!=', id)
        .limit(1)
        .executeTakeFirst();
      if (other === undefined) return 'last';
    }
    const updated = await trx.updateTable('api_keys').set({ revoked_at: now }).where('id', '=', id).where('kind', '=', 'admin').where('revoked_at', 'is', null).executeTakeFirst();
    return updated.numUpdatedRows === 1n ? 'revoked' : 'already';
  });
  if (outcome === 'last') {
    throw new CountersignError('CONFLICT', `administrator key ${id} is the last active global_admin key for every tenant; create another (countersign admin-key create --role global_admin) before revoking it`);
  }
  if (outcome === 'already') throw new CountersignError('CONFLICT', `administrator key ${id} is already revoked`);
  await services.audit({ tenantId: key.tenant_id, actor: actorOf(principal), action: 'admin_key.revoked', target: id, detail: { name: key.name, role: key.role } });
}

/** An application of the tenant by id or name (the id wins when a name looks like an id). */
export async function findApplication(services: Services, tenant: TenantRow, ref: string): Promise<Selectable<ApplicationsTable>> {
  const row = await services.db
    .selectFrom('applications')
    .selectAll()
    .where('tenant_id', '=', tenant.id)
    .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
    .orderBy(sql`case when ${sql.ref('id')} = ${ref} then 0 else 1 end`)
    .executeTakeFirst();
  if (row === undefined) throw notFound(`application ${ref}`);
  return row;
}

/** What anyone may see of an application key: never the key or its hash. */
export interface ApplicationKeyView {
  id: string;
  name: string;
  created_at: string;
  revoked_at: string | null;
}

export async function listApplicationKeys(services: Services, tenant: TenantRow, appRef: string): Promise<ApplicationKeyView[]> {
  const application = await findApplication(services, tenant, appRef);
  const rows = await services.db
    .selectFrom('api_keys')
    .select(['id', 'name', 'created_at', 'revoked_at'])
    .where('kind', '=', 'application')
    .where('application_id', '=', application.id)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map((r) => ({ id: r.id, name: r.name, created_at: iso(r.created_at) ?? '', revoked_at: iso(r.revoked_at) }));
}

/** A further key for an application (rotation): shown once; the older keys stay valid until revoked. */
export async function createApplicationKey(services: Services, principal: Principal, tenant: TenantRow, appRef: string, name?: string): Promise<CreatedKey> {
  if (name !== undefined && (typeof name !== 'string' || name.trim() === '' || name.length > 100)) throw invalidInput('name', 'must be 1–100 characters');
  const application = await findApplication(services, tenant, appRef);
  const id = randomUUID();
  const apiKey = newKey(services, 'application');
  const keyName = name ?? application.name;
  // An application deleted meanwhile: the foreign key refuses the insert; report it as absent.
  const inserted = await services.db
    .insertInto('api_keys')
    .columns(['id', 'kind', 'tenant_id', 'application_id', 'name', 'key_hash', 'created_at', 'revoked_at'])
    .expression((eb) =>
      eb
        .selectFrom('applications')
        .select([
          // Typed casts: PostgreSQL cannot infer a parameter's type inside INSERT … SELECT.
          sql<string>`cast(${id} as text)`.as('id'),
          sql<ApiKeyKind>`cast(${'application'} as text)`.as('kind'),
          'tenant_id',
          'id as application_id',
          sql<string>`cast(${keyName} as text)`.as('name'),
          sql<string>`cast(${hashApiKey(apiKey)} as text)`.as('key_hash'),
          sql<number>`cast(${services.clock().getTime()} as bigint)`.as('created_at'),
          sql<null>`cast(null as bigint)`.as('revoked_at'),
        ])
        .where('id', '=', application.id),
    )
    .executeTakeFirst();
  if (inserted.numInsertedOrUpdatedRows !== 1n) throw notFound(`application ${appRef}`);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'application_key.created', target: id, detail: { application_id: application.id, name: keyName } });
  return { id, api_key: apiKey };
}

/** Revokes one key of an application: it gets 401 on its next request. */
export async function revokeApplicationKey(services: Services, principal: Principal, tenant: TenantRow, appRef: string, keyId: string): Promise<void> {
  const application = await findApplication(services, tenant, appRef);
  const updated = await services.db
    .updateTable('api_keys')
    .set({ revoked_at: services.clock().getTime() })
    .where('id', '=', keyId)
    .where('kind', '=', 'application')
    .where('application_id', '=', application.id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  if (updated.numUpdatedRows !== 1n) {
    const existing = await services.db.selectFrom('api_keys').select('id').where('id', '=', keyId).where('kind', '=', 'application').where('application_id', '=', application.id).executeTakeFirst();
    if (existing === undefined) throw notFound(`key ${keyId} of application ${appRef}`);
    throw new CountersignError('CONFLICT', `key ${keyId} of application ${appRef} is already revoked`);
  }
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'application_key.revoked', target: keyId, detail: { application_id: application.id } });
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
  const row = await lookUpKey(services.db, hashApiKey(key));
  if (row === undefined || row.revoked_at !== null) return undefined;
  const tenant: TenantRow | undefined =
    row.tenant_id === null || row.name === null || row.settings === null || row.created_at === null
      ? undefined
      : { id: row.tenant_id, name: row.name, settings: row.settings, created_at: row.created_at };
  // A role missing (impossible after migration 011) fails safe: the least power.
  if (row.kind === 'admin') return { principal: { kind: 'admin', keyId: row.id, tenantId: row.tenant_id, role: row.role ?? 'reader', name: row.key_name }, tenant };
  if (row.application_id === null || tenant === undefined) return undefined;
  return { principal: { kind: 'application', keyId: row.id, applicationId: row.application_id, tenantId: tenant.id }, tenant };
}

/**
 * Requests that carry the same key share its lookup while that lookup waits for a database
 * connection (under load, an application's requests arrive together and would each read the
 * same row, and each wait for the pool to do it). Once the lookup has its connection it is no
 * longer joined: every request that shares it arrived before the query was sent, so each sees
 * the key as it is after its own arrival — a key revoked before a request came is refused, as
 * without sharing. Nothing is kept after the read. Callers build their own objects from the
 * shared row and never change it.
 */
const waitingKeyLookups = new WeakMap<Kysely<Database>, Map<string, Promise<KeyRow | undefined>>>();

function lookUpKey(db: Kysely<Database>, keyHash: string): Promise<KeyRow | undefined> {
  let waiting = waitingKeyLookups.get(db);
  if (waiting === undefined) waitingKeyLookups.set(db, (waiting = new Map<string, Promise<KeyRow | undefined>>()));
  const joined = waiting.get(keyHash);
  if (joined !== undefined) return joined;
  const lookups = waiting;
  let waitingForConnection = true;
  const lookup = db.connection().execute(async (connection) => {
    // Sent from here on: requests that come now start a lookup of their own.
    waitingForConnection = false;
    lookups.delete(keyHash);
    return (await keyWithTenant(connection, keyHash)).rows[0];
  });
  if (waitingForConnection) {
    lookups.set(keyHash, lookup);
    // A lookup that never got its connection is not joined either.
    lookup.catch(() => {
      if (lookups.get(keyHash) === lookup) lookups.delete(keyHash);
    });
  }
  return lookup;
}

type KeyRow = Awaited<ReturnType<typeof keyWithTenant>>['rows'][number];

const keyWithTenant = preparedQuery((db, keyHash: string) =>
  db
    .selectFrom('api_keys')
    .leftJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select([
      'api_keys.id',
      'api_keys.kind',
      'api_keys.tenant_id',
      'api_keys.application_id',
      'api_keys.revoked_at',
      'api_keys.role',
      'api_keys.name as key_name',
      'tenants.name',
      'tenants.settings',
      'tenants.created_at',
    ])
    .where('api_keys.key_hash', '=', keyHash),
);

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
  if (tenant === undefined) {
    try {
      await createTenant(services, system, DEFAULT_TENANT_NAME);
    } catch (error) {
      // Several nodes starting at once on a fresh store: another one created it first. Go on.
      if (!(error instanceof CountersignError && error.code === 'CONFLICT')) throw error;
    }
  }
  // If another node created a first key meanwhile, this one makes a second: both work, and
  // either can be revoked later (DELETE /v1/admin/admin-keys/{id}).
  const key = await createAdminKey(services, system, null, 'first administrator', 'global_admin');
  return { tenant: DEFAULT_TENANT_NAME, apiKey: key.api_key };
}
