import { sql } from 'kysely';
import type { Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';
import type { SignInResult } from '../store/schema-usage.js';
import { compareKeys, iso, isoDay, pageOf, parseReportQuery, type ReportInput, type ReportPage, type ReportQuery } from './report-query.js';
import { DAY_MS, syncSignIns } from './sign-ins.js';

/**
 * The administrators' reports (issue 5 item 11; Azure MFA Server's reports): sign-ins and their
 * daily summary, fraud alerts, blocked users, bypasses, app-password use and telephony usage.
 * Each answers one page of rows (`limit`, stable `cursor`), filtered as parseReportQuery checks;
 * `columns` names the fields of a row in order, which is also the CSV header. Every query is
 * limited to the caller's tenant. No report carries a code, secret, password, key or token: rows
 * are built field by field from columns that never hold one.
 */
export interface Report<T> extends ReportPage<T> {
  columns: readonly (keyof T & string)[];
}

export const SIGN_IN_RESULTS = ['approved', 'denied', 'fraud'] as const;
export const SIGN_IN_METHODS = ['none', 'totp', 'oath', 'sms', 'voice', 'push', 'webauthn', 'code', 'app_password'] as const;

export interface SignInView {
  at: string;
  username: string | null;
  application: string | null;
  kind: string;
  method: string;
  result: string;
  reason: string | null;
  ip: string | null;
  challenge_id: string | null;
}
const SIGN_IN_COLUMNS = ['at', 'username', 'application', 'kind', 'method', 'result', 'reason', 'ip', 'challenge_id'] as const;

/** Sign-ins, newest first. */
export async function signInReport(services: Services, tenant: TenantRow, input: ReportInput): Promise<Report<SignInView>> {
  const q = await parseReportQuery(services, tenant, 'sign-ins', input, { filters: ['from', 'to', 'username', 'application', 'result', 'method'], results: SIGN_IN_RESULTS, methods: SIGN_IN_METHODS, cursor: ['number'] });
  return { columns: SIGN_IN_COLUMNS, ...(await signInRows(services, tenant, q, 'sign-ins')) };
}

export interface FraudView {
  at: string;
  username: string | null;
  application: string | null;
  method: string;
  /** How it was reported: call (0#), text (the fraud code), push (the app's "report fraud"). */
  source: string | null;
  ip: string | null;
  challenge_id: string | null;
  /** Whether the user is blocked now. */
  user_blocked: boolean;
}

/** Fraud alerts (Azure: the fraud alert report), newest first. */
export async function fraudReport(services: Services, tenant: TenantRow, input: ReportInput): Promise<Report<FraudView>> {
  const q = await parseReportQuery(services, tenant, 'fraud', input, { filters: ['from', 'to', 'username', 'application'], cursor: ['number'] });
  const page = await signInRows(services, tenant, { ...q, result: 'fraud' }, 'fraud');
  const now = services.clock().getTime();
  const names = [...new Set(page.rows.map((r) => r.username).filter((u): u is string => u !== null))];
  const blocked = new Set(
    names.length === 0
      ? []
      : (await services.db.selectFrom('users').select(['username', 'status', 'blocked_until']).where('tenant_id', '=', tenant.id).where('username', 'in', names).execute())
          .filter((u) => u.status === 'blocked' && (u.blocked_until === null || Number(u.blocked_until) > now))
          .map((u) => u.username),
  );
  return {
    columns: ['at', 'username', 'application', 'method', 'source', 'ip', 'challenge_id', 'user_blocked'],
    next_cursor: page.next_cursor,
    rows: page.rows.map((r) => ({ at: r.at, username: r.username, application: r.application, method: r.method, source: r.reason, ip: r.ip, challenge_id: r.challenge_id, user_blocked: r.username !== null && blocked.has(r.username) })),
  };
}

export interface AppPasswordUseView {
  at: string;
  username: string | null;
  application: string | null;
  result: string;
  reason: string | null;
  ip: string | null;
}

/** App-password sign-ins of legacy clients (single factor), newest first. */
export async function appPasswordReport(services: Services, tenant: TenantRow, input: ReportInput): Promise<Report<AppPasswordUseView>> {
  const q = await parseReportQuery(services, tenant, 'app-passwords', input, { filters: ['from', 'to', 'username', 'application', 'result'], results: ['approved', 'denied'], cursor: ['number'] });
  const page = await signInRows(services, tenant, { ...q, method: 'app_password' }, 'app-passwords');
  return {
    columns: ['at', 'username', 'application', 'result', 'reason', 'ip'],
    next_cursor: page.next_cursor,
    rows: page.rows.map((r) => ({ at: r.at, username: r.username, application: r.application, result: r.result, reason: r.reason, ip: r.ip })),
  };
}

async function signInRows(services: Services, tenant: TenantRow, q: ReportQuery, report: 'sign-ins' | 'fraud' | 'app-passwords'): Promise<ReportPage<SignInView>> {
  await syncSignIns(services);
  let query = services.db
    .selectFrom('sign_ins')
    .selectAll()
    .where('tenant_id', '=', tenant.id)
    .orderBy('seq', 'desc')
    .limit(q.limit + 1);
  if (q.after !== undefined) query = query.where('seq', '<', Number(q.after[0]));
  if (q.from !== undefined) query = query.where('at', '>=', q.from);
  if (q.to !== undefined) query = query.where('at', '<', q.to);
  if (q.username !== undefined) query = query.where('username', '=', q.username);
  if (q.application !== undefined) query = query.where('application_id', '=', q.application);
  if (q.result !== undefined) query = query.where('result', '=', q.result as SignInResult);
  if (q.method !== undefined) query = query.where('method', '=', q.method);
  const rows = await query.execute();
  const applications = await applicationNames(services, tenant);
  const views = rows.map((r) => ({
    seq: Number(r.seq),
    at: iso(r.at) ?? '',
    username: r.username,
    application: r.application_id === null ? null : (applications.get(r.application_id) ?? r.application_id),
    kind: r.kind,
    method: r.method,
    result: r.result,
    reason: r.reason,
    ip: r.ip,
    challenge_id: r.challenge_id,
  }));
  const page = pageOf(report, tenant.id, views, q.limit, (r) => [r.seq]);
  // The audit sequence number stays inside (it counts every tenant's events); the cursor holds the position.
  return { next_cursor: page.next_cursor, rows: page.rows.map(({ seq: _seq, ...row }) => row) };
}

export interface SummaryView {
  day: string;
  method: string;
  result: string;
  count: number;
}

/** Sign-ins counted by UTC day, method and result; newest day first. */
export async function signInSummary(services: Services, tenant: TenantRow, input: ReportInput): Promise<Report<SummaryView>> {
  const q = await parseReportQuery(services, tenant, 'summary', input, {
    filters: ['from', 'to', 'username', 'application', 'result', 'method'],
    results: SIGN_IN_RESULTS,
    methods: SIGN_IN_METHODS,
    cursor: ['number', 'string', 'string'],
  });
  await syncSignIns(services);
  let query = services.db
    .selectFrom('sign_ins')
    .select(['day', 'method', 'result', (eb) => eb.fn.countAll<number>().as('n')])
    .where('tenant_id', '=', tenant.id)
    .groupBy(['day', 'method', 'result']);
  if (q.from !== undefined) query = query.where('at', '>=', q.from);
  if (q.to !== undefined) query = query.where('at', '<', q.to);
  if (q.username !== undefined) query = query.where('username', '=', q.username);
  if (q.application !== undefined) query = query.where('application_id', '=', q.application);
  if (q.result !== undefined) query = query.where('result', '=', q.result as SignInResult);
  if (q.method !== undefined) query = query.where('method', '=', q.method);
  const groups = (await query.execute()).map((g) => ({ day: Number(g.day), method: g.method, result: g.result, count: Number(g.n) }));
  // Newest day first; within a day by method and result. The key of a group never changes.
  const key = (g: { day: number; method: string; result: string }) => [-g.day, g.method, g.result];
  return {
    columns: ['day', 'method', 'result', 'count'],
    ...pageInMemory('summary', tenant.id, groups, q, key, (g) => ({ day: isoDay(g.day), method: g.method, result: g.result, count: g.count })),
  };
}

export interface BlockedUserView {
  username: string;
  display_name: string | null;
  /** blocked (fraud report or administrator) or locked_out (too many failed verifications). */
  status: 'blocked' | 'locked_out';
  reason: string;
  blocked_until: string | null;
  locked_until: string | null;
  failed_count: number;
}

/** Users blocked or locked out now, by username. */
export async function blockedUserReport(services: Services, tenant: TenantRow, input: ReportInput): Promise<Report<BlockedUserView>> {
  const q = await parseReportQuery(services, tenant, 'blocked-users', input, { filters: ['username', 'result'], results: ['blocked', 'locked_out'], cursor: ['string'] });
  const now = services.clock().getTime();
  const blockedNow = sql<boolean>`(${sql.ref('status')} = 'blocked' and (${sql.ref('blocked_until')} is null or ${sql.ref('blocked_until')} > ${now}))`;
  const lockedNow = sql<boolean>`(${sql.ref('locked_until')} is not null and ${sql.ref('locked_until')} > ${now})`;
  let query = services.db
    .selectFrom('users')
    .select(['username', 'display_name', 'status', 'blocked_reason', 'blocked_until', 'locked_until', 'failed_count'])
    .where('tenant_id', '=', tenant.id)
    .orderBy('username')
    .limit(q.limit + 1);
  if (q.result === 'blocked') query = query.where(blockedNow);
  else if (q.result === 'locked_out') query = query.where(lockedNow).where(sql<boolean>`not ${blockedNow}`);
  else query = query.where(sql<boolean>`(${blockedNow} or ${lockedNow})`);
  if (q.username !== undefined) query = query.where('username', '=', q.username);
  if (q.after !== undefined) query = query.where('username', '>', String(q.after[0]));
  const rows = (await query.execute()).map((u): BlockedUserView => {
    const blocked = u.status === 'blocked' && (u.blocked_until === null || Number(u.blocked_until) > now);
    return {
      username: u.username,
      display_name: u.display_name,
      status: blocked ? 'blocked' : 'locked_out',
      reason: blocked ? (u.blocked_reason ?? 'admin') : 'lockout',
      blocked_until: blocked ? iso(u.blocked_until) : null,
      locked_until: u.locked_until !== null && Number(u.locked_until) > now ? iso(u.locked_until) : null,
      failed_count: Number(u.failed_count),
    };
  });
  return {
    columns: ['username', 'display_name', 'status', 'reason', 'blocked_until', 'locked_until', 'failed_count'],
    ...pageOf('blocked-users', tenant.id, rows, q.limit, (r) => [r.username]),
  };
}

export interface BypassReportView {
  id: string;
  username: string;
  reason: string;
  granted_by: string;
  /** active, used, expired or revoked. */
  status: string;
  granted_at: string;
  expires_at: string;
  used_at: string | null;
  /** The application whose sign-in used it. */
  used_by: string | null;
  revoked_at: string | null;
}

/** One-time bypasses (granted, used, expired, revoked), newest grant first. */
export async function bypassReport(services: Services, tenant: TenantRow, input: ReportInput): Promise<Report<BypassReportView>> {
  const q = await parseReportQuery(services, tenant, 'bypasses', input, { filters: ['from', 'to', 'username', 'application', 'result'], results: ['active', 'used', 'expired', 'revoked'], cursor: ['number', 'string'] });
  const now = services.clock().getTime();
  let query = services.db
    .selectFrom('bypasses')
    .innerJoin('users', 'users.id', 'bypasses.user_id')
    .select(['bypasses.id', 'users.username', 'bypasses.reason', 'bypasses.granted_by', 'bypasses.created_at', 'bypasses.expires_at', 'bypasses.used_at', 'bypasses.used_by', 'bypasses.revoked_at'])
    .where('bypasses.tenant_id', '=', tenant.id)
    .orderBy('bypasses.created_at', 'desc')
    .orderBy('bypasses.id', 'desc')
    .limit(q.limit + 1);
  if (q.from !== undefined) query = query.where('bypasses.created_at', '>=', q.from);
  if (q.to !== undefined) query = query.where('bypasses.created_at', '<', q.to);
  if (q.username !== undefined) query = query.where('users.username', '=', q.username);
  if (q.application !== undefined) query = query.where('bypasses.used_by', '=', q.application);
  if (q.result === 'used') query = query.where('bypasses.used_at', 'is not', null);
  if (q.result === 'revoked') query = query.where('bypasses.used_at', 'is', null).where('bypasses.revoked_at', 'is not', null);
  if (q.result === 'expired') query = query.where('bypasses.used_at', 'is', null).where('bypasses.revoked_at', 'is', null).where('bypasses.expires_at', '<=', now);
  if (q.result === 'active') query = query.where('bypasses.used_at', 'is', null).where('bypasses.revoked_at', 'is', null).where('bypasses.expires_at', '>', now);
  if (q.after !== undefined) {
    const [createdAt, id] = [Number(q.after[0]), String(q.after[1])];
    query = query.where((eb) => eb.or([eb('bypasses.created_at', '<', createdAt), eb.and([eb('bypasses.created_at', '=', createdAt), eb('bypasses.id', '<', id)])]));
  }
  const applications = await applicationNames(services, tenant);
  const rows = (await query.execute()).map((b) => ({
    id: b.id,
    username: b.username,
    reason: b.reason,
    granted_by: b.granted_by,
    status: b.used_at !== null ? 'used' : b.revoked_at !== null ? 'revoked' : Number(b.expires_at) > now ? 'active' : 'expired',
    granted_at: iso(b.created_at) ?? '',
    expires_at: iso(b.expires_at) ?? '',
    used_at: iso(b.used_at),
    used_by: b.used_by === null ? null : (applications.get(b.used_by) ?? b.used_by),
    revoked_at: iso(b.revoked_at),
    created_ms: Number(b.created_at),
  }));
  const page = pageOf('bypasses', tenant.id, rows, q.limit, (r) => [r.created_ms, r.id]);
  return {
    columns: ['id', 'username', 'reason', 'granted_by', 'status', 'granted_at', 'expires_at', 'used_at', 'used_by', 'revoked_at'],
    next_cursor: page.next_cursor,
    rows: page.rows.map(({ created_ms: _created, ...row }) => row),
  };
}

export interface TelephonyView {
  day: string;
  kind: string;
  country: string | null;
  status: string;
  count: number;
  units: number;
}

/** Texts and calls (telephony_log) counted by UTC day, kind, country and status; newest day first. */
export async function telephonyReport(services: Services, tenant: TenantRow, input: ReportInput): Promise<Report<TelephonyView>> {
  const q = await parseReportQuery(services, tenant, 'telephony', input, { filters: ['from', 'to', 'username', 'result'], cursor: ['number', 'string', 'string', 'string'] });
  const dayOf = sql<number>`(${sql.ref('telephony_log.created_at')} / ${sql.lit(DAY_MS)})`;
  let query = services.db
    .selectFrom('telephony_log')
    .select([dayOf.as('day'), 'telephony_log.kind', 'telephony_log.country', 'telephony_log.status', (eb) => eb.fn.countAll<number>().as('n'), (eb) => eb.fn.sum<number>('telephony_log.units').as('units')])
    .where('telephony_log.tenant_id', '=', tenant.id)
    .groupBy([dayOf, 'telephony_log.kind', 'telephony_log.country', 'telephony_log.status']);
  if (q.from !== undefined) query = query.where('telephony_log.created_at', '>=', q.from);
  if (q.to !== undefined) query = query.where('telephony_log.created_at', '<', q.to);
  if (q.result !== undefined) query = query.where('telephony_log.status', '=', q.result);
  if (q.username !== undefined) {
    const username = q.username;
    query = query.where('telephony_log.user_id', 'in', (eb) => eb.selectFrom('users').select('id').where('tenant_id', '=', tenant.id).where('username', '=', username));
  }
  const groups = (await query.execute()).map((g) => ({ day: Math.floor(Number(g.day)), kind: g.kind, country: g.country, status: g.status, count: Number(g.n), units: Number(g.units ?? 0) }));
  const key = (g: (typeof groups)[number]) => [-g.day, g.kind, g.country ?? '', g.status];
  return {
    columns: ['day', 'kind', 'country', 'status', 'count', 'units'],
    ...pageInMemory('telephony', tenant.id, groups, q, key, (g) => ({ day: isoDay(g.day), kind: g.kind, country: g.country, status: g.status, count: g.count, units: g.units })),
  };
}

/**
 * Pages grouped rows (a summary: few rows per day) in memory by their sort key. The key of a group
 * is its identity (day, method, …), so a cursor stays valid while counts grow.
 */
export function pageInMemory<G, V>(
  report: 'summary' | 'telephony' | 'usage',
  tenantId: string,
  groups: G[],
  q: ReportQuery,
  key: (group: G) => (string | number)[],
  view: (group: G) => V,
): ReportPage<V> {
  const after = q.after;
  const sorted = groups
    .map((g) => ({ g, k: key(g) }))
    .filter((x) => after === undefined || compareKeys(x.k, after) > 0)
    .sort((a, b) => compareKeys(a.k, b.k));
  const page = pageOf(report, tenantId, sorted, q.limit, (x) => x.k);
  return { rows: page.rows.map((x) => view(x.g)), next_cursor: page.next_cursor };
}

async function applicationNames(services: Services, tenant: TenantRow): Promise<Map<string, string>> {
  return new Map((await services.db.selectFrom('applications').select(['id', 'name']).where('tenant_id', '=', tenant.id).execute()).map((a) => [a.id, a.name]));
}
