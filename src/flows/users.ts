import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import type { TenantSettings } from '../core/settings.js';
import {
  normalizeDisplayName,
  normalizeEmail,
  normalizeGroups,
  normalizePhone,
  normalizeUsername,
  parseMfaState,
  parsePhoneType,
  type MfaStateName,
  type PhoneTypeName,
} from '../core/user-fields.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { Database, TenantRow, UserRow } from '../store/schema.js';
import { denyOpenChallenges } from './challenge-state.js';
import { tenantSettings } from './tenants.js';
import { checkSeats } from './usage.js';

/** The administrator's view of a user (the admin API shows phone numbers in full). */
export interface UserView {
  id: string;
  username: string;
  display_name: string | null;
  email: string | null;
  /** `verified`: proven by a code, or pre-registered by an administrator; only verified numbers take texts and calls. */
  phones: { type: PhoneTypeName; number: string; verified: boolean }[];
  groups: string[];
  mfa_state: MfaStateName;
  status: 'active' | 'blocked' | 'locked_out';
  blocked_reason: string | null;
  blocked_until: string | null;
  locked_until: string | null;
  failed_count: number;
  created_at: string;
  updated_at: string;
}

export interface UserInput {
  username?: unknown;
  display_name?: unknown;
  email?: unknown;
  phone?: unknown;
  phones?: unknown;
  groups?: unknown;
  mfa_state?: unknown;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());

export async function viewUser(db: Kysely<Database>, row: UserRow, nowMs: number): Promise<UserView> {
  const [view] = await viewUsers(db, [row], nowMs);
  if (view === undefined) throw notFound(`user ${row.id}`);
  return view;
}

/** Views of many users with their phones and groups read in two queries, not two per user. */
export async function viewUsers(db: Kysely<Database>, rows: readonly UserRow[], nowMs: number): Promise<UserView[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const [phoneRows, groupRows] = await Promise.all([
    db.selectFrom('user_phones').select(['user_id', 'type', 'number', 'verified_at']).where('user_id', 'in', ids).orderBy('type').execute(),
    db.selectFrom('user_groups').select(['user_id', 'name']).where('user_id', 'in', ids).orderBy('name').execute(),
  ]);
  const phones = new Map<string, UserView['phones']>();
  for (const p of phoneRows) phones.set(p.user_id, [...(phones.get(p.user_id) ?? []), { type: p.type, number: p.number, verified: p.verified_at !== null }]);
  const groups = new Map<string, string[]>();
  for (const g of groupRows) groups.set(g.user_id, [...(groups.get(g.user_id) ?? []), g.name]);
  return rows.map((row) => viewOf(row, phones.get(row.id) ?? [], groups.get(row.id) ?? [], nowMs));
}

function viewOf(row: UserRow, phones: UserView['phones'], groups: string[], nowMs: number): UserView {
  const locked = row.locked_until !== null && Number(row.locked_until) > nowMs;
  return {
    id: row.id,
    username: row.username,
    display_name: row.display_name,
    email: row.email,
    phones,
    groups,
    mfa_state: row.mfa_state,
    status: row.status === 'blocked' ? 'blocked' : locked ? 'locked_out' : 'active',
    blocked_reason: row.blocked_reason,
    blocked_until: iso(row.blocked_until),
    locked_until: locked ? iso(row.locked_until) : null,
    failed_count: Number(row.failed_count),
    created_at: iso(row.created_at) ?? '',
    updated_at: iso(row.updated_at) ?? '',
  };
}

export async function findUser(db: Kysely<Database>, tenantId: string, ref: string): Promise<UserRow> {
  const username = ref.trim().toLowerCase();
  const row = await db
    .selectFrom('users')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where((eb) => eb.or([eb('username', '=', username), eb('id', '=', ref)]))
    // A username may look like another user's id: the id, which never changes, wins.
    .orderBy(sql`case when ${sql.ref('id')} = ${ref} then 0 else 1 end`)
    .executeTakeFirst();
  if (row === undefined) throw notFound(`user ${ref}`);
  return row;
}

