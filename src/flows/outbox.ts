import { transcriptOf } from '../channels/outbox/outbox-channel.js';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import type { Services } from '../services.js';
import { callAnswered, callKeys, inboundText } from './phone-challenges.js';
import { recordTelephonyStatus } from './telephony.js';

/**
 * The local outbox, seen from the phone's side (`countersign outbox …`, `/v1/admin/outbox`): read
 * the texts and calls Countersign sent, answer a call and press keys, reply to a text. Pressing
 * and replying go through the same flows as Twilio's webhooks, so the outbox exercises the
 * real call script and two-way text handling.
 */
export interface OutboxView {
  id: string;
  kind: 'sms' | 'call' | 'email';
  to: string;
  text: string;
  status: string;
  challenge_id: string | null;
  created_at: string;
}

async function viewOf(services: Services, row: { id: string; kind: 'sms' | 'call' | 'email'; to_number: string; text_sealed: string; key_id: string; status: string; challenge_id: string | null; created_at: number }): Promise<OutboxView> {
  const text = (await services.secrets.open(row.text_sealed, row.key_id, `outbox:${row.id}`)).toString('utf8');
  return { id: row.id, kind: row.kind, to: row.to_number, text, status: row.status, challenge_id: row.challenge_id, created_at: new Date(Number(row.created_at)).toISOString() };
}

export async function listOutbox(services: Services, filter: { tenantId?: string | undefined; limit: number }): Promise<OutboxView[]> {
  let query = services.db.selectFrom('outbox').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit);
  if (filter.tenantId !== undefined) query = query.where('tenant_id', '=', filter.tenantId);
  const rows = await query.execute();
  return Promise.all(rows.map((r) => viewOf(services, r)));
}

async function load(services: Services, id: string, tenantId: string | undefined) {
  let query = services.db.selectFrom('outbox').selectAll().where('id', '=', id);
  if (tenantId !== undefined) query = query.where('tenant_id', '=', tenantId);
  const row = await query.executeTakeFirst();
  if (row === undefined) throw notFound(`outbox message ${id}`);
  return row;
}

export async function showOutbox(services: Services, id: string, tenantId?: string): Promise<OutboxView> {
  return viewOf(services, await load(services, id, tenantId));
}

async function update(services: Services, id: string, status: string, text: string): Promise<void> {
  const { sealed, keyId } = await services.secrets.seal(Buffer.from(text, 'utf8'), `outbox:${id}`);
  await services.db.updateTable('outbox').set({ status, text_sealed: sealed, key_id: keyId, updated_at: services.clock().getTime() }).where('id', '=', id).execute();
}

/** Answers a ringing call (if it is not answered yet) and presses `keys` (e.g. `#`, `0#`, `1`, `1234#`; '' = wait until the timeout). */
export async function pressOutbox(services: Services, id: string, keys: unknown, tenantId?: string): Promise<OutboxView> {
  if (typeof keys !== 'string' || !/^[0-9*#]{0,21}$/.test(keys)) throw invalidInput('digits', 'must be keys of a phone: 0-9, * and #');
  const row = await load(services, id, tenantId);
  if (row.kind !== 'call') throw new CountersignError('CONFLICT', row.kind === 'email' ? `outbox message ${id} is an e-mail: there is nothing to answer` : `outbox message ${id} is a text: reply to it instead`);
  if (row.status === 'completed') throw new CountersignError('CONFLICT', `the call ${id} has ended`);
  let transcript = (await viewOf(services, row)).text;
  if (row.status === 'ringing') {
    await recordTelephonyStatus(services, row.reference, 'in-progress');
    const opening = await callAnswered(services, row.reference);
    transcript = transcriptOf(opening);
    if (opening.hangup) {
      await recordTelephonyStatus(services, row.reference, 'completed');
      await update(services, id, 'completed', transcript);
      return showOutbox(services, id);
    }
  }
  const step = await callKeys(services, row.reference, keys);
  transcript = `${transcript}\n[pressed ${keys === '' ? 'nothing' : keys}] ${transcriptOf(step)}`.trim();
  await update(services, id, step.hangup ? 'completed' : 'answered', transcript);
  if (step.hangup) await recordTelephonyStatus(services, row.reference, 'completed');
  return showOutbox(services, id);
}

/** A text back from the phone a text went to (two-way text messages). */
export async function replyOutbox(services: Services, id: string, text: unknown, tenantId?: string): Promise<{ message: OutboxView; result: string }> {
  if (typeof text !== 'string' || text.trim() === '' || text.length > 160) throw invalidInput('text', 'must be 1–160 characters');
  const row = await load(services, id, tenantId);
  if (row.kind !== 'sms') throw new CountersignError('CONFLICT', row.kind === 'email' ? `outbox message ${id} is an e-mail: there is nothing to answer` : `outbox message ${id} is a call: press keys instead`);
  // The phone replies to this text: it answers this text's challenge only, never another tenant's.
  const result = await inboundText(services, row.to_number, text, { challengeId: row.challenge_id });
  await services.db.updateTable('outbox').set({ status: 'replied', updated_at: services.clock().getTime() }).where('id', '=', id).execute();
  return { message: await showOutbox(services, id), result };
}
