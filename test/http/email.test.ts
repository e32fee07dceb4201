import type { AddressInfo } from 'node:net';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, type Migration } from 'kysely';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fanOutEvents, runEventsOnce } from '../../src/flows/events.js';
import { sendQueuedEmail, sendQueuedEmails } from '../../src/flows/email.js';
import { queueUserNotification } from '../../src/flows/notifications.js';
import * as m1 from '../../src/store/migrations/001-initial.js';
import * as m2 from '../../src/store/migrations/002-notifications.js';
import * as m3 from '../../src/store/migrations/003-store-meta.js';
import * as m4 from '../../src/store/migrations/004-challenge-application.js';
import * as m5 from '../../src/store/migrations/005-telephony.js';
import * as m6 from '../../src/store/migrations/006-push.js';
import * as m7 from '../../src/store/migrations/007-access-controls.js';
import * as m8 from '../../src/store/migrations/008-policies.js';
import * as m9 from '../../src/store/migrations/009-usage.js';
import * as m10 from '../../src/store/migrations/010-webhooks.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';

/**
 * E-mail: fraud alerts to the tenant's `fraud_notify_emails` and Azure's "MFA has been turned on
 * for your account" to users, from tenant-editable templates — sent to a real SMTP server started
 * by this test (smtp-server), or kept in the local outbox when no SMTP server is configured.
 */
interface Mail {
  from: string;
  to: string[];
  data: string;
}

async function startSmtp(reject: () => boolean): Promise<{ url: string; mails: Mail[]; close(): Promise<void> }> {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(address, _session, callback) {
      if (reject()) callback(Object.assign(new Error('mailbox unavailable'), { responseCode: 550 }));
      else callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({ from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address, to: session.envelope.rcptTo.map((r) => r.address), data: Buffer.concat(chunks).toString('utf8') });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return { url: `smtp://127.0.0.1:${port}`, mails, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The text of a message as received: headers unfolded, quoted-printable soft breaks joined. */
function textOf(mail: Mail): string {
  return mail.data.replace(/\r\n[ \t]+/g, ' ').replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))).replace(/\r\n/g, '\n');
}

