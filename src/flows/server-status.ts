import { readFileSync } from 'node:fs';
import { sql } from 'kysely';
import type { Principal, Services } from '../services.js';
import { MIGRATION_NAMES } from '../store/database.js';
import { OPEN_STATUSES } from './challenge-state.js';
import { signInsWatermark } from './sign-ins.js';

/**
 * Server status (Azure MFA Server's "status" report): the version, how long the process has run,
 * the store (dialect and where: a file path or a PostgreSQL URL without its password), the
 * migrations applied and the depth of each queue. A tenant-scoped administrator sees its own
 * tenant's queues and not where the store is; an administrator of every tenant sees it all.
 */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface ServerStatus {
  version: string;
  /** Seconds since the process started; null when asked from the CLI (no server process). */
  uptime_seconds: number | null;
  started_at: string | null;
  now: string;
  store: { dialect: string; location: string | null };
  migrations: { applied: string[]; pending: string[] };
  /** null = every tenant; else the tenant these counts are limited to. */
  tenant: string | null;
  queues: {
    /** Challenges still open (pending, sent, calling, answered) and not expired. */
    challenges_open: number;
    /** Notifications (e-mails) queued and not yet sent. */
    notifications_queued: number;
    /** Texts and calls in the local outbox not yet answered (sent, ringing, answered). */
    outbox_waiting: number;
    /** Audit records not yet copied into the sign-in report (caught up when a report is read). */
    sign_ins_behind: number;
  };
  audit: { records: number };
}

export async function serverStatus(services: Services, principal: Principal, uptimeSeconds: number | null): Promise<ServerStatus> {
  const tenantId = principal.kind === 'admin' || principal.kind === 'application' ? principal.tenantId : null;
  const now = services.clock().getTime();
  const db = services.db;
  const applied = (await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db)).rows.map((r) => r.name);
  const count = async (query: { executeTakeFirst(): Promise<{ n: number | string | bigint } | undefined> }) => Number((await query.executeTakeFirst())?.n ?? 0);
  let challenges = db.selectFrom('challenges').select((eb) => eb.fn.countAll<number>().as('n')).where('status', 'in', OPEN_STATUSES).where('expires_at', '>', now);
  let notifications = db.selectFrom('notifications').select((eb) => eb.fn.countAll<number>().as('n')).where('status', '=', 'queued');
  let outbox = db.selectFrom('outbox').select((eb) => eb.fn.countAll<number>().as('n')).where('status', 'in', ['sent', 'ringing', 'answered']);
  if (tenantId !== null) {
    challenges = challenges.where('tenant_id', '=', tenantId);
    notifications = notifications.where('tenant_id', '=', tenantId);
    outbox = outbox.where('tenant_id', '=', tenantId);
  }
  const head = Number((await db.selectFrom('audit_head').select('seq').where('id', '=', 1).executeTakeFirst())?.seq ?? 0);
  const tenant = tenantId === null ? null : ((await db.selectFrom('tenants').select('name').where('id', '=', tenantId).executeTakeFirst())?.name ?? tenantId);
  return {
    version: VERSION,
    uptime_seconds: uptimeSeconds === null ? null : Math.floor(uptimeSeconds),
    started_at: uptimeSeconds === null ? null : new Date(Date.now() - uptimeSeconds * 1000).toISOString(),
    now: new Date(now).toISOString(),
    store: { dialect: services.store.dialect, location: tenantId === null ? withoutPassword(services.store.location) : null },
    migrations: { applied, pending: MIGRATION_NAMES.filter((name) => !applied.includes(name)) },
    tenant,
    queues: {
      challenges_open: await count(challenges),
      notifications_queued: await count(notifications),
      outbox_waiting: await count(outbox),
      sign_ins_behind: Math.max(0, head - (await signInsWatermark(db))),
    },
    audit: { records: tenantId === null ? head : await count(db.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId)) },
  };
}

/** The store's location is already kept without a password; this makes sure of it for any URL. */
function withoutPassword(location: string): string {
  if (!/^[a-z]+:\/\//i.test(location)) return location;
  try {
    const url = new URL(location);
    url.password = '';
    return url.toString();
  } catch {
    return location.replace(/\/\/[^@/]*@/, '//');
  }
}
