import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import {
  evaluatePolicies,
  isRange,
  MAX_NAMED_LOCATIONS,
  MAX_POLICIES,
  NO_POLICIES,
  parseConditions,
  parseGrant,
  parseGroupName,
  parseLocationName,
  parseLocationRanges,
  parseName,
  policyRefusal,
  TRUSTED,
  type ClientType,
  type IncludeExclude,
  type PolicyConditions,
  type PolicyEvaluation,
  type PolicyGrant,
  type PolicyRefusal,
  type PolicyRule,
} from '../core/policies.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { PoliciesTable, NamedLocationsTable } from '../store/schema-policies.js';
import type { ChallengeRow, Database, TenantRow, UserRow } from '../store/schema.js';
import { decideChallenge } from './challenge-state.js';
import { tenantSettings } from './tenants.js';

/**
 * Conditional access policies and named locations (issue 5 item 9): the administrator's side.
 * The rules themselves — conditions, grants, first match decides — are in core/policies.ts;
 * preauth reads them through `policyEvaluation` below.
 *
 * Saving a policy checks every name it holds against the tenant: usernames and application
 * names must exist, groups must have a member (groups are the users' `groups`), and locations
 * must be `trusted`, a range, or a named location. Applications are stored by id, so a name in
 * a listing is always the application's current one. Positions are 1…n without gaps; creating,
 * moving and deleting renumber under the tenant's lock (one writer on SQLite, `FOR UPDATE` of
 * the tenant row on PostgreSQL), so racing changes cannot exceed 100 policies or share a place.
 * Every change is audited, with the policy's name and what changed.
 *
 * The tenant's `policy_count` (its enabled policies) is set again in the transaction of every
 * change that can alter it (create, update, delete), so every server process on the store sees
 * it with the change; sign-ins read it joined to the user they read anyway
 * (`policyCountColumn`) and skip the policies when it is 0. Nothing is cached per process.
 */
export interface PolicyView {
  id: string;
  name: string;
  position: number;
  enabled: boolean;
  grant: PolicyGrant;
  exclude_group: string | null;
  /** As stored, with application ids shown as names. */
  conditions: ConditionsView;
  created_at: string;
  updated_at: string;
}

interface ListView {
  include?: string[];
  exclude?: string[];
}
export interface ConditionsView {
  users?: ListView;
  groups?: ListView;
  applications?: ListView;
  client_types?: ClientType[];
  locations?: ListView;
}

export interface PolicyInput {
  name?: unknown;
  position?: unknown;
  enabled?: unknown;
  grant?: unknown;
  exclude_group?: unknown;
  conditions?: unknown;
}

export interface NamedLocationView {
  id: string;
  name: string;
  ranges: string[];
  trusted: boolean;
  created_at: string;
}

const iso = (ms: number): string => new Date(Number(ms)).toISOString();

function ruleOf(row: PoliciesTable): PolicyRule {
  return {
    id: row.id,
    name: row.name,
    position: Number(row.position),
    enabled: Number(row.enabled) === 1,
    conditions: JSON.parse(row.conditions) as PolicyConditions,
    excludeGroup: row.exclude_group,
    grant: row.grant_control as PolicyGrant,
  };
}

function mapList(list: IncludeExclude | undefined, map: (v: string) => string): IncludeExclude | undefined {
  if (list === undefined) return undefined;
  return { ...(list.include === undefined ? {} : { include: list.include.map(map) }), ...(list.exclude === undefined ? {} : { exclude: list.exclude.map(map) }) };
}

async function applicationNames(db: Kysely<Database>, tenantId: string): Promise<Map<string, string>> {
  return new Map((await db.selectFrom('applications').select(['id', 'name']).where('tenant_id', '=', tenantId).execute()).map((a) => [a.id, a.name]));
}

