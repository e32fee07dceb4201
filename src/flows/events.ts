import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { matchesEventFilters } from '../core/events.js';

import type { Services } from '../services.js';
import type { Database } from '../store/schema.js';
import { writeTransaction } from '../store/write-transaction.js';
import { queueEmail, renderEmail, sendQueuedEmails } from './email.js';
import { tenantSettings } from './tenants.js';
import { sendDueWebhooks } from './webhooks.js';

/**
 * The event dispatcher (issue 5 item 12): hands every committed event (core/events.ts) to its
 * subscribers — webhook endpoints and e-mail — without touching the write that produced it.
 *
 * Why it reads the audit log instead of being called by the writers: the audit log already holds
 * every decision and change, hash-chained, in commit order (`audit_events.seq`). On SQLite a
 * change's audit records are stored by the same commit as the change; on PostgreSQL they are
 * appended right after the change's transaction commits (store/group-commit.ts), so a crash
 * between the two loses the record, and with it the event. The dispatcher keeps a cursor
 * (`event_cursors`, row `dispatcher`) and, in one transaction, reads the records after it, turns
 * each into rows — a `webhook_deliveries` row per matching endpoint, a queued e-mail
 * (`notifications`) for fraud alerts and "MFA has been turned on" — and moves the cursor past
 * them. So:
 * - nothing recorded is lost on a crash: events not yet handed out are still after the cursor,
 *   and what was handed out is stored rows, sent (and retried) from there;
 * - nothing is handed out twice: the cursor row is locked for the transaction (PostgreSQL:
 *   SELECT … FOR UPDATE, taken before the endpoints are read, and taken by createWebhook too;
 *   SQLite: the write lock), so of several servers one moves it. Sending is at least once: a
 *   receiver dedupes by the event id;
 * - the hot path (`/v1/verify`) pays (almost) nothing: group-commit's `subscribe` only wakes the
 *   dispatcher after a commit (one size check per commit); wake-ups are coalesced (one pass at a
 *   time, at most one every MIN_PASS_MS); and while no tenant has a webhook endpoint and the new
 *   events send no e-mail, a pass only reads — no write transaction, no write lock. The cursor
 *   then moves lazily, at most once every IDLE_CURSOR_MS, so the range a pass reads stays short.
 *   A timer re-reads every second for events committed by other processes (a CLI, another server).
 * Sending happens after, outside any transaction: each delivery and e-mail is claimed alone.
 */
const CURSOR = 'dispatcher';
const BATCH = 500;
/** With nothing to hand out, the cursor is moved at most this often (a write transaction). */
export const IDLE_CURSOR_MS = 5_000;
/** Passes of the `serve` loop start at least this far apart, however many commits wake it. */
const MIN_PASS_MS = 100;
/** The actions that queue e-mail (queueEventEmails). */
const EMAIL_ACTIONS = ['fraud.reported', 'user.state_changed'];

/**
 * Per database: the audit seq through which the records after the cursor are known to queue no
 * e-mail, so an idle pass reads each record once, not once per pass until the cursor moves.
 */
const checkedThrough = new WeakMap<object, number>();

/**
 * Whether the events in (after, head] need a write transaction now: an endpoint exists (in any
 * tenant), one of them queues an e-mail, or the cursor was last moved IDLE_CURSOR_MS ago or more.
 * Reads only. A wrong "no" costs nothing but delay: the events stay after the cursor.
 */
async function worthAWrite(services: Services, after: number, head: number, cursorMovedAt: number, now: number): Promise<boolean> {
  // Moved long enough ago (or stamped far in the future: a clock that was wrong). A little in the
  // future is another server's clock running ahead: still "a moment ago".
  const age = now - cursorMovedAt;
  if (age >= IDLE_CURSOR_MS || age < -60_000) return true;
  const endpoint = await services.db.selectFrom('webhook_endpoints').select('id').limit(1).executeTakeFirst();
  if (endpoint !== undefined) return true;
  const from = Math.max(after, checkedThrough.get(services.db) ?? 0);
  if (from >= head) return false;
  const mail = await services.db.selectFrom('audit_events').select('seq').where('seq', '>', from).where('seq', '<=', head).where('action', 'in', EMAIL_ACTIONS).limit(1).executeTakeFirst();
  if (mail !== undefined) return true;
  checkedThrough.set(services.db, head);
  return false;
}