for (const dialect of DIALECTS) {
  describe(`e-mail (${dialect})`, () => {
    let t: TestApp;
    let local: TestApp;
    let smtp: Awaited<ReturnType<typeof startSmtp>>;
    let refuse = false;

    beforeAll(async () => {
      smtp = await startSmtp(() => refuse);
      t = await createTestApp({ dialect, config: { email: { smtp_url: smtp.url, from: 'Contoso MFA <mfa@contoso.com>' } } });
      local = await createTestApp({ dialect });
    });
    afterAll(async () => {
      await local.close();
      await t.close();
      await smtp.close();
    });

    const fraud = async (app: TestApp, username: string) => {
      const user = await app.admin('GET', `/v1/admin/users/${username}?tenant=default`);
      // The record the fraud flow (flows/fraud.ts) writes when a user reports a request.
      await app.services.writes.run(async (_db, record) => {
        record({ tenantId: app.tenant.id, actor: 'system', action: 'fraud.reported', target: user.body.id, detail: { challenge: 'c-1', source: 'call', ip: '203.0.113.9', app: 'VPN' } });
        return Promise.resolve();
      });
    };

    it('a fraud report e-mails every address of fraud_notify_emails through SMTP', async () => {
      const set = await t.admin('PATCH', '/v1/admin/settings?tenant=default', { fraud_notify_emails: ['security@contoso.com', ' soc@contoso.com ', 'security@contoso.com'] });
      expect(set.status).toBe(200);
      expect(set.body.fraud_notify_emails).toEqual(['security@contoso.com', 'soc@contoso.com']);
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'alice@contoso.com', display_name: 'Alice Smith' })).status).toBe(201);
      await fraud(t, 'alice@contoso.com');
      expect((await runEventsOnce(t.services)).emails).toBe(2);
      expect(smtp.mails.map((m) => m.to).sort()).toEqual([['security@contoso.com'], ['soc@contoso.com']]);
      const [mail] = smtp.mails;
      if (mail === undefined) throw new Error('no mail');
      expect(mail.from).toBe('mfa@contoso.com');
      const text = textOf(mail);
      expect(text).toMatch(/^Subject: Fraud alert: alice@contoso.com reported a sign-in they did not start$/m);
      expect(text).toMatch(/^From: Contoso MFA <mfa@contoso.com>$/m);
      expect(text).toContain('User: alice@contoso.com (Alice Smith)');
      expect(text).toContain('Sign-in from: 203.0.113.9');
      expect(text).toContain('Application: VPN');
      const notices = (await t.admin('GET', '/v1/admin/notifications?tenant=default')).body.notifications;
      const alerts = notices.filter((n: { kind: string }) => n.kind === 'fraud_alert');
      expect(alerts).toHaveLength(2);
      expect(alerts).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ channel: 'email', recipient: 'soc@contoso.com', status: 'sent' }),
          expect.objectContaining({ channel: 'email', recipient: 'security@contoso.com', status: 'sent' }),
        ]),
      );
      // Sent once: another pass sends nothing.
      expect((await runEventsOnce(t.services)).emails).toBe(0);
      expect(smtp.mails).toHaveLength(2);
    });

    it('fraud_notify_emails is validated: addresses only, at most 20; a refused change leaves the old list', async () => {
      for (const value of [['not an address'], ['a@b'], 'security@contoso.com', [42], Array.from({ length: 21 }, (_, i) => `a${i}@contoso.com`), ['x@contoso.com\r\nBcc: evil@evil.com']]) {
        const answer = await t.admin('PATCH', '/v1/admin/settings?tenant=default', { fraud_notify_emails: value });
        expect(answer.status).toBe(400);
        expect(answer.body.error.message).toMatch(/^fraud_notify_emails: /);
      }
      expect((await t.admin('GET', '/v1/admin/settings?tenant=default')).body.fraud_notify_emails).toEqual(['security@contoso.com', 'soc@contoso.com']);
    });

    it('a user whose MFA is turned on (disabled → enabled or enforced) gets the tenant’s template, once; enabled → enforced and users without e-mail get nothing', async () => {
      smtp.mails.length = 0;
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'bob@contoso.com', display_name: 'Bob Jones', email: 'bob@contoso.com' })).status).toBe(201);
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'nomail@contoso.com' })).status).toBe(201);
      expect((await t.admin('PUT', '/v1/admin/users/bob@contoso.com/state?tenant=default', { state: 'enabled' })).status).toBe(200);
      expect((await t.admin('PUT', '/v1/admin/users/nomail@contoso.com/state?tenant=default', { state: 'enabled' })).status).toBe(200);
      await runEventsOnce(t.services);
      expect(smtp.mails.map((m) => m.to)).toEqual([['bob@contoso.com']]);
      const text = textOf(smtp.mails[0] as Mail);
      expect(text).toMatch(/^Subject: ACTION REQUIRED: multi-factor authentication is now on for your account$/m);
      expect(text).toContain('Hello Bob Jones,');
      expect(text).toContain('for your account (bob@contoso.com) at default');

      // The tenant's own text, with its placeholders.
      const put = await t.admin('PUT', '/v1/admin/email-templates/mfa_enabled?tenant=default', { subject: 'MFA for {display_name}', body: 'Dear {display_name}, {tenant} turned on MFA for {username}. Enroll at {enrollment_url}.' });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({ name: 'mfa_enabled', subject: 'MFA for {display_name}', customized: true, updated_at: '2026-01-15T12:00:00.000Z' });
      expect((await t.admin('PUT', '/v1/admin/users/bob@contoso.com/state?tenant=default', { state: 'enforced' })).status).toBe(200);
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'carol@contoso.com', display_name: 'Carol', email: 'carol@contoso.com' })).status).toBe(201);
      expect((await t.admin('PUT', '/v1/admin/users/carol@contoso.com/state?tenant=default', { state: 'enforced' })).status).toBe(200);
      await runEventsOnce(t.services);
      expect(smtp.mails.map((m) => m.to)).toEqual([['bob@contoso.com'], ['carol@contoso.com']]);
      const custom = textOf(smtp.mails[1] as Mail);
      expect(custom).toMatch(/^Subject: MFA for Carol$/m);
      expect(custom).toContain('Dear Carol, default turned on MFA for carol@contoso.com. Enroll at the sign-in page.');
      const audit = await t.services.db.selectFrom('audit_events').select(['action', 'detail']).where('action', '=', 'email_template.updated').execute();
      expect(audit.map((a) => JSON.parse(a.detail))).toEqual([expect.objectContaining({ name: 'mfa_enabled' })]);
    });

    it('templates: GET shows the built-in text and placeholders; bad input is a 400 naming the field and changes nothing; reset restores Azure’s text', async () => {
      const builtIn = await t.admin('GET', '/v1/admin/email-templates/fraud_alert?tenant=default');
      expect(builtIn.status).toBe(200);
      expect(builtIn.body).toMatchObject({ name: 'fraud_alert', customized: false, updated_at: null, placeholders: expect.arrayContaining(['username', 'ip']) });
      const refused = async (body: Record<string, unknown>, field: string) => {
        const answer = await t.admin('PUT', '/v1/admin/email-templates/mfa_enabled?tenant=default', body);
        expect(answer.status).toBe(400);
        expect(answer.body.error.message).toMatch(new RegExp(`^${field}`));
      };
      await refused({ subject: 'Hi {password}', body: 'x' }, 'subject: \\{password\\} is not a placeholder');
      await refused({ subject: 'Hi', body: 'Your code is {code}' }, 'body: \\{code\\} is not a placeholder');
      await refused({ subject: 'two\r\nBcc: x@evil.com', body: 'x' }, 'subject');
      await refused({ subject: '', body: 'x' }, 'subject');
      await refused({ subject: 'x', body: ' ' }, 'body');
      await refused({ subject: 'x', body: 'bell\u0007' }, 'body');
      expect((await t.admin('PUT', '/v1/admin/email-templates/mfa_enabled?tenant=default', { subject: 'x', body: 'y', html: '<b>' })).status).toBe(400);
      expect((await t.admin('GET', '/v1/admin/email-templates/nope?tenant=default')).status).toBe(404);
      expect((await t.admin('GET', '/v1/admin/email-templates/mfa_enabled?tenant=default')).body.subject).toBe('MFA for {display_name}');
      const reset = await t.admin('PUT', '/v1/admin/email-templates/mfa_enabled?tenant=default', { reset: true });
      expect(reset.body).toMatchObject({ customized: false, subject: 'ACTION REQUIRED: multi-factor authentication is now on for your account' });
    });

    it('an SMTP refusal is retried with back-off, with the server’s answer kept (never a password)', async () => {
      smtp.mails.length = 0;
      refuse = true;
      await fraud(t, 'alice@contoso.com');
      expect((await runEventsOnce(t.services)).emails).toBe(0);
      const rows = await t.services.db.selectFrom('notifications').selectAll().where('kind', '=', 'fraud_alert').where('status', '=', 'queued').execute();
      expect(rows).toHaveLength(2);
      expect(rows[0]).toMatchObject({ attempts: 1, next_attempt_at: t.clock.ms() + 60_000, locked_until: null, last_error: expect.stringMatching(/^SMTP 550/) });
      refuse = false;
      expect((await runEventsOnce(t.services)).emails).toBe(0);
      t.clock.advance(60_000);
      expect((await runEventsOnce(t.services)).emails).toBe(2);
      expect(smtp.mails).toHaveLength(2);
    });

    it('a claim respects back-off: a second server holding the rows as read before a failed attempt does not send them again', async () => {
      smtp.mails.length = 0;
      refuse = true;
      await fraud(t, 'alice@contoso.com');
      await fanOutEvents(t.services);
      // Both servers read the rows as due; the first tries them, and the SMTP server refuses.
      const stale = await t.services.db.selectFrom('notifications').selectAll().where('kind', '=', 'fraud_alert').where('status', '=', 'queued').execute();
      expect(stale).toHaveLength(2);
      expect(await sendQueuedEmails(t.services)).toBe(0);
      refuse = false;
      for (const row of stale) {
        // With what it read: refused (attempts moved on, and not due for a minute).
        expect(await sendQueuedEmail(t.services, row, t.clock.ms())).toBe(false);
        // Read afresh but before it is due: refused too.
        const fresh = await t.services.db.selectFrom('notifications').selectAll().where('id', '=', row.id).executeTakeFirstOrThrow();
        expect(fresh).toMatchObject({ status: 'queued', attempts: 1, next_attempt_at: t.clock.ms() + 60_000 });
        expect(await sendQueuedEmail(t.services, fresh, t.clock.ms())).toBe(false);
      }
      expect(smtp.mails).toHaveLength(0);
      t.clock.advance(60_000);
      const sent = await Promise.all([sendQueuedEmails(t.services), sendQueuedEmails(t.services)]);
      expect(sent[0] + sent[1]).toBe(2);
      expect(smtp.mails).toHaveLength(2);
    });

    it('a user notice is sent once a minute per kind, also now that the first is sent before the second is queued', async () => {
      smtp.mails.length = 0;
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'frank@contoso.com', email: 'frank@contoso.com' })).status).toBe(201);
      const user = await t.services.db.selectFrom('users').select('id').where('username', '=', 'frank@contoso.com').executeTakeFirstOrThrow();
      const replay = () => queueUserNotification(t.services, t.tenant, user.id, 'otp_replay', { method: 'm-1', ip: '203.0.113.9', at: new Date(t.clock.ms()).toISOString() });
      await replay();
      expect(await sendQueuedEmails(t.services)).toBe(1);
      t.clock.advance(10_000);
      await replay();
      expect(await sendQueuedEmails(t.services)).toBe(0);
      t.clock.advance(10_000);
      await replay();
      await replay();
      expect(await sendQueuedEmails(t.services)).toBe(0);
      expect(smtp.mails).toHaveLength(1);
      t.clock.advance(60_000);
      await replay();
      expect(await sendQueuedEmails(t.services)).toBe(1);
      expect(smtp.mails.map((m) => m.to)).toEqual([['frank@contoso.com'], ['frank@contoso.com']]);
      const rows = await t.services.db.selectFrom('notifications').select('status').where('user_id', '=', user.id).where('kind', '=', 'otp_replay').execute();
      expect(rows.map((r) => r.status)).toEqual(['sent', 'sent']);
    });

    it('PUSH-04: a fraud report from a real call (0# then 1) alerts the notify addresses by e-mail', async () => {
      expect((await local.admin('PATCH', '/v1/admin/settings?tenant=default', { fraud_notify_emails: ['fraud-desk@contoso.com'] })).status).toBe(200);
      expect((await local.admin('POST', '/v1/admin/users?tenant=default', { username: 'erin@contoso.com', display_name: 'Erin', phone: '+14255552999', mfa_state: 'enforced' })).status).toBe(201);
      const created = await local.api('POST', '/v1/challenges', { username: 'erin@contoso.com', method: 'voice', context: { ip: '198.51.100.9' } });
      expect(created.status).toBe(201);
      const messages = (await local.admin('GET', '/v1/admin/outbox?limit=500')).body.messages as { id: string; challenge_id: string | null }[];
      const call = messages.find((m) => m.challenge_id === created.body.id);
      if (call === undefined) throw new Error('no call');
      await local.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '0#' });
      await local.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '1' });
      expect((await local.api('GET', `/v1/challenges/${created.body.id}`)).body.status).toBe('fraud');
      await runEventsOnce(local.services);
      const emails = ((await local.admin('GET', '/v1/admin/outbox?tenant=default&limit=500')).body.messages as { kind: string; to: string; text: string }[]).filter((m) => m.kind === 'email' && m.to === 'fraud-desk@contoso.com');
      expect(emails).toHaveLength(1);
      expect(emails[0]?.text).toMatch(/^Subject: Fraud alert: erin@contoso.com reported a sign-in they did not start\n/);
      expect(emails[0]?.text).toContain('Reported through: call');
      expect(emails[0]?.text).toContain('Sign-in from: 198.51.100.9');
      expect((await local.admin('PATCH', '/v1/admin/settings?tenant=default', { fraud_notify_emails: [] })).status).toBe(200);
    });

    it('without an SMTP server e-mails go to the local outbox (kind email), listed by the admin API', async () => {
      expect((await local.admin('POST', '/v1/admin/users?tenant=default', { username: 'dave@contoso.com', display_name: 'Dave', email: 'dave@contoso.com' })).status).toBe(201);
      expect((await local.admin('PUT', '/v1/admin/users/dave@contoso.com/state?tenant=default', { state: 'enabled' })).status).toBe(200);
      expect((await local.admin('PATCH', '/v1/admin/settings?tenant=default', { fraud_notify_emails: ['security@contoso.com'] })).status).toBe(200);
      await fraud(local, 'dave@contoso.com');
      expect((await runEventsOnce(local.services)).emails).toBe(2);
      const outbox = await local.admin('GET', '/v1/admin/outbox?tenant=default');
      expect(outbox.status).toBe(200);
      const emails = outbox.body.messages.filter((m: { kind: string; to: string }) => m.kind === 'email' && m.to !== 'fraud-desk@contoso.com');
      expect(emails.map((m: { to: string }) => m.to).sort()).toEqual(['dave@contoso.com', 'security@contoso.com']);
      const welcome = emails.find((m: { to: string }) => m.to === 'dave@contoso.com');
      expect(welcome.text).toMatch(/^Subject: ACTION REQUIRED: multi-factor authentication is now on for your account\n\nHello Dave,/);
      // Stored sealed, like texts: the row does not show the message.
      const rows = await local.services.db.selectFrom('outbox').select('text_sealed').where('kind', '=', 'email').execute();
      expect(JSON.stringify(rows)).not.toContain('Hello Dave');
    });
  });
}