function viewOf(row: PoliciesTable, apps: Map<string, string>): PolicyView {
  const rule = ruleOf(row);
  const applications = mapList(rule.conditions.applications, (id) => apps.get(id) ?? id);
  return {
    id: row.id,
    name: row.name,
    position: rule.position,
    enabled: rule.enabled,
    grant: rule.grant,
    exclude_group: row.exclude_group,
    // Parsed from JSON just now: the lists are fresh arrays, not shared.
    conditions: { ...rule.conditions, ...(applications === undefined ? {} : { applications }) } as ConditionsView,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

export async function listPolicies(services: Services, tenant: TenantRow): Promise<PolicyView[]> {
  const rows = await services.db.selectFrom('policies').selectAll().where('tenant_id', '=', tenant.id).orderBy('position').orderBy('id').execute();
  const apps = await applicationNames(services.db, tenant.id);
  return rows.map((r) => viewOf(r, apps));
}

async function findPolicyRow(db: Kysely<Database>, tenantId: string, ref: string): Promise<PoliciesTable> {
  const row = await db
    .selectFrom('policies')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
    // A name may look like another policy's id: the id, which never changes, wins.
    .orderBy(sql`case when ${sql.ref('id')} = ${ref} then 0 else 1 end`)
    .executeTakeFirst();
  if (row === undefined) throw notFound(`policy ${ref}`);
  return row;
}

export async function getPolicy(services: Services, tenant: TenantRow, ref: string): Promise<PolicyView> {
  return viewOf(await findPolicyRow(services.db, tenant.id, ref), await applicationNames(services.db, tenant.id));
}

/** Checks every name in the conditions against the tenant; application names become ids. */
async function resolveConditions(services: Services, tenant: TenantRow, conditions: PolicyConditions): Promise<PolicyConditions> {
  const db = services.db;
  const check = async (list: IncludeExclude | undefined, field: string, known: (names: string[]) => Promise<Set<string>>, what: string) => {
    for (const side of ['include', 'exclude'] as const) {
      const names = list?.[side] ?? [];
      if (names.length === 0) continue;
      const found = await known([...names]);
      const i = names.findIndex((n) => !found.has(n));
      if (i >= 0) throw invalidInput(`conditions.${field}.${side}[${i}]`, `${what} "${names[i] ?? ''}" in tenant ${tenant.name}`);
    }
  };
  await check(conditions.users, 'users', async (names) => new Set((await db.selectFrom('users').select('username').where('tenant_id', '=', tenant.id).where('username', 'in', names).execute()).map((u) => u.username)), 'there is no user');
  await check(conditions.groups, 'groups', (names) => groupsWithMembers(db, tenant.id, names), 'no user is in group');
  await check(
    conditions.locations,
    'locations',
    async (names) => {
      const named = names.filter((n) => n !== TRUSTED && !isRange(n));
      const found = named.length === 0 ? [] : await db.selectFrom('named_locations').select('name').where('tenant_id', '=', tenant.id).where('name', 'in', named).execute();
      return new Set([...names.filter((n) => n === TRUSTED || isRange(n)), ...found.map((l) => l.name)]);
    },
    'there is no named location (nor is it "trusted" or a CIDR range)',
  );
  if (conditions.applications === undefined) return conditions;
  const apps = await db.selectFrom('applications').select(['id', 'name']).where('tenant_id', '=', tenant.id).execute();
  const toId = (field: string) => (ref: string, i: number) => {
    const app = apps.find((a) => a.id === ref) ?? apps.find((a) => a.name === ref);
    if (app === undefined) throw invalidInput(`conditions.applications.${field}[${i}]`, `there is no application "${ref}" in tenant ${tenant.name}`);
    return app.id;
  };
  const { include, exclude } = conditions.applications;
  const applications = { ...(include === undefined ? {} : { include: [...new Set(include.map(toId('include')))] }), ...(exclude === undefined ? {} : { exclude: [...new Set(exclude.map(toId('exclude')))] }) };
  return { ...conditions, applications };
}

async function groupsWithMembers(db: Kysely<Database>, tenantId: string, names: string[]): Promise<Set<string>> {
  return new Set((await db.selectFrom('user_groups').select('name').distinct().where('tenant_id', '=', tenantId).where('name', 'in', names).execute()).map((g) => g.name));
}

async function parseExcludeGroup(services: Services, tenant: TenantRow, value: unknown): Promise<string | null> {
  if (value === null || value === undefined || value === '') return null;
  const group = parseGroupName(value, 'exclude_group');
  if (!(await groupsWithMembers(services.db, tenant.id, [group])).has(group)) throw invalidInput('exclude_group', `no user is in group "${group}" in tenant ${tenant.name}; put the break-glass accounts in the group first`);
  return group;
}

function parsePosition(value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) throw invalidInput('position', `must be a whole number from 1 to ${max}`);
  return value;
}

function parseEnabled(value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidInput('enabled', 'must be true or false');
  return value;
}

/** Takes the tenant's lock for policy changes (SQLite: the group commit is the only writer already). */
async function lockTenant(services: Services, db: Kysely<Database>, tenantId: string): Promise<void> {
  if (services.store.dialect === 'postgres') await db.selectFrom('tenants').select('id').where('id', '=', tenantId).forUpdate().executeTakeFirst();
}

/** Writes positions 1…n in the given order, touching only rows whose position changes. */
async function renumber(db: Kysely<Database>, tenantId: string, ordered: readonly { id: string; position: number }[]): Promise<void> {
  for (const [i, row] of ordered.entries()) {
    if (Number(row.position) !== i + 1) await db.updateTable('policies').set({ position: i + 1 }).where('id', '=', row.id).where('tenant_id', '=', tenantId).execute();
  }
}

/**
 * Sets the tenant's `policy_count` to its enabled policies, counted in this transaction (after
 * the change, under the tenant's lock): never adjusted by ±1, so it cannot drift.
 */
async function syncPolicyCount(db: Kysely<Database>, tenantId: string): Promise<void> {
  await db
    .updateTable('tenants')
    .set({ policy_count: sql<number>`(select count(*) from policies where tenant_id = ${tenantId} and enabled = 1)` })
    .where('id', '=', tenantId)
    .execute();
}

async function currentOrder(db: Kysely<Database>, tenantId: string): Promise<{ id: string; name: string; position: number }[]> {
  return db.selectFrom('policies').select(['id', 'name', 'position']).where('tenant_id', '=', tenantId).orderBy('position').orderBy('id').execute();
}

function duplicateName(name: string): CountersignError {
  return new CountersignError('CONFLICT', `a policy named "${name}" already exists in this tenant`);
}

export async function createPolicy(services: Services, principal: Principal, tenant: TenantRow, input: PolicyInput): Promise<PolicyView> {
  const name = parseName(input.name);
  const grant = parseGrant(input.grant);
  const enabled = input.enabled === undefined ? true : parseEnabled(input.enabled);
  const conditions = await resolveConditions(services, tenant, parseConditions(input.conditions));
  const excludeGroup = await parseExcludeGroup(services, tenant, input.exclude_group);
  if (input.position !== undefined) parsePosition(input.position, MAX_POLICIES);
  const now = services.clock().getTime();
  const id = randomUUID();
  await services.writes.run(async (db, record) => {
    await lockTenant(services, db, tenant.id);
    const order = await currentOrder(db, tenant.id);
    if (order.length >= MAX_POLICIES) throw new CountersignError('LIMIT_REACHED', `tenant ${tenant.name} already has ${MAX_POLICIES} policies, the most allowed; remove one first`);
    if (order.some((p) => p.name === name)) throw duplicateName(name);
    const position = input.position === undefined ? order.length + 1 : parsePosition(input.position, order.length + 1);
    const inserted = await db
      .insertInto('policies')
      .values({ id, tenant_id: tenant.id, name, position: order.length + 1, enabled: enabled ? 1 : 0, conditions: JSON.stringify(conditions), exclude_group: excludeGroup, grant_control: grant, created_at: now, updated_at: now })
      .onConflict((oc) => oc.columns(['tenant_id', 'name']).doNothing())
      .executeTakeFirst();
    if (inserted.numInsertedOrUpdatedRows !== 1n) throw duplicateName(name);
    const moved = [...order];
    moved.splice(position - 1, 0, { id, name, position: order.length + 1 });
    await renumber(db, tenant.id, moved);
    await syncPolicyCount(db, tenant.id);
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'policy.created', target: id, detail: { name, grant, position, enabled, exclude_group: excludeGroup, conditions: JSON.stringify(conditions) } });
  });
  return getPolicy(services, tenant, id);
}

