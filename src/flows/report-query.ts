import { invalidInput } from '../core/errors.js';
import { normalizeUsername } from '../core/user-fields.js';
import type { Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';

/**
 * What every report is asked (`from`, `to`, `username`, `application`, `result`, `limit`,
 * `cursor`), checked in one place: a bad value is refused naming its field, and a filter a
 * report does not have is refused too (rather than silently ignored).
 *
 * Cursors are opaque to callers: base64url of the report's name, the tenant and the position
 * after the last row given (a `seq`, or the sort key of the last row). Positions are keys that
 * never move (rows are ordered by them), so paging is stable while new rows arrive. A cursor is
 * only a position: every query still filters by the caller's tenant, and a cursor made for
 * another tenant or report is refused.
 */
export const REPORTS = ['sign-ins', 'summary', 'fraud', 'blocked-users', 'bypasses', 'app-passwords', 'telephony', 'usage'] as const;
export type ReportName = (typeof REPORTS)[number];

export type FilterName = 'from' | 'to' | 'username' | 'application' | 'result' | 'method';

export interface ReportInput {
  from?: unknown;
  to?: unknown;
  username?: unknown;
  application?: unknown;
  result?: unknown;
  method?: unknown;
  limit?: unknown;
  cursor?: unknown;
}

export interface ReportQuery {
  /** Epoch ms, inclusive. */
  from: number | undefined;
  /** Epoch ms, exclusive. */
  to: number | undefined;
  username: string | undefined;
  /** The application's id (given by id or name). */
  application: string | undefined;
  result: string | undefined;
  method: string | undefined;
  limit: number;
  /** The position after which to continue, or undefined for the first page. */
  after: readonly (string | number)[] | undefined;
}

export interface ReportPage<T> {
  rows: T[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/;

export async function parseReportQuery(
  services: Services,
  tenant: TenantRow,
  report: ReportName,
  input: ReportInput,
  allowed: { filters: readonly FilterName[]; results?: readonly string[]; methods?: readonly string[]; cursor: readonly ('number' | 'string')[] },
): Promise<ReportQuery> {
  for (const field of ['from', 'to', 'username', 'application', 'result', 'method'] as const) {
    if (present(input[field]) && !allowed.filters.includes(field)) throw invalidInput(field, `is not a filter of the ${report} report (its filters: ${allowed.filters.join(', ') || 'none'})`);
  }
  const from = time(input.from, 'from');
  const to = time(input.to, 'to');
  if (from !== undefined && to !== undefined && to <= from) throw invalidInput('to', 'must be later than from');
  const result = present(input.result) ? String(input.result) : undefined;
  if (result !== undefined && allowed.results !== undefined && !allowed.results.includes(result)) throw invalidInput('result', `must be one of ${allowed.results.join(', ')}`);
  const method = present(input.method) ? String(input.method) : undefined;
  if (method !== undefined && allowed.methods !== undefined && !allowed.methods.includes(method)) throw invalidInput('method', `must be one of ${allowed.methods.join(', ')}`);
  return {
    from,
    to,
    username: present(input.username) ? normalizeUsername(input.username) : undefined,
    application: present(input.application) ? await applicationId(services, tenant, String(input.application)) : undefined,
    result,
    method,
    limit: limitOf(input.limit),
    after: present(input.cursor) ? decodeCursor(input.cursor, report, tenant.id, allowed.cursor) : undefined,
  };
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

function time(value: unknown, field: 'from' | 'to'): number | undefined {
  if (!present(value)) return undefined;
  const ms = typeof value === 'string' && ISO_TIME.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw invalidInput(field, 'must be an ISO 8601 time such as 2026-01-15T00:00:00Z, or a date such as 2026-01-15 (UTC midnight)');
  return ms;
}

function limitOf(value: unknown): number {
  if (!present(value)) return DEFAULT_LIMIT;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,7}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw invalidInput('limit', `must be a whole number from 1 to ${MAX_LIMIT}`);
  return n;
}

/** An application of the tenant by id or name; an unknown one filters everything out (it matches no row). */
async function applicationId(services: Services, tenant: TenantRow, ref: string): Promise<string> {
  const row = await services.db
    .selectFrom('applications')
    .select('id')
    .where('tenant_id', '=', tenant.id)
    .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
    .executeTakeFirst();
  return row?.id ?? `unknown:${ref}`;
}

export function encodeCursor(report: ReportName, tenantId: string, position: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify({ r: report, t: tenantId, p: position }), 'utf8').toString('base64url');
}

function decodeCursor(value: unknown, report: ReportName, tenantId: string, shape: readonly ('number' | 'string')[]): readonly (string | number)[] {
  const refused = invalidInput('cursor', `is not a cursor of this ${report} report (pass next_cursor from the previous page as it was given)`);
  if (typeof value !== 'string' || value.length > 2000 || !/^[A-Za-z0-9_-]+$/.test(value)) throw refused;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    throw refused;
  }
  if (typeof parsed !== 'object' || parsed === null) throw refused;
  const { r, t, p } = parsed as { r?: unknown; t?: unknown; p?: unknown };
  // The position must have the report's own shape: whole numbers where numbers go, short texts else.
  const fits = (x: unknown, type: 'number' | 'string') => (type === 'number' ? Number.isSafeInteger(x) : typeof x === 'string' && x.length <= 512);
  if (r !== report || t !== tenantId || !Array.isArray(p) || p.length !== shape.length || shape.some((type, i) => !fits(p[i], type))) throw refused;
  return p as (string | number)[];
}

/** Cuts `limit + 1` rows read to a page, with the cursor of its last row when there is more. */
export function pageOf<T>(report: ReportName, tenantId: string, rows: T[], limit: number, positionOf: (row: T) => readonly (string | number)[]): ReportPage<T> {
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  const last = page[page.length - 1];
  return { rows: page, next_cursor: more && last !== undefined ? encodeCursor(report, tenantId, positionOf(last)) : null };
}

/** Compares sort keys (strings and numbers), for reports paged in memory (summaries). */
export function compareKeys(a: readonly (string | number)[], b: readonly (string | number)[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === y) continue;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return 0;
}

export function isoDay(day: number): string {
  return new Date(day * 86_400_000).toISOString().slice(0, 10);
}

export function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(Number(ms)).toISOString();
}