function parsePhones(input: UserInput, settings: TenantSettings): { type: PhoneTypeName; number: string }[] | undefined {
  if (input.phones !== undefined) {
    if (!Array.isArray(input.phones)) throw invalidInput('phones', 'must be a list of {type, number}');
    const phones = input.phones.map((p: unknown, i) => {
      const entry = (p ?? {}) as { type?: unknown; number?: unknown };
      return { type: parsePhoneType(entry.type ?? 'mobile', `phones[${i}].type`), number: normalizePhone(entry.number, settings.default_country, `phones[${i}].number`) };
    });
    if (new Set(phones.map((p) => p.type)).size !== phones.length) throw invalidInput('phones', 'holds two numbers of the same type');
    return phones;
  }
  if (input.phone !== undefined && input.phone !== null && input.phone !== '') {
    return [{ type: 'mobile', number: normalizePhone(input.phone, settings.default_country) }];
  }
  return undefined;
}

/** Numbers an administrator enters are pre-registered: verified from the start (Azure could not do this). */
async function replacePhones(trx: Transaction<Database>, tenantId: string, userId: string, phones: { type: PhoneTypeName; number: string }[], now: number): Promise<void> {
  await trx.deleteFrom('user_phones').where('user_id', '=', userId).execute();
  if (phones.length > 0) {
    await trx.insertInto('user_phones').values(phones.map((p) => ({ id: randomUUID(), tenant_id: tenantId, user_id: userId, type: p.type, number: p.number, created_at: now, verified_at: now }))).execute();
  }
}

async function replaceGroups(trx: Transaction<Database>, tenantId: string, userId: string, groups: string[]): Promise<void> {
  await trx.deleteFrom('user_groups').where('user_id', '=', userId).execute();
  if (groups.length > 0) await trx.insertInto('user_groups').values(groups.map((name) => ({ tenant_id: tenantId, user_id: userId, name }))).execute();
}

export async function createUser(services: Services, principal: Principal, tenant: TenantRow, input: UserInput): Promise<UserView> {
  const settings = tenantSettings(tenant);
  const username = normalizeUsername(input.username);
  const row: UserRow = {
    id: randomUUID(),
    tenant_id: tenant.id,
    pin_hash: null,
    username,
    display_name: normalizeDisplayName(input.display_name),
    email: normalizeEmail(input.email),
    mfa_state: input.mfa_state === undefined ? 'disabled' : parseMfaState(input.mfa_state),
    status: 'active',
    blocked_reason: null,
    blocked_until: null,
    failed_count: 0,
    failed_since: null,
    locked_until: null,
    created_at: services.clock().getTime(),
    updated_at: services.clock().getTime(),
  };
  const phones = parsePhones(input, settings) ?? [];
  const groups = input.groups === undefined ? [] : normalizeGroups(input.groups);
  const taken = await services.db.selectFrom('users').select('id').where('tenant_id', '=', tenant.id).where('username', '=', username).executeTakeFirst();
  if (taken !== undefined) throw new CountersignError('CONFLICT', `user ${username} already exists`);
  await services.db.transaction().execute(async (trx) => {
    // The check above gives the usual answer; this one closes the race between two concurrent
    // creates of one username (the unique key decides, and the loser gets 409, not a 500).
    const inserted = await trx.insertInto('users').values(row).onConflict((oc) => oc.columns(['tenant_id', 'username']).doNothing()).executeTakeFirst();
    if (inserted.numInsertedOrUpdatedRows !== 1n) throw new CountersignError('CONFLICT', `user ${username} already exists`);
    await replacePhones(trx, tenant.id, row.id, phones, row.created_at);
    await replaceGroups(trx, tenant.id, row.id, groups);
  });
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'user.created', target: row.id, detail: { username, mfa_state: row.mfa_state } });
  await checkSeats(services, tenant.id);
  return viewUser(services.db, row, services.clock().getTime());
}