/** Changes the given fields; `conditions` replaces the conditions whole; `position` moves the policy. */
export async function updatePolicy(services: Services, principal: Principal, tenant: TenantRow, ref: string, input: PolicyInput): Promise<PolicyView> {
  const row = await findPolicyRow(services.db, tenant.id, ref);
  const fields = Object.keys(input).filter((k) => (input as Record<string, unknown>)[k] !== undefined);
  if (fields.length === 0) throw invalidInput('body', 'name at least one field to change: name, position, enabled, grant, exclude_group, conditions');
  const changes: Partial<Pick<PoliciesTable, 'name' | 'enabled' | 'grant_control' | 'exclude_group' | 'conditions'>> = {};
  if (input.name !== undefined) changes.name = parseName(input.name);
  if (input.grant !== undefined) changes.grant_control = parseGrant(input.grant);
  if (input.enabled !== undefined) changes.enabled = parseEnabled(input.enabled) ? 1 : 0;
  if (input.conditions !== undefined) changes.conditions = JSON.stringify(await resolveConditions(services, tenant, parseConditions(input.conditions)));
  if ('exclude_group' in input && input.exclude_group !== undefined) changes.exclude_group = await parseExcludeGroup(services, tenant, input.exclude_group);
  if (input.position !== undefined) parsePosition(input.position, MAX_POLICIES);
  const now = services.clock().getTime();
  await services.writes.run(async (db, record) => {
    await lockTenant(services, db, tenant.id);
    const order = await currentOrder(db, tenant.id);
    const at = order.findIndex((p) => p.id === row.id);
    if (at < 0) throw notFound(`policy ${ref}`);
    if (changes.name !== undefined && order.some((p) => p.name === changes.name && p.id !== row.id)) throw duplicateName(changes.name);
    await db.updateTable('policies').set({ ...changes, updated_at: now }).where('id', '=', row.id).where('tenant_id', '=', tenant.id).execute();
    if (changes.enabled !== undefined) await syncPolicyCount(db, tenant.id);
    if (input.position !== undefined) {
      const position = parsePosition(input.position, order.length);
      const moved = [...order];
      const [self] = moved.splice(at, 1);
      if (self !== undefined) moved.splice(position - 1, 0, self);
      await renumber(db, tenant.id, moved);
    }
    const detail: Record<string, string | number | boolean | null> = { name: changes.name ?? row.name, changed: fields.sort().join(',') };
    if (changes.name !== undefined && changes.name !== row.name) detail['old_name'] = row.name;
    if (changes.grant_control !== undefined) detail['grant'] = changes.grant_control;
    if (changes.enabled !== undefined) detail['enabled'] = changes.enabled === 1;
    if (changes.exclude_group !== undefined) detail['exclude_group'] = changes.exclude_group;
    if (changes.conditions !== undefined) detail['conditions'] = changes.conditions;
    if (input.position !== undefined) detail['position'] = Number(input.position);
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'policy.updated', target: row.id, detail });
  });
  return getPolicy(services, tenant, row.id);
}

