import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { CHROMIUM_AVAILABLE, launchChromium } from '../support/browser.js';
import { createTestApp, fakeClock, type TestApp } from '../support/harness.js';

/**
 * The Countersign Authenticator web app (/authenticator/) in Debian's Chromium, on a phone-sized
 * screen, against a real listening server: activation from the link, a push arriving over the
 * live stream, number matching, approval seen by the waiting application, accounts of several
 * tenants kept across a reload, offline codes with their countdown, and installability.
 *
 * The browser's clock is pinned to the server's settable clock (Playwright's page.clock), so
 * signed timestamps agree and a TOTP step can be moved forward on both sides.
 */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

describe.skipIf(!CHROMIUM_AVAILABLE)('authenticator web app in Chromium', () => {
  let t: TestApp;
  let base: string;
  let closeBrowser: (() => Promise<void>) | undefined;
  let context: BrowserContext;
  let page: Page;
  const clock = fakeClock(Math.floor(Date.now() / 30_000) * 30_000 + 1_000);

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    t = await createTestApp({ clock, config: { publicUrl: base } });
    await t.app.listen({ port, host: '127.0.0.1' });
    const launched = await launchChromium({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    context = launched.context;
    closeBrowser = () => launched.close();
    context.setDefaultTimeout(10_000);
    page = context.pages()[0] ?? (await context.newPage());
    await page.clock.setFixedTime(clock.ms());
  });
  afterAll(async () => {
    await closeBrowser?.();
    t?.app.server.closeAllConnections();
    await t?.close();
  });

  async function activationUrl(username: string, tenant: string, withTotp = false): Promise<string> {
    expect((await t.admin('POST', `/v1/admin/users?tenant=${tenant}`, { username, mfa_state: 'enforced' })).status).toBe(201);
    const started = await t.admin('POST', `/v1/admin/users/${username}/push/activation?tenant=${tenant}`, withTotp ? { with_totp: true } : {});
    expect(started.status).toBe(201);
    expect(started.body.activation_url.startsWith(`${base}/authenticator#activate=`)).toBe(true);
    return started.body.activation_url;
  }

  async function activateInPage(url: string, username: string, tenant: string): Promise<void> {
    await page.goto(url);
    await expect.poll(() => page.url()).toBe(`${base}/authenticator/${new URL(url).hash}`);
    await page.getByRole('heading', { name: 'Activate this authenticator' }).waitFor();
    await page.getByLabel('Name of this device').fill(`Phone for ${tenant}`);
    await page.getByRole('button', { name: 'Activate' }).click();
    await page.getByText(`Activated for ${username} · ${tenant}`).waitFor();
    // The link's code is gone from the address bar once used.
    expect(new URL(page.url()).hash).toBe('');
  }

  it('activates from the link, shows a push from the live stream, and approves it with the number: the waiting sign-in is approved', async () => {
    const url = await activationUrl('adele@contoso.com', 'default');
    await activateInPage(url, 'adele@contoso.com', 'default');
    const account = page.locator('li.account', { hasText: 'adele@contoso.com' });
    await expect.poll(() => account.locator('.link').textContent()).toBe('Receiving requests');
    const devices = await t.admin('GET', '/v1/admin/users/adele@contoso.com/push/devices?tenant=default');
    expect(devices.body.devices).toMatchObject([{ name: 'Phone for default', channel: 'poll' }]);
    // The private key kept in IndexedDB is a CryptoKey no script can export.
    const stored = await page.evaluate(
      () =>
        new Promise<{ extractable: boolean; usages: string[]; curve: string }[]>((resolve, reject) => {
          const open = (globalThis as any).indexedDB.open('countersign-authenticator');
          open.onerror = () => reject(new Error('no database'));
          open.onsuccess = () => {
            const all = open.result.transaction('accounts').objectStore('accounts').getAll();
            all.onsuccess = () => resolve(all.result.map((a: any) => ({ extractable: a.privateKey.extractable, usages: a.privateKey.usages, curve: a.privateKey.algorithm.namedCurve })));
          };
        }),
    );
    expect(stored).toEqual([{ extractable: false, usages: ['sign'], curve: 'P-256' }]);

    const created = await t.api('POST', '/v1/challenges', { username: 'adele@contoso.com', method: 'push', context: { app: 'Contoso VPN', ip: '203.0.113.9' } });
    expect(created.status).toBe(201);
    expect(String(created.body.number)).toMatch(/^\d{2}$/);
    const waiting = fetch(`${base}/v1/challenges/${created.body.id}?wait=20`, { headers: { authorization: `Bearer ${t.appKey}` } });

    const card = page.locator(`article.request[data-request="${created.body.id}"]`);
    await card.waitFor();
    await expect.poll(() => card.locator('h3').textContent()).toBe('Sign in to Contoso VPN?');
    expect(await card.locator('dl').innerText()).toContain('203.0.113.9');
    await card.getByLabel('Number shown on the sign-in screen').fill(String(created.body.number));
    await card.getByRole('button', { name: 'Approve' }).click();
    await page.getByText('Approved. Go back to the sign-in.').waitFor();
    await card.waitFor({ state: 'detached' });

    const answered = await waiting;
    expect(answered.status).toBe(200);
    expect(await answered.json()).toMatchObject({ id: created.body.id, status: 'approved' });
  });

  it('an event confirmation shows its title and detail; a wrong number denies the sign-in', async () => {
    const created = await t.api('POST', '/v1/challenges', { username: 'adele@contoso.com', method: 'push', context: { event: { title: 'Approve payment of €500 to ACME?', detail: 'From account …4711' } } });
    expect(created.status).toBe(201);
    const card = page.locator(`article.request[data-request="${created.body.id}"]`);
    await card.waitFor();
    expect(await card.locator('h3').textContent()).toBe('Approve payment of €500 to ACME?');
    expect(await card.locator('.event-detail').textContent()).toBe('From account …4711');
    // Approving without the number asks for it and sends nothing.
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.getByText('Type the number shown on the sign-in screen, then approve.').waitFor();
    const wrong = created.body.number === 99 ? '98' : '99';
    await card.getByLabel('Number shown on the sign-in screen').fill(wrong);
    await card.getByRole('button', { name: 'Approve' }).click();
    await page.getByText('The sign-in was denied: the number or PIN did not match.').waitFor();
    expect((await t.api('GET', `/v1/challenges/${created.body.id}`)).body).toMatchObject({ status: 'denied' });
  });

  it('in PIN mode asks for the PIN with the number; "It wasn’t me" reports fraud and blocks the user', async () => {
    expect((await t.admin('PUT', '/v1/admin/users/adele@contoso.com/pin?tenant=default', { pin: '2580' })).status).toBe(204);
    expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { push_pin_mode: true, push_limit_per_5_minutes: 10 })).status).toBe(200);
    const created = await t.api('POST', '/v1/challenges', { username: 'adele@contoso.com', method: 'push' });
    const card = page.locator(`article.request[data-request="${created.body.id}"]`);
    await card.waitFor();
    await card.getByLabel('Number shown on the sign-in screen').fill(String(created.body.number));
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.getByText('Type your PIN (4 to 16 digits), then approve.').waitFor();
    await card.getByLabel('Your PIN').fill('2580');
    await card.getByRole('button', { name: 'Approve' }).click();
    await page.getByText('Approved. Go back to the sign-in.').waitFor();
    expect((await t.api('GET', `/v1/challenges/${created.body.id}`)).body).toMatchObject({ status: 'approved' });
    expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { push_pin_mode: false })).status).toBe(200);

    const unwanted = await t.api('POST', '/v1/challenges', { username: 'adele@contoso.com', method: 'push', context: { app: 'Payroll' } });
    const other = page.locator(`article.request[data-request="${unwanted.body.id}"]`);
    await other.waitFor();
    await other.getByRole('button', { name: 'It wasn’t me…' }).click();
    await other.getByText('Deny this sign-in and tell your administrator it was not you?').waitFor();
    await other.getByRole('button', { name: 'Report fraud' }).click();
    await page.getByText('Reported as fraud: the sign-in was denied and your administrator was told.').waitFor();
    expect((await t.api('GET', `/v1/challenges/${unwanted.body.id}`)).body).toMatchObject({ status: 'fraud' });
    expect((await t.api('POST', '/v1/preauth', { username: 'adele@contoso.com' })).body).toMatchObject({ result: 'deny', reason: 'fraud_block' });
    expect((await t.admin('POST', '/v1/admin/users/adele@contoso.com/unblock?tenant=default')).status).toBe(200);
  });

  it('holds accounts of several tenants across a reload, with offline codes and their countdown', async () => {
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'fabrikam' })).status).toBe(201);
    const application = await t.admin('POST', '/v1/admin/applications?tenant=fabrikam', { name: 'fabrikam vpn' });
    expect(application.status).toBe(201);
    const url = await activationUrl('megan@fabrikam.com', 'fabrikam', true);
    await activateInPage(url, 'megan@fabrikam.com', 'fabrikam');

    await page.reload();
    const accounts = page.locator('li.account');
    await expect.poll(() => accounts.count()).toBe(2);
    expect(await page.locator('#account-list').innerText()).toContain('adele@contoso.com');
    const megan = page.locator('li.account', { hasText: 'megan@fabrikam.com' });
    await expect.poll(() => megan.locator('.link').textContent()).toBe('Receiving requests');

    const shown = megan.locator('output.code');
    const digits = async (): Promise<string> => ((await shown.textContent()) ?? '').replace(/\s/g, '');
    await expect.poll(digits).toMatch(/^\d{6}$/);
    const used = await digits();
    // The activation used the current step's code; move both clocks to the next step.
    clock.advance(30_000);
    await page.clock.setFixedTime(clock.ms());
    await expect.poll(digits).not.toBe(used);
    const remaining = await megan.locator('.remaining').textContent();
    expect(remaining).toMatch(/^([1-9]|[12]\d|30) s$/);
    const code = await digits();
    expect(code).toMatch(/^\d{6}$/);
    const verified = await t.app.inject({ method: 'POST', url: '/v1/verify', headers: { authorization: `Bearer ${application.body.api_key}` }, payload: { username: 'megan@fabrikam.com', code } });
    expect(verified.json()).toEqual({ result: 'approved', reason: 'approved' });
  });

  it('a device removed by an administrator says so instead of retrying', async () => {
    const devices = await t.admin('GET', '/v1/admin/users/megan@fabrikam.com/push/devices?tenant=fabrikam');
    expect((await t.admin('DELETE', `/v1/admin/users/megan@fabrikam.com/push/devices/${devices.body.devices[0].id}?tenant=fabrikam`)).status).toBe(204);
    // A push for the removed user's other account nudges nothing; the stream re-checks the device within 5 s.
    const megan = page.locator('li.account', { hasText: 'megan@fabrikam.com' });
    await expect.poll(() => megan.locator('.link').textContent(), { timeout: 15_000 }).toMatch(/^The server refused this authenticator: /);
    await megan.getByRole('button', { name: 'Remove…' }).click();
    await megan.getByRole('button', { name: 'Remove', exact: true }).click();
    await page.getByText('Removed megan@fabrikam.com · fabrikam from this browser.').waitFor();
    await expect.poll(() => page.locator('li.account').count()).toBe(1);
  });

  it('is installable: a manifest, a service worker controlling the page, no installability errors, and the app shell works offline', async () => {
    const manifest = await fetch(`${base}/authenticator/manifest.webmanifest`);
    expect(manifest.headers.get('content-type')).toContain('application/manifest+json');
    expect(await manifest.json()).toMatchObject({ name: 'Countersign Authenticator', display: 'standalone', start_url: './', scope: './' });
    const shell = await fetch(`${base}/authenticator/`);
    expect(shell.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(shell.headers.get('cache-control')).toBe('no-cache');

    const scope = await page.evaluate(async () => (await (globalThis as unknown as { navigator: { serviceWorker: { ready: Promise<{ scope: string }> } } }).navigator.serviceWorker.ready).scope);
    expect(scope).toBe(`${base}/authenticator/`);
    const session = await context.newCDPSession(page);
    const { installabilityErrors } = (await session.send('Page.getInstallabilityErrors')) as { installabilityErrors: { errorId: string }[] };
    expect(installabilityErrors).toEqual([]);

    // Offline, the app still opens from the service worker's cache, with its accounts.
    await page.reload();
    await context.setOffline(true);
    try {
      await page.reload();
      await expect.poll(() => page.locator('li.account').count()).toBe(1);
      expect(await page.locator('li.account').innerText()).toContain('adele@contoso.com');
    } finally {
      await context.setOffline(false);
    }
  });
});
