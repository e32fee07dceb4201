import type { LookupAddress } from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEventsOnce } from '../../src/flows/events.js';
import { addressAllowed, checkWebhookUrl, guardedLookup, signWebhook } from '../../src/flows/webhooks.js';
import { startReceiver, verifySignature, type Receiver } from '../support/webhook-receiver.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';

/**
 * Webhooks as an attacker meets them: endpoints aimed at the server's own network (SSRF), at
 * first and at delivery; forged or altered deliveries; another tenant's endpoints and events;
 * the signing secret shown once, stored sealed, never logged.
 */
const STRICT = { allowHttp: false, allowPrivate: false };

describe('webhook URLs (SSRF)', () => {
  it('only https:// URLs of public hosts are accepted, each refusal naming the url field', () => {
    for (const url of [
      'http://hooks.contoso.com/x',
      'https://127.0.0.1/x',
      'https://127.1.2.3:8443/x',
      'https://10.1.2.3/x',
      'https://172.16.0.1/x',
      'https://192.168.1.10/x',
      'https://169.254.169.254/latest/meta-data/',
      'https://100.64.0.1/x',
      'https://0.0.0.0/x',
      'https://[::1]/x',
      'https://[::ffff:127.0.0.1]/x',
      'https://[fd00::1]/x',
      'https://[fe80::1]/x',
      // IPv4-compatible IPv6 (::/96, which ipaddr.js calls unicast): 127.0.0.1, 10.0.0.1, and even a public one.
      'https://[::7f00:1]/x',
      'https://[::a00:1]/x',
      'https://[::5db8:d822]/x',
      'https://[::]/x',
      // IPv4-mapped, private inside.
      'https://[::ffff:10.0.0.1]/x',
      'https://[::ffff:169.254.169.254]/x',
      // NAT64 (64:ff9b::/96, 64:ff9b:1::/48): a gateway forwards to the IPv4 address inside.
      'https://[64:ff9b::a00:1]/x',
      'https://[64:ff9b::7f00:1]/x',
      'https://[64:ff9b::a9fe:a9fe]/x',
      'https://[64:ff9b:1::a00:1]/x',
      // 6to4 and Teredo carry IPv4 addresses too.
      'https://[2002:a00:1::1]/x',
      'https://[2001::1]/x',
      'https://localhost/x',
      'https://api.localhost/x',
      'https://metadata.google.internal/x',
      'https://intranet/x',
      'https://printer.local/x',
      'https://2130706433/x',
      'https://0x7f000001/x',
      'file:///etc/passwd',
      'gopher://hooks.contoso.com/',
    ]) {
      expect(() => checkWebhookUrl(url, STRICT), url).toThrow(/^url: /);
    }
    expect(checkWebhookUrl('https://hooks.contoso.com/countersign?x=1', STRICT)).toBe('https://hooks.contoso.com/countersign?x=1');
    expect(checkWebhookUrl('https://93.184.216.34/x', STRICT)).toBe('https://93.184.216.34/x');
    // Documentation ranges are reserved, not public.
    expect(() => checkWebhookUrl('https://203.0.113.10/x', STRICT)).toThrow(/^url: /);
    expect(checkWebhookUrl('http://127.0.0.1:8080/x', { allowHttp: true, allowPrivate: true })).toBe('http://127.0.0.1:8080/x');
  });

  it('a host name is checked again when it is resolved for each delivery (DNS rebinding), and the checked address is the one connected to', async () => {
    const resolveTo = (address: string) =>
      ((_host: string, _options: unknown, callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => callback(null, [{ address, family: address.includes(':') ? 6 : 4 }])) as never;
    const ask = (address: string) =>
      new Promise<{ error: Error | null; address: string }>((resolve) => {
        guardedLookup(STRICT, resolveTo(address))('hooks.contoso.com', { family: 0 }, (error, result) => resolve({ error, address: result as string }));
      });
    expect(await ask('93.184.216.34')).toEqual({ error: null, address: '93.184.216.34' });
    for (const internal of ['127.0.0.1', '10.0.0.7', '169.254.169.254', '::1', '::ffff:192.168.0.1', 'fd12::1', '::7f00:1', '::a9fe:a9fe', '64:ff9b::a00:7', '64:ff9b::7f00:1']) {
      const answer = await ask(internal);
      expect(answer.error?.message, internal).toMatch(/loopback, private or reserved/);
    }
    expect(addressAllowed('127.0.0.1', { allowHttp: false, allowPrivate: true })).toBe(true);
    expect(addressAllowed('2606:4700::1111', STRICT)).toBe(true);
    expect(addressAllowed('::ffff:93.184.216.34', STRICT)).toBe(true);
  });
});

for (const dialect of DIALECTS) {
  describe(`webhooks (${dialect}): secrets, signatures, tenants`, () => {
    let t: TestApp;
    let strict: TestApp;
    let receiver: Receiver;

    beforeAll(async () => {
      t = await createTestApp({ dialect, config: { webhooks: { allow_http: true, allow_private: true } } });
      strict = await createTestApp({ dialect });
      receiver = await startReceiver();
    });
    afterAll(async () => {
      await receiver.close();
      await strict.close();
      await t.close();
    });

    it('SSRF: the default configuration refuses loopback and http:// endpoints (400, nothing stored), and refuses to deliver to one found in the store', async () => {
      for (const url of [receiver.url, receiver.url.replace('http:', 'https:'), 'https://[::1]:9/x', 'https://169.254.169.254/latest/meta-data/']) {
        const answer = await strict.admin('POST', '/v1/admin/webhooks?tenant=default', { url });
        expect(answer.status, url).toBe(400);
        expect(answer.body.error.message).toMatch(/^url: /);
      }
      expect((await strict.admin('GET', '/v1/admin/webhooks?tenant=default')).body.webhooks).toEqual([]);
      // A row written behind the API's back (or added before the configuration changed) is refused when sent.
      const added = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url.replace('http:', 'https:'), events: ['user.created'] });
      const row = await t.services.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', added.body.id).executeTakeFirstOrThrow();
      await strict.services.db.insertInto('webhook_endpoints').values({ ...row, tenant_id: strict.tenant.id, secret_sealed: (await strict.services.secrets.seal(Buffer.from('whsec_x'), `webhook:${row.id}`)).sealed, key_id: (await strict.services.db.selectFrom('data_keys').select('id').executeTakeFirstOrThrow()).id, from_seq: 0 }).execute();
      await t.admin('DELETE', `/v1/admin/webhooks/${row.id}?tenant=default`);
      receiver.received.length = 0;
      expect((await strict.admin('POST', '/v1/admin/users?tenant=default', { username: 'ssrf@contoso.com' })).status).toBe(201);
      await runEventsOnce(strict.services);
      expect(receiver.received).toEqual([]);
      const [delivery] = (await strict.admin('GET', `/v1/admin/webhooks/${row.id}/deliveries?tenant=default`)).body.deliveries;
      expect(delivery).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null, last_error: expect.stringMatching(/127\.0\.0\.1 is a loopback, private or reserved address/) });
    });

    it('OTP-10: the signing secret is shown once, stored only sealed, never listed or logged; each endpoint has its own', async () => {
      const one = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url, events: ['user.created'] });
      const two = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url, events: ['user.created'] });
      const secret = one.body.secret as string;
      expect(secret).not.toBe(two.body.secret);
      const listed = JSON.stringify((await t.admin('GET', '/v1/admin/webhooks?tenant=default')).body);
      expect(listed).not.toContain('whsec_');
      expect(listed).not.toContain('secret');
      const rows = await t.services.db.selectFrom('webhook_endpoints').selectAll().execute();
      expect(JSON.stringify(rows)).not.toContain(secret);
      expect(JSON.stringify(rows)).not.toContain(secret.slice(6));
      receiver.received.length = 0;
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'sealed@contoso.com' })).status).toBe(201);
      await runEventsOnce(t.services);
      expect(receiver.received).toHaveLength(2);
      const deliveries = JSON.stringify((await t.admin('GET', `/v1/admin/webhooks/${one.body.id}/deliveries?tenant=default`)).body);
      expect(deliveries).not.toContain(secret);
      expect(t.logs.join('\n')).not.toContain(secret.slice(6));
      const audit = await t.services.db.selectFrom('audit_events').select('detail').execute();
      expect(JSON.stringify(audit)).not.toContain(secret.slice(6));
      // Each delivery verifies with its own endpoint's secret only.
      const mine = receiver.received.filter((r) => verifySignature(secret, r.headers['countersign-signature'] as string, r.body, Math.floor(t.clock.ms() / 1000)));
      expect(mine).toHaveLength(1);
      await t.admin('DELETE', `/v1/admin/webhooks/${one.body.id}?tenant=default`);
      await t.admin('DELETE', `/v1/admin/webhooks/${two.body.id}?tenant=default`);
    });

    it('a receiver URL’s path and query (often a credential) are in the answer that adds it only: listings mask them, audit records and events carry the origin', async () => {
      const watcher = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url, events: ['webhook.*'] });
      const origin = new URL(receiver.url).origin;
      const secretUrl = `${origin}/services/T0001/B0002/sEcReTpAtH?token=qUeRyToKeN`;
      const added = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: secretUrl, events: ['fraud.reported'] });
      expect(added.status).toBe(201);
      expect(added.body.url).toBe(secretUrl);
      const listed = (await t.admin('GET', '/v1/admin/webhooks?tenant=default')).body.webhooks as { id: string; url: string }[];
      expect(listed.find((w) => w.id === added.body.id)?.url).toBe(`${origin}/…`);
      expect(JSON.stringify(listed)).not.toMatch(/sEcReT|qUeRy|T0001/);
      receiver.received.length = 0;
      expect((await t.admin('DELETE', `/v1/admin/webhooks/${added.body.id}?tenant=default`)).status).toBe(204);
      await runEventsOnce(t.services);
      const events = receiver.received.map((r) => r.event).filter((e) => e.target === added.body.id);
      expect(events.map((e) => e.type).sort()).toEqual(['webhook.created', 'webhook.deleted']);
      for (const event of events) expect(event.data).toMatchObject({ webhook: added.body.id, origin });
      expect(JSON.stringify(receiver.received.map((r) => r.body))).not.toMatch(/sEcReT|qUeRy|T0001/);
      const audit = await t.services.db.selectFrom('audit_events').select('detail').where('target', '=', added.body.id).execute();
      expect(audit).toHaveLength(2);
      expect(JSON.stringify(audit)).not.toMatch(/sEcReT|qUeRy|T0001/);
      await t.admin('DELETE', `/v1/admin/webhooks/${watcher.body.id}?tenant=default`);
    });

    it('the signature binds the body and the time: an altered body, another timestamp or an old delivery replayed does not verify', async () => {
      const created = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url, events: ['user.deleted'] });
      const secret = created.body.secret as string;
      receiver.received.length = 0;
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'gone@contoso.com' })).status).toBe(201);
      expect((await t.admin('DELETE', '/v1/admin/users/gone@contoso.com?tenant=default')).status).toBe(204);
      await runEventsOnce(t.services);
      const [delivery] = receiver.received;
      if (delivery === undefined) throw new Error('nothing delivered');
      const header = delivery.headers['countersign-signature'] as string;
      const now = Math.floor(t.clock.ms() / 1000);
      expect(header).toBe(signWebhook(secret, delivery.body, now));
      expect(verifySignature(secret, header, delivery.body, now)).toBe(true);
      expect(verifySignature(secret, header, delivery.body.replace('gone@contoso.com', 'kept@contoso.com'), now)).toBe(false);
      expect(verifySignature(secret, header.replace(`t=${now}`, `t=${now + 1}`), delivery.body, now + 1)).toBe(false);
      expect(verifySignature(secret, header, delivery.body, now + 301)).toBe(false);
      await t.admin('DELETE', `/v1/admin/webhooks/${created.body.id}?tenant=default`);
    });

    it('another tenant’s administrator sees the endpoints as absent (404), and no tenant receives another’s events', async () => {
      const mine = await t.admin('POST', '/v1/admin/webhooks?tenant=default', { url: receiver.url, events: ['*'] });
      expect((await t.admin('POST', '/v1/admin/tenants', { name: 'fabrikam' })).status).toBe(201);
      const adminB = (await t.admin('POST', '/v1/admin/admin-keys?tenant=fabrikam', { name: 'fabrikam admin' })).body.api_key as string;
      const as = async (method: 'GET' | 'POST' | 'DELETE' | 'PUT', url: string, body?: Record<string, unknown>) => {
        const response = await t.app.inject({ method, url, headers: { authorization: `Bearer ${adminB}` }, ...(body === undefined ? {} : { payload: body }) });
        return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
      };
      for (const tenant of ['default', 'fabrikam']) {
        expect((await as('DELETE', `/v1/admin/webhooks/${mine.body.id}?tenant=${tenant}`)).status).toBe(404);
        expect((await as('GET', `/v1/admin/webhooks/${mine.body.id}/deliveries?tenant=${tenant}`)).status).toBe(404);
        expect((await as('POST', `/v1/admin/webhooks/${mine.body.id}/deliveries/x/redeliver?tenant=${tenant}`)).status).toBe(404);
        expect((await as('PUT', `/v1/admin/email-templates/mfa_enabled?tenant=${tenant}`, { subject: 'x', body: 'y' })).status).toBe(tenant === 'default' ? 404 : 200);
      }
      expect((await as('GET', '/v1/admin/webhooks?tenant=default')).status).toBe(404);
      expect((await as('GET', '/v1/admin/webhooks?tenant=fabrikam')).body.webhooks).toEqual([]);
      const theirs = await as('POST', '/v1/admin/webhooks?tenant=fabrikam', { url: receiver.url, events: ['*'] });
      expect(theirs.status).toBe(201);
      receiver.received.length = 0;
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'mine@contoso.com' })).status).toBe(201);
      expect((await as('POST', '/v1/admin/users?tenant=fabrikam', { username: 'theirs@fabrikam.com' })).status).toBe(201);
      await runEventsOnce(t.services);
      // Deliveries go out side by side: in event order here, by the number in the event id.
      const byTenant = [...receiver.received].sort((a, b) => Number(a.event.id.slice(4)) - Number(b.event.id.slice(4))).map((r) => [r.headers['countersign-delivery'], r.event.tenant_id, r.event.type]);
      const fabrikam = (await t.admin('GET', '/v1/admin/tenants')).body.tenants.find((x: { name: string }) => x.name === 'fabrikam').id as string;
      const theirLog = (await as('GET', `/v1/admin/webhooks/${theirs.body.id}/deliveries?tenant=fabrikam`)).body.deliveries as { id: string }[];
      for (const [delivery, tenant] of byTenant) {
        const toThem = theirLog.some((d) => d.id === delivery);
        expect(tenant).toBe(toThem ? fabrikam : t.tenant.id);
      }
      // The endpoint's own creation is its first event.
      expect(byTenant.filter(([, tenant]) => tenant === fabrikam).map(([, , type]) => type)).toEqual(['webhook.created', 'user.created']);
    });
  });
}