export async function deletePolicy(services: Services, principal: Principal, tenant: TenantRow, ref: string): Promise<void> {
  const row = await findPolicyRow(services.db, tenant.id, ref);
  await services.writes.run(async (db, record) => {
    await lockTenant(services, db, tenant.id);
    const deleted = await db.deleteFrom('policies').where('id', '=', row.id).where('tenant_id', '=', tenant.id).executeTakeFirst();
    if (deleted.numDeletedRows !== 1n) throw notFound(`policy ${ref}`);
    await renumber(db, tenant.id, await currentOrder(db, tenant.id));
    await syncPolicyCount(db, tenant.id);
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'policy.deleted', target: row.id, detail: { name: row.name, grant: row.grant_control, position: Number(row.position) } });
  });
}

/** Puts every policy of the tenant in the given order (ids or names, each policy exactly once). */
export async function reorderPolicies(services: Services, principal: Principal, tenant: TenantRow, refs: unknown): Promise<PolicyView[]> {
  if (!Array.isArray(refs) || refs.some((r) => typeof r !== 'string')) throw invalidInput('ids', 'must list every policy of the tenant (ids or names), in the new order');
  const list = refs as string[];
  await services.writes.run(async (db, record) => {
    await lockTenant(services, db, tenant.id);
    const order = await currentOrder(db, tenant.id);
    const wanted = list.map((ref, i) => {
      const policy = order.find((p) => p.id === ref) ?? order.find((p) => p.name === ref);
      if (policy === undefined) throw invalidInput(`ids[${i}]`, `there is no policy "${ref}" in tenant ${tenant.name}`);
      return policy;
    });
    if (new Set(wanted.map((p) => p.id)).size !== wanted.length) throw invalidInput('ids', 'names a policy twice');
    if (wanted.length !== order.length) throw invalidInput('ids', `must list all ${order.length} policies of the tenant; missing: ${order.filter((p) => !wanted.includes(p)).map((p) => p.name).join(', ')}`);
    await renumber(db, tenant.id, wanted);
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'policy.reordered', target: tenant.id, detail: { order: wanted.map((p) => p.name).join(',') } });
  });
  return listPolicies(services, tenant);
}

