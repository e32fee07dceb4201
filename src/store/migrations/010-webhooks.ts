import { sql, type Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/**
 * Events to subscribers: webhook endpoints and their delivery log, e-mail templates, the event
 * dispatcher's cursor over the audit log, and retry columns on the notifications outbox (which
 * is the e-mail queue) (issue 5 item 12).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('webhook_endpoints')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('url', 'text', (c) => c.notNull())
    // JSON list of event names and `prefix.*` filters.
    .addColumn('events', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    // The signing secret, sealed like seeds (additional data `webhook:<id>`).
    .addColumn('secret_sealed', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    // The audit log's last seq when the endpoint was added: it receives the events after it.
    .addColumn('from_seq', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('webhook_endpoints_tenant').on('webhook_endpoints').columns(['tenant_id', 'created_at']).execute();

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('endpoint_id', 'text', (c) => c.notNull().references('webhook_endpoints.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('event_seq', 'bigint', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('next_attempt_at', 'bigint')
    .addColumn('locked_until', 'bigint')
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('delivered_at', 'bigint')
    .addUniqueConstraint('webhook_deliveries_event', ['endpoint_id', 'event_seq'])
    .execute();
  await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute();
  await db.schema.createIndex('webhook_deliveries_endpoint').on('webhook_deliveries').columns(['endpoint_id', 'event_seq']).execute();

  await db.schema
    .createTable('email_templates')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('email_templates_pk', ['tenant_id', 'name'])
    .execute();

  // Where the dispatcher is in the audit log: events after `seq` are still to be handed out. It
  // starts at the log's end, so existing history is not sent to anyone.
  await db.schema
    .createTable('event_cursors')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await sql`insert into event_cursors (name, seq, updated_at) select 'dispatcher', coalesce(max(seq), 0), 0 from audit_events`.execute(db);

  // The notifications outbox is the e-mail queue: retries and a claim that survives a crash.
  await db.schema.alterTable('notifications').addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('notifications').addColumn('next_attempt_at', 'bigint').execute();
  await db.schema.alterTable('notifications').addColumn('locked_until', 'bigint').execute();
  await db.schema.alterTable('notifications').addColumn('last_error', 'text').execute();
  // Until now nothing sent the queue: what is queued at the upgrade is history (a replayed code
  // weeks ago), not news. Sending it all at the first `serve` would mail every user their backlog,
  // so those rows are marked `superseded` and never sent (they stay in the list, for the record).
  // The sender treats a NULL next_attempt_at as due: rows queued from now on are sent.
  await sql`update notifications set status = 'superseded', last_error = 'queued before e-mail was sent (migration 010): not sent' where status = 'queued'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  // Not back to `queued`: the code before this migration would mail that backlog after all.
  await sql`update notifications set status = 'failed' where status = 'superseded'`.execute(db);
  await db.schema.alterTable('notifications').dropColumn('last_error').execute();
  await db.schema.alterTable('notifications').dropColumn('locked_until').execute();
  await db.schema.alterTable('notifications').dropColumn('next_attempt_at').execute();
  await db.schema.alterTable('notifications').dropColumn('attempts').execute();
  await db.schema.dropTable('event_cursors').ifExists().execute();
  await db.schema.dropTable('email_templates').ifExists().execute();
  await db.schema.dropTable('webhook_deliveries').ifExists().execute();
  await db.schema.dropTable('webhook_endpoints').ifExists().execute();
}
