import { randomUUID } from 'node:crypto';
import { readCsv } from '../core/csv.js';
import { CountersignError } from '../core/errors.js';
import { normalizeDisplayName, normalizeEmail, normalizePhone, normalizeUsername, parseMfaState, type MfaStateName } from '../core/user-fields.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow, UserRow } from '../store/schema.js';
import { writeTransaction } from '../store/write-transaction.js';
import { tenantSettings } from './tenants.js';
import { checkSeats } from './usage.js';

/**
 * Bulk operations from CSV: importing users (`username,display name,email,phone,state`) and
 * setting MFA states (`username,state`). Good lines are written in one transaction, in chunks
 * of a few hundred rows per statement, so 100,000 users take seconds; every refused line is
 * reported with its number and reason. Empty fields leave an existing user's value as it is.
 */
export interface RefusedLine {
  line: number;
  reason: string;
}

export interface ImportReport {
  created: number;
  updated: number;
  refused: RefusedLine[];
}

interface ImportLine {
  line: number;
  username: string;
  displayName: string | null;
  email: string | null;
  phone: string | null;
  state: MfaStateName | null;
}

const CHUNK = 500;

function reasonOf(error: unknown): string {
  return error instanceof CountersignError ? error.message : String(error);
}

function parseUserLines(text: string, defaultCountry: string, refused: RefusedLine[]): ImportLine[] {
  const { rows } = readCsv(text, { headerFirstField: 'username' });
  const seen = new Map<string, number>();
  const lines: ImportLine[] = [];
  for (const { line, fields } of rows) {
    try {
      if (fields.length > 5) throw new CountersignError('INVALID_INPUT', `has ${fields.length} fields; expected username,display name,email,phone,state`);
      const [username, displayName, email, phone, state] = fields;
      const entry: ImportLine = {
        line,
        username: normalizeUsername(username),
        displayName: normalizeDisplayName(displayName, 'display name'),
        email: normalizeEmail(email),
        phone: phone === undefined || phone === '' ? null : normalizePhone(phone, defaultCountry),
        state: state === undefined || state === '' ? null : parseMfaState(state, 'state'),
      };
      const earlier = seen.get(entry.username);
      if (earlier !== undefined) throw new CountersignError('INVALID_INPUT', `username: ${entry.username} already appears on line ${earlier}`);
      seen.set(entry.username, line);
      lines.push(entry);
    } catch (error) {
      refused.push({ line, reason: reasonOf(error) });
    }
  }
  return lines;
}

export async function importUsers(services: Services, principal: Principal, tenant: TenantRow, text: string): Promise<ImportReport> {
  const refused: RefusedLine[] = [];
  const lines = parseUserLines(text, tenantSettings(tenant).default_country, refused);
  const now = services.clock().getTime();
  let created = 0;
  const stateChanges: { id: string; from: string | null; to: string }[] = [];
  await writeTransaction(services.db, services.store.dialect, async (trx) => {
    for (let start = 0; start < lines.length; start += CHUNK) {
      const chunk = lines.slice(start, start + CHUNK);
      const existing = new Map(
        (await trx.selectFrom('users').selectAll().where('tenant_id', '=', tenant.id).where('username', 'in', chunk.map((l) => l.username)).execute()).map((u) => [u.username, u]),
      );
      const rows: UserRow[] = chunk.map((l) => {
        const old = existing.get(l.username);
        return {
          id: old?.id ?? randomUUID(),
          tenant_id: tenant.id,
          pin_hash: old?.pin_hash ?? null,
          username: l.username,
          display_name: l.displayName ?? old?.display_name ?? null,
          email: l.email ?? old?.email ?? null,
          mfa_state: l.state ?? old?.mfa_state ?? 'disabled',
          status: old?.status ?? 'active',
          blocked_reason: old?.blocked_reason ?? null,
          blocked_until: old?.blocked_until ?? null,
          failed_count: old?.failed_count ?? 0,
          failed_since: old?.failed_since ?? null,
          locked_until: old?.locked_until ?? null,
          created_at: old?.created_at ?? now,
          updated_at: now,
        };
      });
      created += rows.length - existing.size;
      for (const row of rows) {
        const before = existing.get(row.username)?.mfa_state ?? null;
        if (before !== row.mfa_state && !(before === null && row.mfa_state === 'disabled')) stateChanges.push({ id: row.id, from: before, to: row.mfa_state });
      }
      // The ids come back from the upsert: a user created by a concurrent request keeps its id.
      const stored = await trx
        .insertInto('users')
        .values(rows)
        .onConflict((oc) =>
          oc.columns(['tenant_id', 'username']).doUpdateSet((eb) => ({
            display_name: eb.ref('excluded.display_name'),
            email: eb.ref('excluded.email'),
            mfa_state: eb.ref('excluded.mfa_state'),
            updated_at: eb.ref('excluded.updated_at'),
          })),
        )
        .returning(['id', 'username'])
        .execute();
      const ids = new Map(stored.map((u) => [u.username, u.id]));
      const withPhone = chunk.flatMap((l) => (l.phone === null ? [] : [{ userId: ids.get(l.username) ?? '', number: l.phone }]));
      if (withPhone.length > 0) {
        await trx.deleteFrom('user_phones').where('type', '=', 'mobile').where('user_id', 'in', withPhone.map((p) => p.userId)).execute();
        await trx
          .insertInto('user_phones')
          .values(withPhone.map((p) => ({ id: randomUUID(), tenant_id: tenant.id, user_id: p.userId, type: 'mobile' as const, number: p.number, created_at: now, verified_at: now })))
          .execute();
      }
    }
  });
  const report = { created, updated: lines.length - created, refused };
  // Each MFA state an import sets or changes is recorded per user (an import must not be a way to
  // turn MFA off unseen); the group-commit audit writer stores them in one transaction.
  await Promise.all(
    stateChanges.map((c) => services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'user.state_changed', target: c.id, detail: { from: c.from, to: c.to, via: 'import' } })),
  );
  await services.audit({
    tenantId: tenant.id,
    actor: actorOf(principal),
    action: 'users.imported',
    target: tenant.id,
    detail: { created: report.created, updated: report.updated, refused: refused.length },
  });
  await checkSeats(services, tenant.id);
  return report;
}