// ---- Named locations ----

function locationView(row: NamedLocationsTable): NamedLocationView {
  return { id: row.id, name: row.name, ranges: JSON.parse(row.ranges) as string[], trusted: Number(row.trusted) === 1, created_at: iso(row.created_at) };
}

export async function listNamedLocations(services: Services, tenant: TenantRow): Promise<NamedLocationView[]> {
  return (await services.db.selectFrom('named_locations').selectAll().where('tenant_id', '=', tenant.id).orderBy('name').execute()).map(locationView);
}

export async function createNamedLocation(services: Services, principal: Principal, tenant: TenantRow, input: { name?: unknown; ranges?: unknown; trusted?: unknown }): Promise<NamedLocationView> {
  const name = parseLocationName(input.name);
  const ranges = parseLocationRanges(input.ranges);
  if (input.trusted !== undefined && typeof input.trusted !== 'boolean') throw invalidInput('trusted', 'must be true or false');
  const trusted = input.trusted === true;
  const row: NamedLocationsTable = { id: randomUUID(), tenant_id: tenant.id, name, ranges: JSON.stringify(ranges), trusted: trusted ? 1 : 0, created_at: services.clock().getTime() };
  await services.writes.run(async (db, record) => {
    await lockTenant(services, db, tenant.id);
    const existing = await db.selectFrom('named_locations').select('name').where('tenant_id', '=', tenant.id).execute();
    if (existing.length >= MAX_NAMED_LOCATIONS) throw new CountersignError('LIMIT_REACHED', `tenant ${tenant.name} already has ${MAX_NAMED_LOCATIONS} named locations, the most allowed`);
    const inserted = await db.insertInto('named_locations').values(row).onConflict((oc) => oc.columns(['tenant_id', 'name']).doNothing()).executeTakeFirst();
    if (inserted.numInsertedOrUpdatedRows !== 1n) throw new CountersignError('CONFLICT', `a named location "${name}" already exists in this tenant`);
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'named_location.created', target: row.id, detail: { name, ranges: ranges.join(','), trusted } });
  });
  return locationView(row);
}