describe('migration 010 and the e-mail backlog', () => {
  it('notices queued before the upgrade are marked superseded, not e-mailed at the first serve (down puts them back)', async () => {
    const sqlite = new SqliteDatabase(':memory:');
    sqlite.pragma('foreign_keys = OFF');
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: sqlite }) });
    try {
      const before: Migration[] = [m1, m2, m3, m4, m5, m6, m7, m8, m9];
      for (const migration of before) await migration.up(db);
      const row = (id: string, status: string) => ({ id, tenant_id: 't', user_id: null, kind: 'otp_replay', channel: 'email', recipient: 'old@contoso.com', status, detail: '{}', created_at: 1, sent_at: null });
      await db.insertInto('notifications').values([row('old-queued', 'queued'), row('old-sent', 'sent')]).execute();
      const webhooks: Migration = m10;
      await webhooks.up(db);
      const rows = await db.selectFrom('notifications').select(['id', 'status', 'next_attempt_at']).orderBy('id').execute();
      expect(rows).toEqual([
        { id: 'old-queued', status: 'superseded', next_attempt_at: null },
        { id: 'old-sent', status: 'sent', next_attempt_at: null },
      ]);
      await webhooks.down?.(db);
      expect((await db.selectFrom('notifications').select('status').where('id', '=', 'old-queued').executeTakeFirstOrThrow()).status).toBe('failed');
    } finally {
      await db.destroy();
    }
  });
});
