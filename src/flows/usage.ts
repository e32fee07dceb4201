import type { Kysely } from 'kysely';
import type { Services } from '../services.js';
import type { Database, TenantRow } from '../store/schema.js';
import { isoDay, parseReportQuery, type ReportInput } from './report-query.js';
import { pageInMemory, type Report } from './reports.js';
import { DAY_MS, syncSignIns } from './sign-ins.js';
import { tenantSettings } from './tenants.js';

/**
 * Usage and licensing (issue 5 item 10), in Azure MFA's two models:
 * - **per enabled user**: users whose MFA state is `enabled` or `enforced`, counted per tenant and
 *   UTC day. The count is a daily snapshot (`usage_days`) taken whenever it may have changed —
 *   a user created, imported, deleted, or their state changed (users.ts and user-import.ts call
 *   checkSeats) — and when the usage report is read; the last count of a day stays as that day's.
 *   A day with no snapshot carries the previous day's count forward (nothing changed it).
 * - **per authentication**: second-factor verifications (one-shot verifies and challenge
 *   outcomes, approved or not, from `sign_ins`) per tenant and UTC day.
 *
 * The tenant setting `seats` (null = no limit) is the licence: when enabled users go above it,
 * the audit event `usage.seats_exceeded` is recorded — once per crossing, not on every check:
 * `seat_states.exceeded` changes with one compare-and-set statement, and only the check that
 * changed it records the event (`usage.seats_within_limit` when the count is back at or under the
 * seats). A seat count lowered in the settings is noticed at the next check (the next user change
 * or usage report), not by the settings change itself.
 */
export const ENABLED_STATES = ['enabled', 'enforced'] as const;

export interface SeatCheck {
  enabled_users: number;
  seats: number | null;
  exceeded: boolean;
  /** Whether this check crossed the limit (either way) and recorded the event. */
  crossed: boolean;
}

/** Counts the tenant's enabled users now, keeps today's snapshot, and records a crossing of the seat count. */
export async function checkSeats(services: Services, tenantId: string): Promise<SeatCheck> {
  const now = services.clock().getTime();
  const day = Math.floor(now / DAY_MS);
  return services.writes.run(async (db, record) => {
    const tenant = await db.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirst();
    if (tenant === undefined) return { enabled_users: 0, seats: null, exceeded: false, crossed: false };
    // The tenant's seat row is locked first (PostgreSQL runs checks side by side): a check that
    // counted before another user's change committed cannot then undo a later check's verdict.
    await db.insertInto('seat_states').values({ tenant_id: tenantId, exceeded: 0, changed_at: now }).onConflict((oc) => oc.column('tenant_id').doNothing()).execute();
    await db.updateTable('seat_states').set((eb) => ({ exceeded: eb.ref('exceeded') })).where('tenant_id', '=', tenantId).execute();
    const seats = tenantSettings(tenant).seats;
    const enabled = await countEnabledUsers(db, tenantId);
    await db
      .insertInto('usage_days')
      .values({ tenant_id: tenantId, day, enabled_users: enabled, seats, updated_at: now })
      .onConflict((oc) => oc.columns(['tenant_id', 'day']).doUpdateSet({ enabled_users: enabled, seats, updated_at: now }))
      .execute();
    const exceeded = seats !== null && enabled > seats;
    const moved = await db
      .updateTable('seat_states')
      .set({ exceeded: exceeded ? 1 : 0, changed_at: now })
      .where('tenant_id', '=', tenantId)
      .where('exceeded', '=', exceeded ? 0 : 1)
      .executeTakeFirst();
    const crossed = moved.numUpdatedRows === 1n;
    if (crossed) {
      record({ tenantId, actor: 'system', action: exceeded ? 'usage.seats_exceeded' : 'usage.seats_within_limit', target: tenantId, detail: { enabled_users: enabled, seats } });
    }
    return { enabled_users: enabled, seats, exceeded, crossed };
  });
}

async function countEnabledUsers(db: Kysely<Database>, tenantId: string): Promise<number> {
  const { n } = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('tenant_id', '=', tenantId)
    .where('mfa_state', 'in', ENABLED_STATES)
    .executeTakeFirstOrThrow();
  return Number(n);
}

export interface UsageDayView {
  day: string;
  /** Users in state enabled or enforced (the day's last count); null before the first count. */
  enabled_users: number | null;
  /** Second-factor verifications that day (approved, denied or reported as fraud). */
  authentications: number;
  seats: number | null;
  exceeded: boolean;
}

export interface UsageReport extends Report<UsageDayView> {
  /** Now: enabled users, the seat count, whether it is exceeded, and since when. */
  current: { enabled_users: number; seats: number | null; exceeded: boolean; exceeded_since: string | null };
}

/** Usage per UTC day, newest first; `from`/`to` default to the last 30 days. */
export async function usageReport(services: Services, tenant: TenantRow, input: ReportInput): Promise<UsageReport> {
  const q = await parseReportQuery(services, tenant, 'usage', input, { filters: ['from', 'to'], cursor: ['number'] });
  const now = services.clock().getTime();
  const today = Math.floor(now / DAY_MS);
  const check = await checkSeats(services, tenant.id);
  await syncSignIns(services);
  const last = q.to === undefined ? today : Math.min(today, Math.ceil(q.to / DAY_MS) - 1);
  const first = q.from === undefined ? last - 29 : Math.floor(q.from / DAY_MS);

  const snapshots = await services.db.selectFrom('usage_days').select(['day', 'enabled_users', 'seats']).where('tenant_id', '=', tenant.id).where('day', '<=', last).orderBy('day').execute();
  const counts = await services.db
    .selectFrom('sign_ins')
    .select(['day', (eb) => eb.fn.countAll<number>().as('n')])
    .where('tenant_id', '=', tenant.id)
    .where('kind', 'in', ['verify', 'challenge'])
    .where('day', '>=', first)
    .where('day', '<=', last)
    .groupBy('day')
    .execute();
  const authentications = new Map(counts.map((c) => [Number(c.day), Number(c.n)]));

  const days: { n: number; view: UsageDayView }[] = [];
  let carried: { enabled_users: number; seats: number | null } | undefined;
  let next = 0;
  for (let day = first; day <= last; day++) {
    // The day's snapshot, or the last one before it (carried forward).
    while (next < snapshots.length && Number(snapshots[next]?.day) <= day) {
      const s = snapshots[next];
      if (s !== undefined) carried = { enabled_users: Number(s.enabled_users), seats: s.seats === null ? null : Number(s.seats) };
      next++;
    }
    const enabled = carried?.enabled_users ?? null;
    const seats = carried?.seats ?? null;
    days.push({ n: day, view: { day: isoDay(day), enabled_users: enabled, authentications: authentications.get(day) ?? 0, seats, exceeded: enabled !== null && seats !== null && enabled > seats } });
  }
  // Newest first; the day is the key.
  const page = pageInMemory('usage', tenant.id, days, q, (d) => [-d.n], (d) => d.view);
  const state = await services.db.selectFrom('seat_states').select(['exceeded', 'changed_at']).where('tenant_id', '=', tenant.id).executeTakeFirst();
  return {
    columns: ['day', 'enabled_users', 'authentications', 'seats', 'exceeded'],
    ...page,
    current: {
      enabled_users: check.enabled_users,
      seats: check.seats,
      exceeded: check.exceeded,
      exceeded_since: check.exceeded && state !== undefined && Number(state.exceeded) === 1 ? new Date(Number(state.changed_at)).toISOString() : null,
    },
  };
}