export async function updateUser(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, input: UserInput): Promise<UserView> {
  if (input.username !== undefined) throw invalidInput('username', 'cannot be changed; delete the user and create it again');
  const settings = tenantSettings(tenant);
  const change: Partial<UserRow> = { updated_at: services.clock().getTime() };
  if (input.display_name !== undefined) change.display_name = normalizeDisplayName(input.display_name);
  if (input.email !== undefined) change.email = normalizeEmail(input.email);
  if (input.mfa_state !== undefined) change.mfa_state = parseMfaState(input.mfa_state);
  const phones = parsePhones(input, settings);
  const groups = input.groups === undefined ? undefined : normalizeGroups(input.groups);
  await services.db.transaction().execute(async (trx) => {
    await trx.updateTable('users').set(change).where('id', '=', user.id).execute();
    if (phones !== undefined) await replacePhones(trx, tenant.id, user.id, phones, services.clock().getTime());
    if (groups !== undefined) await replaceGroups(trx, tenant.id, user.id, groups);
  });
  const fields = Object.keys(input).filter((k) => (input as Record<string, unknown>)[k] !== undefined);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'user.updated', target: user.id, detail: { fields: fields.join(',') } });
  if (change.mfa_state !== undefined) await checkSeats(services, tenant.id);
  return viewUser(services.db, await findUser(services.db, tenant.id, user.id), services.clock().getTime());
}

export async function setUserState(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, state: unknown): Promise<UserView> {
  const mfaState = parseMfaState(state, 'state');
  const now = services.clock().getTime();
  await services.db.updateTable('users').set({ mfa_state: mfaState, updated_at: now }).where('id', '=', user.id).execute();
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'user.state_changed', target: user.id, detail: { from: user.mfa_state, to: mfaState } });
  await checkSeats(services, tenant.id);
  return viewUser(services.db, { ...user, mfa_state: mfaState, updated_at: now }, now);
}

export async function deleteUser(services: Services, principal: Principal, tenant: TenantRow, user: UserRow): Promise<void> {
  await services.db.deleteFrom('users').where('id', '=', user.id).execute();
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'user.deleted', target: user.id, detail: { username: user.username } });
  await checkSeats(services, tenant.id);
}

/** Clears a lockout and the failure counter (Azure: unblock after lockout). */
/** An administrator's block: every sign-in is denied until unblocked (flows/user-blocks.ts: unblockUser). */
export async function blockUser(services: Services, principal: Principal, tenant: TenantRow, user: UserRow): Promise<UserView> {
  await services.db.updateTable('users').set({ status: 'blocked', blocked_reason: 'admin', blocked_until: null }).where('id', '=', user.id).execute();
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'user.blocked', target: user.id });
  await denyOpenChallenges(services, user.id, 'blocked');
  return viewUser(services.db, await findUser(services.db, tenant.id, user.id), services.clock().getTime());
}

export interface UserPage {
  users: UserView[];
  /** Pass as `cursor` to get the next page; null on the last page. */
  next_cursor: string | null;
}

/** Lists users by username, a page at a time (keyset paging), optionally filtered by a search term. */
export async function listUsers(services: Services, tenant: TenantRow, options: { search?: string | undefined; cursor?: string | undefined; limit: number }): Promise<UserPage> {
  let query = services.db.selectFrom('users').selectAll().where('tenant_id', '=', tenant.id).orderBy('username').limit(options.limit + 1);
  if (options.cursor !== undefined && options.cursor !== '') query = query.where('username', '>', options.cursor);
  if (options.search !== undefined && options.search !== '') {
    const pattern = `%${options.search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    // ESCAPE makes `\%`, `\_` and `\\` literal on both SQLite and PostgreSQL.
    const like = (column: 'username' | 'display_name' | 'email') => sql<boolean>`lower(${sql.ref(column)}) like ${pattern} escape '\\'`;
    query = query.where((eb) => eb.or([like('username'), like('display_name'), like('email')]));
  }
  const rows = await query.execute();
  const page = rows.slice(0, options.limit);
  const now = services.clock().getTime();
  return {
    users: await viewUsers(services.db, page, now),
    next_cursor: rows.length > options.limit ? (page.at(-1)?.username ?? null) : null,
  };
}
