import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { invalidInput, notFound } from '../core/errors.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { Database, TenantRow } from '../store/schema.js';

/**
 * E-mail (issue 5 item 12): tenant-editable templates, and the sender of the e-mail queue.
 *
 * The queue is the notifications outbox (`notifications`, channel `email`): the event dispatcher
 * (flows/events.ts) queues fraud alerts to the tenant's `fraud_notify_emails` and Azure's "MFA
 * has been turned on for your account" message to users, other flows queue their notices to
 * users (a replayed code, a new app password); `sendQueuedEmails` sends what is due through
 * `services.channels.email` — an SMTP server (`email.smtp_url`) or the local outbox. Each row is
 * claimed with one conditional UPDATE before it is sent (still due, attempts as read), so two
 * servers never send one message at once; a failure is retried with back-off (1 min, 5 min,
 * 30 min, 2 h), then the row is `failed`. (A server that dies between sending and marking the
 * row sent lets another send it again after the claim runs out: at least once.)
 */
export const EMAIL_TEMPLATE_NAMES = ['mfa_enabled', 'fraud_alert'] as const;
export type EmailTemplateName = (typeof EMAIL_TEMPLATE_NAMES)[number];

/** The placeholders each template may use; anything else in braces is refused when saved. */
export const TEMPLATE_PLACEHOLDERS: Record<EmailTemplateName, readonly string[]> = {
  mfa_enabled: ['display_name', 'username', 'email', 'tenant', 'enrollment_url'],
  fraud_alert: ['username', 'display_name', 'tenant', 'source', 'ip', 'app', 'time', 'challenge'],
};

/** Azure's example e-mail to users whose MFA was turned on ("Send email to end users"), with placeholders. */
const DEFAULTS: Record<EmailTemplateName, { subject: string; body: string }> = {
  mfa_enabled: {
    subject: 'ACTION REQUIRED: multi-factor authentication is now on for your account',
    body: [
      'Hello {display_name},',
      '',
      'For added security, we have enabled multi-factor authentication for your account ({username}) at {tenant}.',
      '',
      'Action Required: You will need to complete the enrollment steps below to make your account secure with multi-factor authentication.',
      '',
      'What to expect once MFA is enabled:',
      '',
      'Multi-factor authentication requires a password that you know and a phone that you have in order to sign in to browser applications.',
      '',
      'For non-browser applications such as a mail client on your mobile device, a special password called an app password is required instead of your account password to sign in. App passwords are different than your account password.',
      '',
      'Please follow these enrollment steps to avoid interruption of your service:',
      '',
      '  1. Sign in as usual, or open {enrollment_url}',
      '  2. Follow the instructions to set up your preferred multi-factor authentication method.',
      '  3. Create one app password for each device, and enter it in all applicable apps on that device.',
      '',
      'Best Regards,',
      'Your Administrator',
    ].join('\n'),
  },
  fraud_alert: {
    subject: 'Fraud alert: {username} reported a sign-in they did not start',
    body: [
      'A user of {tenant} reported a verification request as fraud.',
      '',
      'User: {username} ({display_name})',
      'Reported through: {source}',
      'Sign-in from: {ip}',
      'Application: {app}',
      'Time (UTC): {time}',
      'Challenge: {challenge}',
      '',
      'Depending on the fraud alert settings the user is now blocked from multi-factor authentication. Review the sign-in, and unblock the user when it is safe:',
      '  countersign user unblock --tenant {tenant} {username}',
    ].join('\n'),
  },
};

export interface EmailTemplateView {
  name: EmailTemplateName;
  subject: string;
  body: string;
  /** The placeholders this template may use, written {name}. */
  placeholders: string[];
  /** false: the built-in text (Azure's), not changed by this tenant. */
  customized: boolean;
  updated_at: string | null;
}

function templateName(name: string): EmailTemplateName {
  const found = EMAIL_TEMPLATE_NAMES.find((n) => n === name);
  if (found === undefined) throw notFound(`e-mail template ${name.slice(0, 60)} (there are ${EMAIL_TEMPLATE_NAMES.join(', ')})`);
  return found;
}

export async function getEmailTemplate(services: Services, tenant: TenantRow, name: string): Promise<EmailTemplateView> {
  const known = templateName(name);
  const row = await services.db.selectFrom('email_templates').selectAll().where('tenant_id', '=', tenant.id).where('name', '=', known).executeTakeFirst();
  const text = row ?? DEFAULTS[known];
  return { name: known, subject: text.subject, body: text.body, placeholders: [...TEMPLATE_PLACEHOLDERS[known]], customized: row !== undefined, updated_at: row === undefined ? null : new Date(Number(row.updated_at)).toISOString() };
}

/** Control characters other than line breaks and tabs (they have no place in a plain-text e-mail). */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 32 && code !== 10 && code !== 9) || (code >= 127 && code < 160)) return true;
  }
  return false;
}

