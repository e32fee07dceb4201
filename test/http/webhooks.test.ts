import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EVENT_NAMES, isEventName } from '../../src/core/events.js';
import { dispatcherCursor, fanOutEvents, IDLE_CURSOR_MS, runEventsOnce, startEventDispatcher } from '../../src/flows/events.js';
import { attemptDelivery, sendDueWebhooks, WEBHOOK_MAX_ATTEMPTS } from '../../src/flows/webhooks.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { startReceiver, verifySignature, type Receiver } from '../support/webhook-receiver.js';

/**
 * Webhooks through the admin API, delivered by the event dispatcher to a real HTTP server in this
 * test that checks each signature, on every store of this run (SQLite, and PostgreSQL when
 * configured). http:// on 127.0.0.1 is allowed here by `webhooks.allow_http` / `allow_private`.
 */
for (const dialect of DIALECTS) {
  describe(`webhooks (${dialect})`, () => {
    let t: TestApp;
    let receiver: Receiver;
    const now = () => Math.floor(t.clock.ms() / 1000);
    let n = 0;
    const newUser = async () => {
      n++;
      const username = `hook${n}@contoso.com`;
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username })).status).toBe(201);
      return username;
    };

    beforeAll(async () => {
      t = await createTestApp({ dialect, config: { webhooks: { allow_http: true, allow_private: true } } });
      receiver = await startReceiver();
    });
    afterAll(async () => {
      await receiver.close();
      await t.close();
    });

    it('an endpoint is added with its secret shown once, receives the events its filters pass, signed, and logs each delivery', async () => {
      // Events from before the endpoint existed are not sent to it.
      await newUser();
      const created = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url, events: ['user.*', 'bypass.granted'], description: 'SIEM' });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ url: receiver.url, events: ['user.*', 'bypass.granted'], description: 'SIEM', created_at: '2026-01-15T12:00:00.000Z' });
      expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
      const secret = created.body.secret as string;
      const listed = await t.admin('GET', '/v1/admin/webhooks?tenant=default');
      // Listed with the path masked: only the answer that added it has the whole URL.
      expect(listed.body.webhooks).toEqual([{ id: created.body.id, url: `${new URL(receiver.url).origin}/…`, events: ['user.*', 'bypass.granted'], description: 'SIEM', created_at: '2026-01-15T12:00:00.000Z', created_by: expect.stringMatching(/^admin-key:/) }]);

      t.clock.advance(1000);
      const username = await newUser();
      // A settings change does not pass `user.*`.
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { lockout_threshold: 9 })).status).toBe(200);
      expect((await t.admin('POST', `/v1/admin/users/${username}/bypass?tenant=default`, { seconds: 60, reason: 'lost phone' })).status).toBeLessThan(300);
      const pass = await runEventsOnce(t.services);
      expect(pass.webhooks).toBe(2);
      // Deliveries go out side by side: their order is not promised (receivers order by created_at or id).
      expect(receiver.received.map((r) => r.event.type).sort()).toEqual(['bypass.granted', 'user.created']);
      const first = receiver.received.find((r) => r.event.type === 'user.created');
      if (first === undefined) throw new Error('no delivery');
      expect(verifySignature(secret, first.headers['countersign-signature'] as string, first.body, now())).toBe(true);
      expect(verifySignature('whsec_wrong', first.headers['countersign-signature'] as string, first.body, now())).toBe(false);
      expect(first.headers['content-type']).toBe('application/json');
      expect(first.headers['countersign-event']).toBe('user.created');
      expect(first.event).toMatchObject({ id: expect.stringMatching(/^evt_\d+$/), type: 'user.created', tenant_id: t.tenant.id, actor: expect.stringMatching(/^admin-key:/), created_at: '2026-01-15T12:00:01.000Z' });

      const log = await t.admin('GET', `/v1/admin/webhooks/${created.body.id}/deliveries?tenant=default`);
      expect(log.status).toBe(200);
      expect(log.body.deliveries).toHaveLength(2);
      expect(log.body.deliveries.find((d: { event_type: string }) => d.event_type === 'user.created')).toEqual({
        id: first.headers['countersign-delivery'],
        event_id: first.event.id,
        event_type: 'user.created',
        status: 'delivered',
        attempts: 1,
        next_attempt_at: null,
        last_status_code: 200,
        last_error: null,
        created_at: '2026-01-15T12:00:01.000Z',
        delivered_at: '2026-01-15T12:00:01.000Z',
      });
      // Nothing is sent twice: another pass finds nothing new.
      expect(await runEventsOnce(t.services)).toEqual({ events: expect.any(Number), emails: 0, webhooks: 0 });
      expect(receiver.received).toHaveLength(2);
      expect((await t.admin('DELETE', `/v1/admin/webhooks/${created.body.id}?tenant=default`)).status).toBe(204);
    });

    it('a failed delivery is retried with back-off (1 min, 5 min, …), can be redelivered on request, and fails for good after the last attempt', async () => {
      receiver.received.length = 0;
      const created = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url, events: ['user.created'] });
      const hook = created.body.id as string;
      receiver.status = 500;
      t.clock.advance(1000);
      await newUser();
      await runEventsOnce(t.services);
      const deliveries = async () => (await t.admin('GET', `/v1/admin/webhooks/${hook}/deliveries?tenant=default`)).body.deliveries;
      let [delivery] = await deliveries();
      expect(delivery).toMatchObject({ status: 'pending', attempts: 1, last_status_code: 500, last_error: 'answered HTTP 500', next_attempt_at: new Date(t.clock.ms() + 60_000).toISOString() });
      // Not due yet: nothing is sent.
      await runEventsOnce(t.services);
      expect(receiver.received).toHaveLength(1);
      t.clock.advance(60_000);
      await runEventsOnce(t.services);
      expect(receiver.received).toHaveLength(2);
      [delivery] = await deliveries();
      expect(delivery).toMatchObject({ status: 'pending', attempts: 2, next_attempt_at: new Date(t.clock.ms() + 5 * 60_000).toISOString() });
      // The receiver is fixed; the retry after 5 minutes delivers it, the same event id again.
      receiver.status = 204;
      t.clock.advance(5 * 60_000);
      await runEventsOnce(t.services);
      [delivery] = await deliveries();
      expect(delivery).toMatchObject({ status: 'delivered', attempts: 3, last_status_code: 204, last_error: null, next_attempt_at: null });
      expect(new Set(receiver.received.map((r) => r.event.id)).size).toBe(1);

      // Redelivery on request: sent once more, audited.
      const again = await t.admin('POST', `/v1/admin/webhooks/${hook}/deliveries/${delivery.id}/redeliver?tenant=default`);
      expect(again.status).toBe(202);
      expect(again.body).toMatchObject({ id: delivery.id, status: 'pending' });
      await runEventsOnce(t.services);
      expect(receiver.received).toHaveLength(4);
      expect((await deliveries())[0]).toMatchObject({ status: 'delivered', attempts: 4 });
      expect((await t.admin('POST', `/v1/admin/webhooks/${hook}/deliveries/00000000-0000-0000-0000-000000000000/redeliver?tenant=default`)).status).toBe(404);
      const audit = await t.services.db.selectFrom('audit_events').select(['action', 'target']).where('action', 'like', 'webhook.%').execute();
      expect(audit).toContainEqual({ action: 'webhook.redelivery_requested', target: hook });

      // An endpoint that never answers well: failed after the last attempt, no more tries.
      receiver.status = 503;
      t.clock.advance(1000);
      await newUser();
      for (let i = 0; i < WEBHOOK_MAX_ATTEMPTS + 2; i++) {
        await runEventsOnce(t.services);
        t.clock.advance(24 * 3_600_000);
      }
      [delivery] = await deliveries();
      expect(delivery).toMatchObject({ status: 'failed', attempts: WEBHOOK_MAX_ATTEMPTS, last_status_code: 503, next_attempt_at: null });
      receiver.status = 200;
      expect((await t.admin('DELETE', `/v1/admin/webhooks/${hook}?tenant=default`)).status).toBe(204);
      expect((await t.admin('GET', `/v1/admin/webhooks/${hook}/deliveries?tenant=default`)).status).toBe(404);
    });

    it('bad input is refused with a 400 naming the field, and nothing is stored', async () => {
      const refused = async (body: Record<string, unknown>, field: string) => {
        const answer = await t.admin('POST', '/v1/admin/webhooks?tenant=default', body);
        expect(answer.status).toBe(400);
        expect(answer.body.error.message).toMatch(new RegExp(`^${field}`));
      };
      await refused({ url: 'not a url' }, 'url');
      await refused({ url: 'ftp://hooks.contoso.com/x' }, 'url');
      await refused({ url: 'https://user:pw@hooks.contoso.com/x' }, 'url');
      await refused({ url: receiver.url, events: [] }, 'events');
      await refused({ url: receiver.url, events: ['no.such_event'] }, 'events');
      await refused({ url: receiver.url, events: ['nothing.*'] }, 'events');
      await refused({ url: receiver.url, description: 'two\nlines' }, 'description');
      await refused({ url: receiver.url, secret: 'mine' }, 'body|secret|/secret');
      expect((await t.admin('GET', '/v1/admin/webhooks?tenant=default')).body.webhooks).toEqual([]);
      expect((await t.admin('GET', '/v1/admin/webhooks/nope/deliveries?tenant=default')).status).toBe(404);
      expect((await t.admin('DELETE', '/v1/admin/webhooks/nope?tenant=default')).status).toBe(404);
    });

    it('with no endpoint and nothing to e-mail, a pass opens no write transaction and the cursor moves lazily; an endpoint added later gets only its own events, none lost', async () => {
      expect((await t.admin('GET', '/v1/admin/webhooks?tenant=default')).body.webhooks).toEqual([]);
      const head = async () => Number((await t.services.db.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow()).seq);
      // The cursor was moved long ago: the next pass moves it (a write), and stamps the time.
      t.clock.advance(IDLE_CURSOR_MS);
      await newUser();
      await runEventsOnce(t.services);
      expect(await dispatcherCursor(t.services.db)).toBe(await head());

      // Events nobody subscribes to (no endpoint, no e-mail): passes read only.
      for (let i = 0; i < 3; i++) await newUser();
      const before = await dispatcherCursor(t.services.db);
      expect(await head()).toBe(before + 3);
      const transaction = vi.spyOn(t.services.db, 'transaction');
      try {
        expect(await fanOutEvents(t.services)).toBe(0);
        expect(await fanOutEvents(t.services)).toBe(0);
        expect((await runEventsOnce(t.services)).events).toBe(0);
        expect(transaction).not.toHaveBeenCalled();
      } finally {
        transaction.mockRestore();
      }
      expect(await dispatcherCursor(t.services.db)).toBe(before);

      // An endpoint added now, the cursor behind it: it receives its own creation, not the three users before.
      receiver.received.length = 0;
      const created = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url, events: ['*'] });
      expect(created.status).toBe(201);
      const handedOut = vi.spyOn(t.services.db, 'transaction');
      try {
        await runEventsOnce(t.services);
        // With an endpoint, the pass writes (and the spy above did watch the right handle).
        expect(handedOut).toHaveBeenCalled();
      } finally {
        handedOut.mockRestore();
      }
      expect(await dispatcherCursor(t.services.db)).toBe(await head());
      expect(receiver.received.map((r) => r.event.type)).toEqual(['webhook.created']);
      const after = await newUser();
      await runEventsOnce(t.services);
      expect(receiver.received.map((r) => r.event.type)).toEqual(['webhook.created', 'user.created']);
      expect(receiver.received[1]?.event.data).toMatchObject({ username: after });
      expect((await t.admin('DELETE', `/v1/admin/webhooks/${created.body.id}?tenant=default`)).status).toBe(204);

      // An event that queues an e-mail is handed out at once, however recently the cursor moved.
      await runEventsOnce(t.services);
      const cursor = await dispatcherCursor(t.services.db);
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'turned-on@contoso.com', email: 'turned-on@contoso.com' })).status).toBe(201);
      expect((await t.admin('PUT', '/v1/admin/users/turned-on@contoso.com/state?tenant=default', { state: 'enabled' })).status).toBe(200);
      expect(await fanOutEvents(t.services)).toBeGreaterThanOrEqual(2);
      expect(await dispatcherCursor(t.services.db)).toBe(await head());
      expect(await head()).toBeGreaterThan(cursor);
      const queued = await t.services.db.selectFrom('notifications').select(['kind', 'recipient']).where('kind', '=', 'mfa_enabled').execute();
      expect(queued).toEqual([{ kind: 'mfa_enabled', recipient: 'turned-on@contoso.com' }]);

      // And events nobody subscribes to move the cursor once IDLE_CURSOR_MS has passed.
      await newUser();
      expect(await fanOutEvents(t.services)).toBe(0);
      t.clock.advance(IDLE_CURSOR_MS);
      expect(await fanOutEvents(t.services)).toBe(1);
      expect(await dispatcherCursor(t.services.db)).toBe(await head());
    });

    it('a claim respects back-off: a second server holding the row as it was read before a failed attempt does not send it again', async () => {
      receiver.received.length = 0;
      const created = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url, events: ['user.created'] });
      receiver.status = 500;
      t.clock.advance(1000);
      await newUser();
      await fanOutEvents(t.services);
      // Both servers read the delivery as due; the first tries it, and it fails.
      const stale = await t.services.db.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', created.body.id).executeTakeFirstOrThrow();
      expect(stale.attempts).toBe(0);
      await sendDueWebhooks(t.services);
      expect(receiver.received).toHaveLength(1);
      // The second claims with what it read: refused (attempts moved on, and it is not due for a minute).
      expect(await attemptDelivery(t.services, stale, t.clock.ms())).toBe(false);
      const fresh = await t.services.db.selectFrom('webhook_deliveries').selectAll().where('id', '=', stale.id).executeTakeFirstOrThrow();
      // Read afresh but before it is due: refused too.
      expect(await attemptDelivery(t.services, fresh, t.clock.ms())).toBe(false);
      expect(receiver.received).toHaveLength(1);
      expect(await t.services.db.selectFrom('webhook_deliveries').select(['attempts', 'next_attempt_at']).where('id', '=', stale.id).executeTakeFirstOrThrow()).toEqual({ attempts: 1, next_attempt_at: t.clock.ms() + 60_000 });
      // When it is due, it is sent once.
      receiver.status = 200;
      t.clock.advance(60_000);
      await Promise.all([sendDueWebhooks(t.services), sendDueWebhooks(t.services)]);
      expect(receiver.received).toHaveLength(2);
      expect((await t.admin('DELETE', `/v1/admin/webhooks/${created.body.id}?tenant=default`)).status).toBe(204);
    });

    it('the dispatcher coalesces wake-ups: a burst of commits gets a few passes, at most one per 100 ms, not one per commit', async () => {
      await runEventsOnce(t.services);
      const selects = vi.spyOn(t.services.db, 'selectFrom');
      const passes = () => selects.mock.calls.filter(([table]) => table === 'event_cursors').length;
      const dispatcher = startEventDispatcher(t.services, { intervalMs: 60_000 });
      const started = Date.now();
      try {
        for (let i = 0; i < 40; i++) await t.services.audit({ tenantId: t.tenant.id, actor: 'system', action: 'settings.updated', target: null });
        await new Promise((r) => setTimeout(r, 250));
        await dispatcher.stop();
        const elapsed = Date.now() - started;
        expect(passes()).toBeGreaterThan(0);
        expect(passes()).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1);
      } finally {
        await dispatcher.stop();
        selects.mockRestore();
      }
    });

    it('group commit tells subscribers of committed records only (a piece of work that failed is not told)', async () => {
      const seen: string[] = [];
      const unsubscribe = t.services.writes.subscribe((records) => seen.push(...records.map((r) => r.entry.action)));
      try {
        const ok = t.services.writes.run(async (_db, record) => {
          record({ tenantId: t.tenant.id, actor: 'system', action: 'settings.updated', target: null });
          return Promise.resolve();
        });
        const failed = t.services.writes.run(async (_db, record) => {
          record({ tenantId: t.tenant.id, actor: 'system', action: 'tenant.deleted', target: null });
          return Promise.reject(new Error('undone'));
        });
        // Watched at once: on PostgreSQL it may fail before `ok` commits (no unhandled rejection meanwhile).
        const refused = expect(failed).rejects.toThrow('undone');
        await ok;
        await refused;
        await t.services.audit({ tenantId: t.tenant.id, actor: 'system', action: 'greeting.set', target: null });
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setImmediate(r));
        expect(seen).toEqual(['settings.updated', 'greeting.set']);
      } finally {
        unsubscribe();
      }
      await t.services.audit({ tenantId: t.tenant.id, actor: 'system', action: 'greeting.set', target: null });
      await new Promise((r) => setImmediate(r));
      expect(seen).toHaveLength(2);
    });

    it('the dispatcher of `serve` wakes on a commit and delivers within moments; events are handed out once even by passes racing', async () => {
      receiver.received.length = 0;
      const created = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url, events: ['user.created'] });
      await runEventsOnce(t.services);
      // A long interval: only the commit's wake-up can explain a prompt delivery.
      const dispatcher = startEventDispatcher(t.services, { intervalMs: 60_000 });
      try {
        await newUser();
        const deadline = Date.now() + 10_000;
        while (receiver.received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        expect(receiver.received.map((r) => r.event.type)).toEqual(['user.created']);
      } finally {
        await dispatcher.stop();
      }
      receiver.received.length = 0;
      for (let i = 0; i < 5; i++) await newUser();
      const before = await dispatcherCursor(t.services.db);
      const passes = await Promise.all([fanOutEvents(t.services), fanOutEvents(t.services), fanOutEvents(t.services)]);
      // The five events were read by exactly one of the racing passes.
      expect(passes.reduce((a, b) => a + b, 0)).toBe(5);
      expect(await dispatcherCursor(t.services.db)).toBe(before + 5);
      await Promise.all([runEventsOnce(t.services), runEventsOnce(t.services)]);
      expect(receiver.received).toHaveLength(5);
      expect(new Set(receiver.received.map((r) => r.event.id)).size).toBe(5);
      expect((await t.admin('DELETE', `/v1/admin/webhooks/${created.body.id}?tenant=default`)).status).toBe(204);
    });
  });
}

/** Every `action: '…'` literal in the source (record({action}), services.audit), with where it is. */
function recordedActions(): { action: string; file: string }[] {
  const found: { action: string; file: string }[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8');
        // `action: 'a.b'` and `action: x ? 'a.b' : 'c.d'`: the literals up to the end of the value.
        for (const match of text.matchAll(/\baction:\s*([^,}\n]*)/g)) {
          for (const literal of (match[1] ?? '').matchAll(/'([a-z_]+\.[a-z_.]+)'/g)) found.push({ action: literal[1] ?? '', file: path });
        }
      }
    }
  };
  walk(fileURLToPath(new URL('../../src', import.meta.url)));
  return found;
}

describe('event names', () => {
  it('every action the source records is a known event name (core/events.ts), so webhook filters can name it', () => {
    const actions = recordedActions();
    expect(actions.length).toBeGreaterThan(50);
    expect(actions.filter((a) => !isEventName(a.action))).toEqual([]);
    for (const name of ['enrollment.completed', 'policy.created', 'named_location.deleted', 'phone.preregistered', 'registration_campaign.snoozed', 'usage.seats_within_limit']) expect(EVENT_NAMES).toContain(name);
  });
});