/**
 * Hands out the events committed since the cursor; returns how many were read (0 when none, or
 * when nothing subscribes to them and the cursor was moved a moment ago: see worthAWrite).
 */
export async function fanOutEvents(services: Services): Promise<number> {
  // Nothing new (the usual case between commits): no transaction, no write lock.
  const [head, cursor] = await Promise.all([
    services.db.selectFrom('audit_head').select('seq').where('id', '=', 1).executeTakeFirst(),
    services.db.selectFrom('event_cursors').select(['seq', 'updated_at']).where('name', '=', CURSOR).executeTakeFirst(),
  ]);
  const headSeq = Number(head?.seq ?? 0);
  const cursorSeq = Number(cursor?.seq ?? 0);
  if (headSeq <= cursorSeq) return 0;
  if (!(await worthAWrite(services, cursorSeq, headSeq, Number(cursor?.updated_at ?? 0), services.clock().getTime()))) return 0;
  return writeTransaction(services.db, services.store.dialect, async (trx) => {
    // The cursor lock first, then everything else: an endpoint committed before it is taken is
    // seen below, one added after waits for this transaction (createWebhook takes it too).
    let cursorQuery = trx.selectFrom('event_cursors').select('seq').where('name', '=', CURSOR);
    if (services.store.dialect === 'postgres') cursorQuery = cursorQuery.forUpdate();
    const cursor = await cursorQuery.executeTakeFirst();
    const after = Number(cursor?.seq ?? 0);
    const records = await trx
      .selectFrom('audit_events')
      .select(['seq', 'at', 'tenant_id', 'action', 'target', 'detail'])
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(BATCH)
      .execute();
    const last = records.at(-1);
    if (last === undefined) return 0;
    const now = services.clock().getTime();
    const tenantIds = [...new Set(records.map((r) => r.tenant_id).filter((id): id is string => id !== null))];
    const endpoints =
      tenantIds.length === 0 ? [] : await trx.selectFrom('webhook_endpoints').select(['id', 'tenant_id', 'events', 'from_seq']).where('tenant_id', 'in', tenantIds).execute();
    const filters = new Map(endpoints.map((e) => [e.id, JSON.parse(e.events) as string[]]));
    const deliveries = [];
    for (const record of records) {
      const seq = Number(record.seq);
      for (const endpoint of endpoints) {
        if (endpoint.tenant_id !== record.tenant_id || seq <= Number(endpoint.from_seq)) continue;
        if (!matchesEventFilters(filters.get(endpoint.id) ?? [], record.action)) continue;
        deliveries.push({
          id: randomUUID(),
          endpoint_id: endpoint.id,
          tenant_id: endpoint.tenant_id,
          event_seq: seq,
          event_type: record.action,
          status: 'pending' as const,
          attempts: 0,
          next_attempt_at: now,
          locked_until: null,
          last_status_code: null,
          last_error: null,
          created_at: now,
          updated_at: now,
          delivered_at: null,
        });
      }
      if (record.tenant_id !== null) await queueEventEmails(services, trx, { ...record, tenant_id: record.tenant_id, seq }, now);
    }
    for (let i = 0; i < deliveries.length; i += 100) {
      await trx.insertInto('webhook_deliveries').values(deliveries.slice(i, i + 100)).onConflict((oc) => oc.columns(['endpoint_id', 'event_seq']).doNothing()).execute();
    }
    await trx.updateTable('event_cursors').set({ seq: Number(last.seq), updated_at: now }).where('name', '=', CURSOR).execute();
    return records.length;
  });
}

