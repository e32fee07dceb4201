import { sql, type Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/**
 * Phone calls and text messages: verified phone numbers, phone challenges (where the text or
 * call went, the keyed hash of a one-time code, the call's progress), the local outbox, the
 * telephony log, rate-limit windows, webhook de-duplication and the user's phone PIN.
 */
export async function up(db: Kysely<any>): Promise<void> {
  // Numbers entered by administrators so far are pre-registered: verified when they were added.
  await db.schema.alterTable('user_phones').addColumn('verified_at', 'bigint').execute();
  await db.updateTable('user_phones').set({ verified_at: sql`created_at` }).execute();
  await db.schema.createIndex('user_phones_number').on('user_phones').columns(['number']).execute();
  // A number being proven: the keyed hash of the code sent to it, its expiry and the attempts used.
  await db.schema.alterTable('user_phones').addColumn('verify_code_hash', 'text').execute();
  await db.schema.alterTable('user_phones').addColumn('verify_expires_at', 'bigint').execute();
  await db.schema.alterTable('user_phones').addColumn('verify_attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  // argon2id PHC string of the PIN asked for on calls in PIN mode.
  await db.schema.alterTable('users').addColumn('pin_hash', 'text').execute();

  await db.schema.alterTable('challenges').addColumn('destination', 'text').execute();
  await db.schema.alterTable('challenges').addColumn('code_hash', 'text').execute();
  await db.schema.alterTable('challenges').addColumn('mode', 'text').execute();
  await db.schema.alterTable('challenges').addColumn('reason', 'text').execute();
  await db.schema.alterTable('challenges').addColumn('call_state', 'text').execute();
  await db.schema.alterTable('challenges').addColumn('reference', 'text').execute();
  await db.schema.createIndex('challenges_destination').on('challenges').columns(['destination', 'status']).execute();
  await db.schema.createIndex('challenges_reference').on('challenges').columns(['reference']).execute();

  await db.schema
    .createTable('telephony_log')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text')
    .addColumn('challenge_id', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('provider_id', 'text')
    .addColumn('number_masked', 'text', (c) => c.notNull())
    .addColumn('country', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('units', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('error', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('telephony_log_tenant').on('telephony_log').columns(['tenant_id', 'created_at']).execute();
  await db.schema.createIndex('telephony_log_provider_id').on('telephony_log').columns(['provider_id']).execute();

  // The local outbox: the phone network of a laptop. Texts are stored sealed (they hold codes).
  await db.schema
    .createTable('outbox')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('to_number', 'text', (c) => c.notNull())
    .addColumn('from_number', 'text')
    .addColumn('text_sealed', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('challenge_id', 'text')
    .addColumn('reference', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('outbox_created').on('outbox').columns(['created_at']).execute();

  await db.schema
    .createTable('rate_windows')
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('window_start', 'bigint', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('rate_windows_pk', ['key', 'window_start'])
    .execute();

  // A tenant's own call prompts, per language and Azure message type: spoken text, or an audio file.
  await db.schema
    .createTable('phone_greetings')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('language', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('audio', 'text')
    .addColumn('audio_type', 'text')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('phone_greetings_kind', ['tenant_id', 'language', 'kind'])
    .execute();

  // Webhooks already handled (a provider's retry or a replayed request is seen once).
  await db.schema
    .createTable('webhook_events')
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('webhook_events_pk', ['provider', 'event_id'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['webhook_events', 'phone_greetings', 'rate_windows', 'outbox', 'telephony_log']) await db.schema.dropTable(table).execute();
  for (const index of ['challenges_reference', 'challenges_destination', 'user_phones_number']) await db.schema.dropIndex(index).execute();
  for (const column of ['reference', 'call_state', 'reason', 'mode', 'code_hash', 'destination']) await db.schema.alterTable('challenges').dropColumn(column).execute();
  await db.schema.alterTable('users').dropColumn('pin_hash').execute();
  for (const column of ['verify_attempts', 'verify_expires_at', 'verify_code_hash', 'verified_at']) await db.schema.alterTable('user_phones').dropColumn(column).execute();
}