export interface StateReport {
  changed: number;
  refused: RefusedLine[];
}

/** Sets MFA states from a CSV of `username,state` (the bulk form of Set-MsolUser). */
export async function bulkSetStates(services: Services, principal: Principal, tenant: TenantRow, text: string): Promise<StateReport> {
  const { rows } = readCsv(text, { headerFirstField: 'username' });
  const refused: RefusedLine[] = [];
  const wanted: { line: number; username: string; state: MfaStateName }[] = [];
  // A username given twice is refused (as in importUsers): otherwise which state wins would
  // depend on the order of the updates below, not on the file.
  const seen = new Map<string, number>();
  for (const { line, fields } of rows) {
    try {
      if (fields.length !== 2) throw new CountersignError('INVALID_INPUT', `has ${fields.length} fields; expected username,state`);
      const entry = { line, username: normalizeUsername(fields[0]), state: parseMfaState(fields[1], 'state') };
      const earlier = seen.get(entry.username);
      if (earlier !== undefined) throw new CountersignError('INVALID_INPUT', `username: ${entry.username} already appears on line ${earlier}`);
      seen.set(entry.username, line);
      wanted.push(entry);
    } catch (error) {
      refused.push({ line, reason: reasonOf(error) });
    }
  }
  let changed = 0;
  const now = services.clock().getTime();
  const stateChanges: { id: string; from: string; to: string }[] = [];
  await writeTransaction(services.db, services.store.dialect, async (trx) => {
    for (let start = 0; start < wanted.length; start += CHUNK) {
      const chunk = wanted.slice(start, start + CHUNK);
      const current = new Map(
        (await trx.selectFrom('users').select(['id', 'username', 'mfa_state']).where('tenant_id', '=', tenant.id).where('username', 'in', chunk.map((w) => w.username)).execute()).map((u) => [u.username, u]),
      );
      const known = new Set(current.keys());
      for (const w of chunk) {
        const user = current.get(w.username);
        if (user !== undefined && user.mfa_state !== w.state) stateChanges.push({ id: user.id, from: user.mfa_state, to: w.state });
      }
      for (const state of ['disabled', 'enabled', 'enforced'] as const) {
        const names = chunk.filter((w) => w.state === state && known.has(w.username)).map((w) => w.username);
        if (names.length === 0) continue;
        await trx.updateTable('users').set({ mfa_state: state, updated_at: now }).where('tenant_id', '=', tenant.id).where('username', 'in', names).execute();
        changed += names.length;
      }
      for (const w of chunk) if (!known.has(w.username)) refused.push({ line: w.line, reason: `username: ${w.username} not found` });
    }
  });
  refused.sort((a, b) => a.line - b.line);
  await Promise.all(
    stateChanges.map((c) => services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'user.state_changed', target: c.id, detail: { from: c.from, to: c.to, via: 'bulk' } })),
  );
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'users.states_set', target: tenant.id, detail: { changed, refused: refused.length } });
  await checkSeats(services, tenant.id);
  return { changed, refused };
}