/** Removes a named location that no policy names (409 naming the policies otherwise). */
export async function deleteNamedLocation(services: Services, principal: Principal, tenant: TenantRow, ref: string): Promise<void> {
  const row = await services.db.selectFrom('named_locations').selectAll().where('tenant_id', '=', tenant.id).where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)])).executeTakeFirst();
  if (row === undefined) throw notFound(`named location ${ref}`);
  await services.writes.run(async (db, record) => {
    await lockTenant(services, db, tenant.id);
    const users = (await db.selectFrom('policies').select(['name', 'conditions']).where('tenant_id', '=', tenant.id).execute()).filter((p) => {
      const locations = (JSON.parse(p.conditions) as PolicyConditions).locations;
      return [...(locations?.include ?? []), ...(locations?.exclude ?? [])].includes(row.name);
    });
    if (users.length > 0) throw new CountersignError('CONFLICT', `named location "${row.name}" is used by policy ${users.map((p) => `"${p.name}"`).join(', ')}; change those first`);
    const deleted = await db.deleteFrom('named_locations').where('id', '=', row.id).executeTakeFirst();
    if (deleted.numDeletedRows !== 1n) throw notFound(`named location ${ref}`);
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'named_location.deleted', target: row.id, detail: { name: row.name } });
  });
}

// ---- For sign-ins: preauth and every other Auth API entry point ----

/**
 * The tenant's `policy_count` as a column of a query that joins `tenants`: a sign-in reads it
 * with the user (or the user's methods), in the statement it runs anyway, so it is never older
 * than that statement and costs no query of its own.
 */
export function policyCountColumn() {
  return sql<number>`${sql.ref('tenants.policy_count')}`.as('policy_count');
}

/**
 * The user signing in, and the tenant's count of enabled policies read in the same statement
 * (none → the sign-in reads no policy); enabledPolicies is 0 when there is no such user.
 */
export async function findSignInUser(services: Services, tenant: TenantRow, username: string): Promise<{ user: UserRow | undefined; enabledPolicies: number }> {
  const found = await services.db
    .selectFrom('users')
    .innerJoin('tenants', 'tenants.id', 'users.tenant_id')
    .selectAll('users')
    .select(policyCountColumn())
    .where('users.tenant_id', '=', tenant.id)
    .where('users.username', '=', username)
    .executeTakeFirst();
  if (found === undefined) return { user: undefined, enabledPolicies: 0 };
  const { policy_count: count, ...user } = found;
  return { user, enabledPolicies: Number(count) };
}

/** Who signs in, from where, with what, as the policies look at it. */
export interface PolicySignIn {
  userId: string;
  username: string;
  applicationId: string | null;
  client: ClientType;
  ip: string | null;
  trustedIps: readonly string[];
  /**
   * The tenant's enabled policies as read with the user (`policyCountColumn`): 0 = nothing to
   * evaluate, no query. Absent (an administrator's preview): the policies are read regardless,
   * so the trace shows disabled ones too.
   */
  enabledPolicies?: number;
}

/**
 * The tenant's policies evaluated for one sign-in (read only). Nothing when the tenant has no
 * enabled policies (`enabledPolicies` 0); otherwise one query for the policies, one for the
 * user's groups and, when a policy names locations, one for the named locations.
 */
