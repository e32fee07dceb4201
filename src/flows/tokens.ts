import { randomUUID } from 'node:crypto';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import { findHotpResync } from '../core/otp/match-otp.js';
import { detectTokenFormat } from '../methods/oath/detect-token-format.js';
import { parseAzureTokenCsv } from '../methods/oath/parse-azure-csv.js';
import { parsePskc, type PskcKeys } from '../methods/oath/parse-pskc.js';
import type { ImportedToken, RefusedEntry } from '../methods/oath/token-file.js';
import { MAX_CODE_METHODS, CODE_METHOD_TYPES } from '../methods/otp-code.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { MethodRow, TenantRow } from '../store/schema.js';
import { ensureDefaultMethod, promoteEnabledUser, promoteEnabledUsers } from './methods.js';
import { validateCode } from './verify-code.js';

/**
 * OATH hardware tokens: import from the Azure CSV or PSKC (RFC 6030), the tenant's inventory
 * of unassigned tokens, assignment, and HOTP resynchronisation. A file that cannot be read
 * changes nothing; from a readable file, every good token is stored in one transaction and every
 * refused line or key package is reported with its position and reason.
 */
export interface TokenView {
  id: string;
  serial: string | null;
  username: string | null;
  otp_kind: 'hotp' | 'totp';
  algorithm: string;
  digits: number;
  period: number | null;
  manufacturer: string | null;
  model: string | null;
  created_at: string;
}

export interface TokenImportReport {
  format: 'csv' | 'pskc';
  imported: { position: string; id: string; serial: string; username: string | null }[];
  refused: RefusedEntry[];
}

/** Resync looks this far ahead of the counter for two consecutive codes (RFC 4226 §7.4). */
export const RESYNC_RANGE = 1000;

function tokenView(row: MethodRow, username: string | null): TokenView {
  return {
    id: row.id,
    serial: row.serial,
    username,
    otp_kind: row.otp_kind,
    algorithm: row.algorithm,
    digits: row.digits,
    period: row.period,
    manufacturer: row.manufacturer,
    model: row.model,
    created_at: new Date(Number(row.created_at)).toISOString(),
  };
}

/** PSKC UserId may be a distinguished name (`UID=jsmith,DC=example,DC=net`): its first value is tried too. */
function usernameCandidates(value: string): string[] {
  const lower = value.trim().toLowerCase();
  const rdn = /^[a-z]+=([^,]+),/.exec(lower)?.[1];
  return rdn === undefined ? [lower] : [lower, rdn];
}