/** The e-mails one event sends: a fraud alert to the tenant's addresses, "MFA has been turned on" to a user. */
async function queueEventEmails(services: Services, db: Kysely<Database>, record: { seq: number; at: number | string; tenant_id: string; action: string; target: string | null; detail: string }, now: number): Promise<void> {
  if (record.action !== 'fraud.reported' && record.action !== 'user.state_changed') return;
  const detail = JSON.parse(record.detail) as Record<string, unknown>;
  // "Turned on": from disabled to enabled or enforced (enabled → enforced is registration finishing).
  if (record.action === 'user.state_changed' && !(detail['from'] === 'disabled' && (detail['to'] === 'enabled' || detail['to'] === 'enforced'))) return;
  const tenant = await db.selectFrom('tenants').selectAll().where('id', '=', record.tenant_id).executeTakeFirst();
  const user = record.target === null ? undefined : await db.selectFrom('users').select(['id', 'username', 'display_name', 'email']).where('id', '=', record.target).where('tenant_id', '=', record.tenant_id).executeTakeFirst();
  if (tenant === undefined) return;
  const base = { tenant: tenant.name, username: user?.username ?? record.target ?? '', display_name: user?.display_name ?? user?.username ?? '' };
  if (record.action === 'fraud.reported') {
    const settings = tenantSettings(tenant);
    if (settings.fraud_notify_emails.length === 0) return;
    const text = (key: string) => (typeof detail[key] === 'string' ? (detail[key]) : 'unknown');
    const message = await renderEmail(db, tenant.id, 'fraud_alert', {
      ...base,
      source: text('source'),
      ip: text('ip'),
      app: text('app'),
      challenge: text('challenge'),
      time: new Date(Number(record.at)).toISOString(),
    });
    for (const to of settings.fraud_notify_emails) await queueEmail(db, { tenantId: tenant.id, userId: null, kind: 'fraud_alert', to, ...message, event: record.seq }, now);
    return;
  }
  if (user?.email === null || user?.email === undefined || user.email === '') return;
  const publicUrl = services.config.publicUrl;
  const message = await renderEmail(db, tenant.id, 'mfa_enabled', { ...base, email: user.email, enrollment_url: publicUrl === undefined ? 'the sign-in page' : `${publicUrl}/authenticator/` });
  await queueEmail(db, { tenantId: tenant.id, userId: user.id, kind: 'mfa_enabled', to: user.email, ...message, event: record.seq }, now);
}

/** One pass: hand out every new event, then send what is due. For the dispatcher's loop and for tests. */
export async function runEventsOnce(services: Services): Promise<{ events: number; emails: number; webhooks: number }> {
  let events = 0;
  for (;;) {
    const read = await fanOutEvents(services);
    events += read;
    if (read < BATCH) break;
  }
  const [emails, webhooks] = await Promise.all([sendQueuedEmails(services), sendDueWebhooks(services)]);
  return { events, emails, webhooks };
}

export interface EventDispatcher {
  /** Stops the loop and waits for a pass under way. */
  stop(): Promise<void>;
}

/**
 * The loop `countersign serve` runs: a pass after commits in this process (group commit's
 * subscription wakes it) and once every `intervalMs` (events of other processes, retries that
 * came due). Wake-ups are coalesced: one pass at a time, passes at least MIN_PASS_MS apart, so a
 * busy server runs a few passes a second, not one per commit. A failed pass is logged and the
 * next one tries again.
 */
export function startEventDispatcher(services: Services, options: { intervalMs?: number } = {}): EventDispatcher {
  let running: Promise<void> | undefined;
  let waiting: NodeJS.Timeout | undefined;
  let again = false;
  let stopped = false;
  let lastStart = -Infinity;
  const later = (ms: number): void => {
    if (waiting !== undefined) return;
    waiting = setTimeout(() => {
      waiting = undefined;
      pass();
    }, ms);
    waiting.unref();
  };
  const pass = (): void => {
    if (stopped) return;
    if (running !== undefined) {
      again = true;
      return;
    }
    const wait = lastStart + MIN_PASS_MS - Date.now();
    if (wait > 0) {
      later(wait);
      return;
    }
    lastStart = Date.now();
    running = runEventsOnce(services)
      .then(() => undefined)
      .catch((error: unknown) => services.log.warn({ err: error }, 'the event dispatcher failed; it tries again'))
      .finally(() => {
        running = undefined;
        if (again && !stopped) {
          again = false;
          // Commits during a pass: one more pass for all of them, MIN_PASS_MS after this one began.
          later(Math.max(0, lastStart + MIN_PASS_MS - Date.now()));
        }
      });
  };
  const unsubscribe = services.writes.subscribe(() => pass());
  const timer = setInterval(pass, options.intervalMs ?? 1000);
  timer.unref();
  pass();
  return {
    async stop() {
      stopped = true;
      unsubscribe();
      clearInterval(timer);
      if (waiting !== undefined) clearTimeout(waiting);
      await running;
    },
  };
}

/** For tests and `serve`: how far the dispatcher is in the audit log. */
export async function dispatcherCursor(db: Kysely<Database>): Promise<number> {
  const row = await db.selectFrom('event_cursors').select('seq').where('name', '=', CURSOR).executeTakeFirst();
  return Number(row?.seq ?? 0);
}