/** Placeholders used in `text` that the template does not know, or undefined when all are known. */
function unknownPlaceholder(text: string, allowed: readonly string[]): string | undefined {
  for (const match of text.matchAll(/\{([^{}\s]*)\}/g)) if (!allowed.includes(match[1] ?? '')) return match[0];
  return undefined;
}

/** Replaces a template's text; `reset` goes back to the built-in one. Audited. */
export async function setEmailTemplate(services: Services, principal: Principal, tenant: TenantRow, name: string, input: { subject?: unknown; body?: unknown; reset?: unknown }): Promise<EmailTemplateView> {
  const known = templateName(name);
  const allowed = TEMPLATE_PLACEHOLDERS[known];
  const now = services.clock().getTime();
  if (input.reset === true) {
    await services.writes.run(async (db, record) => {
      await db.deleteFrom('email_templates').where('tenant_id', '=', tenant.id).where('name', '=', known).execute();
      record({ tenantId: tenant.id, actor: actorOf(principal), action: 'email_template.updated', target: tenant.id, detail: { name: known, reset: true } });
    });
    return getEmailTemplate(services, tenant, known);
  }
  const subject = typeof input.subject === 'string' ? input.subject.trim() : '';
  if (subject === '' || subject.length > 200 || /\p{Cc}/u.test(subject)) throw invalidInput('subject', 'is required: 1–200 characters on one line');
  const body = typeof input.body === 'string' ? input.body.replace(/\r\n/g, '\n') : '';
  if (body.trim() === '' || body.length > 20_000 || hasControlCharacter(body)) throw invalidInput('body', 'is required: 1–20000 characters of plain text');
  for (const [field, text] of [['subject', subject], ['body', body]] as const) {
    const unknown = unknownPlaceholder(text, allowed);
    if (unknown !== undefined) throw invalidInput(field, `${unknown.slice(0, 60)} is not a placeholder of ${known}: use ${allowed.map((p) => `{${p}}`).join(', ')}`);
  }
  await services.writes.run(async (db, record) => {
    const updated = await db.updateTable('email_templates').set({ subject, body, updated_by: actorOf(principal), updated_at: now }).where('tenant_id', '=', tenant.id).where('name', '=', known).executeTakeFirst();
    if (updated.numUpdatedRows === 0n) await db.insertInto('email_templates').values({ tenant_id: tenant.id, name: known, subject, body, updated_by: actorOf(principal), updated_at: now }).execute();
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'email_template.updated', target: tenant.id, detail: { name: known } });
  });
  return getEmailTemplate(services, tenant, known);
}

/** The template's text with each {placeholder} replaced (one line for the subject: no header injection). */
export async function renderEmail(db: Kysely<Database>, tenantId: string, name: EmailTemplateName, values: Record<string, string>): Promise<{ subject: string; body: string }> {
  const row = await db.selectFrom('email_templates').select(['subject', 'body']).where('tenant_id', '=', tenantId).where('name', '=', name).executeTakeFirst();
  const text = row ?? DEFAULTS[name];
  const fill = (template: string, oneLine: boolean) =>
    template.replace(/\{([a-z_]+)\}/g, (whole, key: string) => {
      const value = values[key];
      if (value === undefined) return whole;
      return oneLine ? value.replace(/[\r\n]+/g, ' ') : value;
    });
  return { subject: fill(text.subject, true).slice(0, 250), body: fill(text.body, false) };
}

/** Queues one e-mail (a row of the notifications outbox) inside the caller's transaction. */
export async function queueEmail(
  db: Kysely<Database>,
  message: { tenantId: string; userId: string | null; kind: string; to: string; subject: string; body: string; event: number | null },
  now: number,
): Promise<void> {
  await db
    .insertInto('notifications')
    .values({
      id: randomUUID(),
      tenant_id: message.tenantId,
      user_id: message.userId,
      kind: message.kind,
      channel: 'email',
      recipient: message.to,
      status: 'queued',
      detail: JSON.stringify({ subject: message.subject, body: message.body, event: message.event }),
      created_at: now,
      sent_at: null,
      next_attempt_at: now,
    })
    .execute();
}

/** Subjects of the notices other flows queue for users (they carry facts, not a text). */
const NOTICE_SUBJECTS: Record<string, string> = {
  otp_replay: 'A verification code of yours was used twice',
  fraud_reported: 'You reported a sign-in request as fraud',
  app_password_created: 'An app password was created for your account',
};

/** The subject and text of a queued row: as queued, or made from a notice's facts. */
function messageOf(row: { kind: string; detail: string }): { subject: string; text: string } {
  const detail = JSON.parse(row.detail) as Record<string, unknown>;
  if (typeof detail['subject'] === 'string' && typeof detail['body'] === 'string') return { subject: detail['subject'], text: detail['body'] };
  const lines = Object.entries(detail).map(([key, value]) => `${key.replace(/_/g, ' ')}: ${String(value)}`);
  return {
    subject: NOTICE_SUBJECTS[row.kind] ?? `Security notice: ${row.kind.replace(/_/g, ' ')}`,
    text: ['This is a security notice about your account.', '', ...lines, '', 'If this was not you, tell your administrator.'].join('\n'),
  };
}