export async function importTokens(services: Services, principal: Principal, tenant: TenantRow, text: string, keys: PskcKeys): Promise<TokenImportReport> {
  const format = detectTokenFormat(text);
  const parsed = format === 'pskc' ? parsePskc(text, keys) : parseAzureTokenCsv(text);
  const refused = [...parsed.refused];
  const db = services.db;
  const now = services.clock().getTime();

  const serials = parsed.tokens.map((t) => t.serial);
  const taken = new Set<string>();
  for (let i = 0; i < serials.length; i += 500) {
    const rows = await db.selectFrom('methods').select('serial').where('tenant_id', '=', tenant.id).where('serial', 'in', serials.slice(i, i + 500)).execute();
    for (const r of rows) if (r.serial !== null) taken.add(r.serial);
  }
  const wantedNames = [...new Set(parsed.tokens.flatMap((t) => (t.username === null ? [] : usernameCandidates(t.username))))];
  const users = new Map<string, { id: string; username: string; codeMethods: number }>();
  for (let i = 0; i < wantedNames.length; i += 500) {
    const rows = await db.selectFrom('users').select(['id', 'username']).where('tenant_id', '=', tenant.id).where('username', 'in', wantedNames.slice(i, i + 500)).execute();
    for (const r of rows) users.set(r.username, { ...r, codeMethods: 0 });
  }
  const userIds = [...users.values()].map((u) => u.id);
  const withDefault = new Set<string>();
  for (let i = 0; i < userIds.length; i += 500) {
    const chunk = userIds.slice(i, i + 500);
    const counts = await db
      .selectFrom('methods')
      .select(['user_id', (eb) => eb.fn.countAll<number>().as('count'), (eb) => eb.fn.max('is_default').as('has_default')])
      .where('user_id', 'in', chunk)
      .where('type', 'in', [...CODE_METHOD_TYPES])
      .groupBy('user_id')
      .execute();
    const byId = new Map(counts.map((c) => [c.user_id, c]));
    for (const user of users.values()) {
      const c = byId.get(user.id);
      if (c === undefined) continue;
      user.codeMethods = Number(c.count);
      if (Number(c.has_default) === 1) withDefault.add(user.id);
    }
  }
  const accepted: { token: ImportedToken; userId: string | null; username: string | null }[] = [];
  for (const token of parsed.tokens) {
    if (taken.has(token.serial)) {
      refused.push({ position: token.position, reason: `serial number ${token.serial} is already in this tenant` });
      continue;
    }
    let user: { id: string; username: string; codeMethods: number } | undefined;
    if (token.username !== null) {
      user = usernameCandidates(token.username).map((n) => users.get(n)).find((u) => u !== undefined);
      if (user === undefined) {
        refused.push({ position: token.position, reason: `user ${token.username} is not in tenant ${tenant.name}` });
        continue;
      }
      if (user.codeMethods >= MAX_CODE_METHODS) {
        refused.push({ position: token.position, reason: `user ${user.username} already has ${MAX_CODE_METHODS} code methods` });
        continue;
      }
      user.codeMethods++;
    }
    accepted.push({ token, userId: user?.id ?? null, username: user?.username ?? null });
  }

  const rows: MethodRow[] = [];
  for (const { token, userId } of accepted) {
    const id = randomUUID();
    // The first method a user gets becomes the default.
    const makeDefault = userId !== null && !withDefault.has(userId);
    if (userId !== null) withDefault.add(userId);
    const { sealed, keyId } = await services.secrets.seal(token.secret, id);
    token.secret.fill(0);
    rows.push({
      id,
      tenant_id: tenant.id,
      user_id: userId,
      type: 'oath',
      // A token assigned in the file is usable at once; the physical token is the proof.
      status: 'active',
      label: [token.manufacturer, token.model].filter(Boolean).join(' ') || 'Hardware token',
      is_default: makeDefault ? 1 : 0,
      otp_kind: token.kind,
      algorithm: token.algorithm,
      digits: token.digits,
      period: token.period,
      counter: token.kind === 'hotp' ? token.counter : 0,
      secret: sealed,
      key_id: keyId,
      serial: token.serial,
      manufacturer: token.manufacturer,
      model: token.model,
      created_at: now,
      activated_at: userId === null ? null : now,
      last_used_at: null,
    });
  }
  try {
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += 200) await trx.insertInto('methods').values(rows.slice(i, i + 200)).execute();
    });
  } catch (error) {
    // The serial check above ran outside the transaction: a concurrent import of the same serial
    // number is caught here by the (tenant_id, serial) constraint, and the whole file rolled back.
    if (isUniqueViolation(error)) {
      throw new CountersignError('CONFLICT', 'another import stored some of these serial numbers at the same time; nothing from this file was stored — send it again to see which lines are refused');
    }
    throw error;
  }
  const assigned = [...new Set(accepted.flatMap((a) => (a.userId === null ? [] : [a.userId])))];
  const promoted = await promoteEnabledUsers(services, tenant, assigned);
  await services.audit({
    tenantId: tenant.id,
    actor: actorOf(principal),
    action: 'tokens.imported',
    target: tenant.id,
    detail: { format, imported: rows.length, refused: refused.length, users_promoted: promoted },
  });
  return {
    format,
    imported: accepted.map((a, i) => ({ position: a.token.position, id: rows[i]?.id ?? '', serial: a.token.serial, username: a.username })),
    refused,
  };
}

/** PostgreSQL unique_violation (23505) or SQLite SQLITE_CONSTRAINT_UNIQUE. */
function isUniqueViolation(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

export async function findToken(services: Services, tenant: TenantRow, ref: string): Promise<MethodRow> {
  const row = await services.db
    .selectFrom('methods')
    .selectAll()
    .where('tenant_id', '=', tenant.id)
    .where('type', '=', 'oath')
    .where((eb) => eb.or([eb('id', '=', ref), eb('serial', '=', ref)]))
    .executeTakeFirst();
  if (row === undefined) throw notFound(`token ${ref}`);
  return row;
}

export async function listTokens(services: Services, tenant: TenantRow, options: { unassigned?: boolean | undefined }): Promise<TokenView[]> {
  let query = services.db
    .selectFrom('methods')
    .leftJoin('users', 'users.id', 'methods.user_id')
    .selectAll('methods')
    .select('users.username')
    .where('methods.tenant_id', '=', tenant.id)
    .where('methods.type', '=', 'oath')
    .orderBy('methods.serial');
  if (options.unassigned === true) query = query.where('methods.user_id', 'is', null);
  const rows = await query.execute();
  return rows.map((r) => tokenView(r, r.username));
}

export async function assignToken(services: Services, principal: Principal, tenant: TenantRow, ref: string, usernameInput: unknown): Promise<TokenView> {
  if (typeof usernameInput !== 'string' || usernameInput.trim() === '') throw invalidInput('username', 'is required');
  const token = await findToken(services, tenant, ref);
  const user = await services.db.selectFrom('users').selectAll().where('tenant_id', '=', tenant.id).where('username', '=', usernameInput.trim().toLowerCase()).executeTakeFirst();
  if (user === undefined) throw notFound(`user ${usernameInput}`);
  if (token.user_id !== null) throw new CountersignError('CONFLICT', `token ${token.serial ?? token.id} is already assigned; unassign it first`);
  const { count } = await services.db
    .selectFrom('methods')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('user_id', '=', user.id)
    .where('type', 'in', [...CODE_METHOD_TYPES])
    .executeTakeFirstOrThrow();
  if (Number(count) >= MAX_CODE_METHODS) throw new CountersignError('LIMIT_REACHED', `user ${user.username} already has ${MAX_CODE_METHODS} code methods`);
  // Atomic: two admins assigning the same token at once cannot both succeed.
  const result = await services.db
    .updateTable('methods')
    .set({ user_id: user.id, activated_at: services.clock().getTime() })
    .where('id', '=', token.id)
    .where('user_id', 'is', null)
    .executeTakeFirst();
  if (result.numUpdatedRows !== 1n) throw new CountersignError('CONFLICT', 'the token was assigned by another request');
  await ensureDefaultMethod(services, user.id);
  await promoteEnabledUser(services, tenant, user);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'token.assigned', target: user.id, detail: { token: token.id, serial: token.serial } });
  return tokenView({ ...token, user_id: user.id }, user.username);
}