export async function policyEvaluation(services: Services, tenant: TenantRow, sign: PolicySignIn): Promise<PolicyEvaluation> {
  if (sign.enabledPolicies !== undefined && Number(sign.enabledPolicies) === 0) return NO_POLICIES;
  const rows = await services.db.selectFrom('policies').selectAll().where('tenant_id', '=', tenant.id).orderBy('position').orderBy('id').execute();
  if (rows.length === 0) return NO_POLICIES;
  const rules = rows.map(ruleOf);
  const active = rules.filter((r) => r.enabled);
  const needsLocations = active.some((r) => r.conditions.locations !== undefined);
  const [groups, locations] = await Promise.all([
    active.length === 0 ? [] : services.db.selectFrom('user_groups').select('name').where('user_id', '=', sign.userId).execute(),
    needsLocations ? services.db.selectFrom('named_locations').select(['name', 'ranges', 'trusted']).where('tenant_id', '=', tenant.id).execute() : [],
  ]);
  const named = locations.map((l) => ({ name: l.name, ranges: JSON.parse(l.ranges) as string[], trusted: Number(l.trusted) === 1 }));
  return evaluatePolicies(rules, {
    username: sign.username,
    groups: new Set(groups.map((g) => g.name)),
    applicationId: sign.applicationId,
    client: sign.client,
    ip: sign.ip,
    trustedRanges: [...sign.trustedIps, ...named.filter((l) => l.trusted).flatMap((l) => l.ranges)],
    locations: new Map(named.map((l) => [l.name, l.ranges])),
  });
}

/**
 * For `/v1/verify`, `/v1/challenges` and `/v1/app-passwords/verify`: whether the tenant's
 * policies refuse this sign-in (core/policies.ts policyRefusal), so an application that does not
 * ask preauth first — or asks and ignores the answer — is refused all the same. No query when
 * the tenant has no enabled policies.
 */
export async function signInRefusal(services: Services, tenant: TenantRow, sign: Omit<PolicySignIn, 'trustedIps' | 'enabledPolicies'> & { enabledPolicies: number }): Promise<PolicyRefusal | null> {
  if (Number(sign.enabledPolicies) === 0) return null;
  return policyRefusal(await policyEvaluation(services, tenant, { ...sign, trustedIps: tenantSettings(tenant).trusted_ips }));
}

/** An application of the tenant by id or name, for an evaluation (`application` field). */
export async function findApplicationRef(services: Services, tenant: TenantRow, ref: unknown): Promise<string | null> {
  if (ref === undefined || ref === null) return null;
  if (typeof ref !== 'string' || ref.trim() === '') throw invalidInput('application', 'must be an application name or id');
  const name = ref.trim();
  const app = await services.db
    .selectFrom('applications')
    .select('id')
    .where('tenant_id', '=', tenant.id)
    .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', name)]))
    .orderBy(sql`case when ${sql.ref('id')} = ${ref} then 0 else 1 end`)
    .executeTakeFirst();
  if (app === undefined) throw invalidInput('application', `there is no application "${ref}" in tenant ${tenant.name}`);
  return app.id;
}

/**
 * A text, call or push challenge about to be approved, looked at again: a policy added (or
 * enabled) since the challenge started may refuse the sign-in now. When it does, the challenge
 * ends `denied` with the policy's reason (not counted as a failed second factor) and the refusal
 * is audited; the caller reports `denied`. True when the policy refused it.
 */
export async function refusedByPolicyNow(services: Services, tenant: TenantRow, row: Pick<ChallengeRow, 'id' | 'user_id' | 'application_id' | 'ip' | 'method_id'>): Promise<boolean> {
  const user = await services.db
    .selectFrom('users')
    .innerJoin('tenants', 'tenants.id', 'users.tenant_id')
    .select(['users.username', policyCountColumn()])
    .where('users.id', '=', row.user_id)
    .executeTakeFirst();
  if (user === undefined) return false;
  const refusal = await signInRefusal(services, tenant, { enabledPolicies: Number(user.policy_count), userId: row.user_id, username: user.username, applicationId: row.application_id, client: 'browser', ip: row.ip });
  if (refusal === null) return false;
  if (await decideChallenge(services, row.id, 'denied', refusal.reason)) {
    await services.audit({ tenantId: tenant.id, actor: 'system', action: 'verification.denied', target: row.user_id, detail: { challenge: row.id, method: row.method_id, reason: refusal.reason, policy: refusal.policy } });
  }
  return true;
}