export const EMAIL_MAX_ATTEMPTS = 5;
const EMAIL_BACKOFF_MS = [60_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000];
/** How long a sender holds a row it claimed; a sender that crashed lets go after this. */
const CLAIM_MS = 5 * 60_000;

/** A queued e-mail as the sender reads it. */
export interface QueuedEmail {
  id: string;
  tenant_id: string;
  user_id: string | null;
  kind: string;
  recipient: string | null;
  detail: string;
  attempts: number;
  created_at: number;
}

/** Sends the e-mails that are due (at most `limit`); returns how many were sent. */
export async function sendQueuedEmails(services: Services, limit = 20): Promise<number> {
  const now = services.clock().getTime();
  const due = await services.db
    .selectFrom('notifications')
    .select(['id', 'tenant_id', 'user_id', 'kind', 'recipient', 'detail', 'attempts', 'created_at'])
    .where('status', '=', 'queued')
    .where('channel', '=', 'email')
    .where('recipient', 'is not', null)
    .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', now)]))
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
    .orderBy('created_at')
    .limit(limit)
    .execute();
  let sent = 0;
  for (const row of due) if (await sendQueuedEmail(services, row, now)) sent++;
  return sent;
}

/**
 * Claims and sends one queued e-mail read as due at `now`; true when it was sent. Exported for
 * tests: a second server holding the same, now stale, row.
 */
export async function sendQueuedEmail(services: Services, row: QueuedEmail, now: number): Promise<boolean> {
  // The claim: of several servers, one takes the row — and only while it is the row that was
  // read as due: still due (not put back with a later retry time by a server that just tried it)
  // and with the attempts read (no other server tried it since).
  const claimed = await services.db
    .updateTable('notifications')
    .set((eb) => ({ locked_until: now + CLAIM_MS, attempts: eb('attempts', '+', 1) }))
    .where('id', '=', row.id)
    .where('status', '=', 'queued')
    .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', now)]))
    .where('attempts', '=', Number(row.attempts))
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
    .executeTakeFirst();
  if (claimed.numUpdatedRows !== 1n) return false;
  if (await noticeAlreadySent(services, row)) {
    // Dropped, as queueUserNotification drops a second notice of a kind within a minute while the
    // first is still queued: a notice is sent at once now, so the first may be `sent` already.
    await services.db.deleteFrom('notifications').where('id', '=', row.id).execute();
    return false;
  }
  const attempts = Number(row.attempts) + 1;
  const { subject, text } = messageOf(row);
  try {
    await services.channels.email.send({ tenantId: row.tenant_id, to: row.recipient ?? '', subject, text, reference: row.id });
    const at = services.clock().getTime();
    await services.db.updateTable('notifications').set({ status: 'sent', sent_at: at, locked_until: null, last_error: null }).where('id', '=', row.id).execute();
    return true;
  } catch (error) {
    const message = error instanceof Error ? error.message.slice(0, 300) : 'send failed';
    const last = attempts >= EMAIL_MAX_ATTEMPTS;
    const at = services.clock().getTime();
    await services.db
      .updateTable('notifications')
      .set({ status: last ? 'failed' : 'queued', locked_until: null, last_error: message, next_attempt_at: last ? null : at + (EMAIL_BACKOFF_MS[attempts - 1] ?? 3_600_000) })
      .where('id', '=', row.id)
      .execute();
    // The address is the recipient's own; the message text is not logged.
    services.log.warn({ notification: row.id, kind: row.kind, attempts, error: message }, last ? 'an e-mail could not be sent; giving up' : 'an e-mail could not be sent; it will be retried');
    return false;
  }
}

/**
 * Whether a user notice (queued by queueUserNotification: facts, no text of its own) of this
 * kind was already sent to this user for something that happened within the minute before it —
 * "one message per minute and kind: fifty replays of one code are one event to a person".
 */
async function noticeAlreadySent(services: Services, row: QueuedEmail): Promise<boolean> {
  if (row.user_id === null) return false;
  const detail = JSON.parse(row.detail) as Record<string, unknown>;
  if (typeof detail['subject'] === 'string' && typeof detail['body'] === 'string') return false;
  const createdAt = Number(row.created_at);
  const earlier = await services.db
    .selectFrom('notifications')
    .select('id')
    .where('user_id', '=', row.user_id)
    .where('kind', '=', row.kind)
    .where('status', '=', 'sent')
    .where('id', '!=', row.id)
    .where('created_at', '>', createdAt - 60_000)
    .where('created_at', '<=', createdAt)
    .executeTakeFirst();
  return earlier !== undefined;
}