export async function unassignToken(services: Services, principal: Principal, tenant: TenantRow, ref: string): Promise<TokenView> {
  const token = await findToken(services, tenant, ref);
  if (token.user_id === null) throw new CountersignError('CONFLICT', 'the token is not assigned');
  await services.db.updateTable('methods').set({ user_id: null, is_default: 0 }).where('id', '=', token.id).execute();
  // The user keeps a default method if they have another active one.
  await ensureDefaultMethod(services, token.user_id);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'token.unassigned', target: token.user_id, detail: { token: token.id, serial: token.serial } });
  return tokenView({ ...token, user_id: null }, null);
}

export async function deleteToken(services: Services, principal: Principal, tenant: TenantRow, ref: string): Promise<void> {
  const token = await findToken(services, tenant, ref);
  await services.db.deleteFrom('methods').where('id', '=', token.id).execute();
  if (token.user_id !== null) await ensureDefaultMethod(services, token.user_id);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'token.deleted', target: token.user_id, detail: { token: token.id, serial: token.serial } });
}

/** HOTP resync (RFC 4226 §7.4) with two consecutive codes; the counter moves past the second. */
export async function resyncToken(services: Services, principal: Principal, tenant: TenantRow, ref: string, input: { code1?: unknown; code2?: unknown }): Promise<TokenView> {
  const first = validateCode(input.code1);
  const second = validateCode(input.code2);
  const token = await findToken(services, tenant, ref);
  if (token.otp_kind !== 'hotp') throw new CountersignError('CONFLICT', 'resync applies to HOTP tokens; TOTP tokens follow the clock');
  const seed = await services.secrets.open(token.secret, token.key_id, token.id);
  const found = findHotpResync(seed, { algorithm: token.algorithm, digits: token.digits }, first, second, Number(token.counter), RESYNC_RANGE);
  seed.fill(0);
  if (found === undefined) {
    await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'token.resync_failed', target: token.user_id, detail: { token: token.id } });
    throw new CountersignError('INVALID_INPUT', `code2: the two codes are not consecutive codes of token ${token.serial ?? token.id} within ${RESYNC_RANGE} counters`);
  }
  // Only ever forward, and atomically: the second code is consumed like a sign-in.
  const result = await services.db.updateTable('methods').set({ counter: found + 1 }).where('id', '=', token.id).where('counter', '<=', found).executeTakeFirst();
  if (result.numUpdatedRows !== 1n) throw new CountersignError('CONFLICT', 'these codes were already used');
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'token.resynced', target: token.user_id, detail: { token: token.id } });
  const username = token.user_id === null ? null : ((await services.db.selectFrom('users').select('username').where('id', '=', token.user_id).executeTakeFirst())?.username ?? null);
  return tokenView(token, username);
}

/**
 * An encrypted PSKC file imported without its key: the parser says which key is missing, the
 * transport (which knows where it takes keys from) adds where to give it.
 */
export function withKeyHint(error: unknown, pskHint: string, passwordHint: string): unknown {
  if (!(error instanceof CountersignError) || error.code !== 'INVALID_FILE') return error;
  if (error.message.endsWith('a pre-shared key is required')) return new CountersignError('INVALID_FILE', `${error.message}: ${pskHint}`);
  if (error.message.endsWith('a password is required')) return new CountersignError('INVALID_FILE', `${error.message}: ${passwordHint}`);
  return error;
}
