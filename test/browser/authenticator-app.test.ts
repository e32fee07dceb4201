import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { CHROMIUM_AVAILABLE, launchChromium, openPhoneOnServer, PHONE, type PhoneOnServer } from '../support/browser.js';
import { activateDevice } from '../support/device.js';
import { fakeClock, type TestApp } from '../support/harness.js';

/**
 * The Countersign Authenticator web app (/authenticator/) in Debian's Chromium, on a phone-sized
 * screen, against a real listening server: activation from the link (opened, typed into an open
 * tab, or pasted), a push arriving over the live stream, number matching, approval seen by the
 * waiting application, requests answered elsewhere, the live link's health, a wrong device
 * clock, accounts of several tenants kept across a reload, offline codes with their countdown,
 * and installability (offline from the first visit on).
 *
 * The browser's clock is pinned to the server's settable clock (Playwright's page.clock), so
 * signed timestamps agree and a TOTP step can be moved forward on both sides; the server's
 * `Date` header, from which the app learns the server's time, tells that clock too.
 */
describe.skipIf(!CHROMIUM_AVAILABLE)('authenticator web app in Chromium', () => {
  // The tests share one server, browser profile and page, and run in this order:
  // - the first activates adele@contoso.com (default tenant) in the page; every later test uses
  //   that account and leaves it receiving requests (link "Receiving requests");
  // - the answered-elsewhere test activates a second authenticator of adele's outside the page;
  // - the tenants test adds megan@fabrikam.com to the page, and the next test removes it again;
  // - the installability test expects adele's account alone in the page (it makes its own
  //   fresh browser profile for the first-visit check).
  let t: TestApp;
  let base: string;
  let context: BrowserContext;
  let page: Page;
  let session: PhoneOnServer | undefined;
  const clock = fakeClock(Math.floor(Date.now() / 30_000) * 30_000 + 1_000);

  beforeAll(async () => {
    session = await openPhoneOnServer(clock);
    ({ t, base, context, page } = session);
  });
  afterAll(async () => {
    await session?.close();
  });

  /** expect.poll waits 1 s by default; a reconnect, a backoff or the service worker's caching may take a few. */
  const soon = { timeout: 10_000 };
  const adeleLink = () => page.locator('li.account', { hasText: 'adele@contoso.com' }).locator('.link');
  const goOnline = () => page.evaluate(() => (globalThis as any).dispatchEvent(new Event('online')));

  /** A new user's activation link, as the server would write it with its public URL set to `base`. */
  async function activationUrl(username: string, tenant: string, withTotp = false): Promise<string> {
    expect((await t.admin('POST', `/v1/admin/users?tenant=${tenant}`, { username, mfa_state: 'enforced' })).status).toBe(201);
    const started = await t.admin('POST', `/v1/admin/users/${username}/push/activation?tenant=${tenant}`, withTotp ? { with_totp: true } : {});
    expect(started.status).toBe(201);
    expect(started.body.activation_url.endsWith(`/authenticator#activate=${started.body.activation_code}`)).toBe(true);
    return `${base}/authenticator#activate=${started.body.activation_code}`;
  }

  async function activateInPage(url: string, username: string, tenant: string): Promise<void> {
    await page.goto(url);
    await expect.poll(() => page.url()).toBe(`${base}/authenticator/${new URL(url).hash}`);
    await page.getByRole('heading', { name: 'Activate this authenticator' }).waitFor();
    // The page names the account the link is for before anything is used.
    await page.getByText(`For ${username} · ${tenant}`).waitFor();
    await page.getByLabel('Name of this device').fill(`Phone for ${tenant}`);
    await page.getByRole('button', { name: 'Activate' }).click();
    await page.getByText(`Activated for ${username} · ${tenant}`).waitFor();
    // The link's code is gone from the address bar once used.
    expect(new URL(page.url()).hash).toBe('');
  }

  it('activates from the link, shows a push from the live stream, and approves it with the number: the waiting sign-in is approved', async () => {
    const url = await activationUrl('adele@contoso.com', 'default');
    await activateInPage(url, 'adele@contoso.com', 'default');
    // Opened again, the used link says so at once, without a form that would fail.
    await page.goto(url);
    await page.getByText('This activation link was already used or has expired. Ask your administrator (or the sign-in portal) for a new one.').waitFor();
    expect(await page.locator('#activate-form').isHidden()).toBe(true);
    await page.goto(`${base}/authenticator/`);
    const account = page.locator('li.account', { hasText: 'adele@contoso.com' });
    await expect.poll(() => account.locator('.link').textContent(), soon).toBe('Receiving requests');
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

  it('an event confirmation shows its title and detail, without taking the focus; a wrong number denies the sign-in', async () => {
    // Whatever the user is on keeps the focus when a request arrives.
    await page.locator('li.account', { hasText: 'adele@contoso.com' }).getByRole('button', { name: 'Remove…' }).focus();
    const created = await t.api('POST', '/v1/challenges', { username: 'adele@contoso.com', method: 'push', context: { event: { title: 'Approve payment of €500 to ACME?', detail: 'From account …4711' } } });
    expect(created.status).toBe(201);
    const card = page.locator(`article.request[data-request="${created.body.id}"]`);
    await card.waitFor();
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.textContent)).toBe('Remove…');
    expect(await card.locator('h3').textContent()).toBe('Approve payment of €500 to ACME?');
    expect(await card.locator('.event-detail').textContent()).toBe('From account …4711');
    // Approving without the number asks for it and sends nothing.
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.getByText('Type the number shown on the sign-in screen, then approve.').waitFor();
    const wrong = created.body.number === 99 ? '98' : '99';
    await card.getByLabel('Number shown on the sign-in screen').fill(wrong);
    await card.getByRole('button', { name: 'Approve' }).click();
    await page.getByText('The sign-in was denied: the number you typed was not the one on the sign-in screen.').waitFor();
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

  it('a request answered on another device says so when answered here, and no stale event or poll brings its card back', async () => {
    // adele's second authenticator, played here.
    const other = await activateDevice(t, 'adele@contoso.com');
    const created = await t.api('POST', '/v1/challenges', { username: 'adele@contoso.com', method: 'push', context: { app: 'Intranet' } });
    expect(created.status).toBe(201);
    const card = page.locator(`article.request[data-request="${created.body.id}"]`);
    await card.waitFor();
    // From now on the page hears only the past: its stream and /pending keep listing the request
    // (a late event, or another account of the same user that has not heard yet).
    const stale = await other.pending();
    expect(stale.body.requests.map((r: { id: string }) => r.id)).toContain(created.body.id);
    let streams = 0;
    let polls = 0;
    await page.route('**/v1/authenticator/stream', (route) => {
      streams += 1;
      return route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: `event: pending\ndata: ${JSON.stringify(stale.body)}\n\n` });
    });
    await page.route('**/v1/authenticator/pending', (route) => {
      polls += 1;
      return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(stale.body) });
    });
    try {
      await goOnline(); // drops the live stream: the next one is the stale one
      await expect.poll(() => streams, soon).toBeGreaterThan(0);
      expect((await other.answer(created.body.id, 'deny')).body).toMatchObject({ status: 'denied' });
      await card.getByLabel('Number shown on the sign-in screen').fill(String(created.body.number));
      await card.getByRole('button', { name: 'Approve' }).click();
      await page.getByText('That request was already answered or has expired.').waitFor();
      await card.waitFor({ state: 'detached' });
      const [streamsBefore, pollsBefore] = [streams, polls];
      await expect.poll(() => streams > streamsBefore && polls > pollsBefore, { timeout: 20_000 }).toBe(true);
      await page.waitForTimeout(300);
      expect(await card.count()).toBe(0);
    } finally {
      await page.unroute('**/v1/authenticator/stream');
      await page.unroute('**/v1/authenticator/pending');
    }
    await goOnline();
    await expect.poll(() => adeleLink().textContent(), soon).toBe('Receiving requests');
    expect(await card.count()).toBe(0);
    expect((await t.api('GET', `/v1/challenges/${created.body.id}`)).body).toMatchObject({ status: 'denied' });
  });

  it('holds accounts of several tenants across a reload, with offline codes and their countdown', async () => {
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'fabrikam' })).status).toBe(201);
    const application = await t.admin('POST', '/v1/admin/applications?tenant=fabrikam', { name: 'fabrikam vpn' });
    expect(application.status).toBe(201);
    const url = await activationUrl('megan@fabrikam.com', 'fabrikam', true);
    const heading = page.getByRole('heading', { name: 'Activate this authenticator' });
    // A link put into the address bar of the open app changes only the fragment: the form opens anyway.
    await page.evaluate((hash) => ((globalThis as any).location.hash = hash), new URL(url).hash);
    await heading.waitFor();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await heading.waitFor({ state: 'hidden' });
    expect(new URL(page.url()).hash).toBe('');
    // "Add an account" (the way in for an app on an iPhone's home screen): a link of another server is explained, not used.
    await page.getByText('Add an account', { exact: true }).click();
    const pasted = page.getByLabel('Activation link');
    await pasted.fill('https://mfa.example.org/authenticator#activate=AAAAAAAAAAAAAAAAAAAAAA');
    await page.getByRole('button', { name: 'Use this link' }).click();
    await page.getByText('That link is for another Countersign server (https://mfa.example.org/authenticator/)', { exact: false }).waitFor();
    await heading.waitFor({ state: 'hidden' });
    await pasted.fill(url);
    await page.getByRole('button', { name: 'Use this link' }).click();
    await heading.waitFor();
    await page.getByLabel('Name of this device').fill('Phone for fabrikam');
    await page.getByRole('button', { name: 'Activate' }).click();
    await page.getByText('Activated for megan@fabrikam.com · fabrikam').waitFor();

    await page.reload();
    const accounts = page.locator('li.account');
    await expect.poll(() => accounts.count()).toBe(2);
    expect(await page.locator('#account-list').innerText()).toContain('adele@contoso.com');
    const megan = page.locator('li.account', { hasText: 'megan@fabrikam.com' });
    await expect.poll(() => megan.locator('.link').textContent(), soon).toBe('Receiving requests');

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
    // The stream re-reads its device at least every 5 s and ends once it is gone; the next signed request is refused.
    const megan = page.locator('li.account', { hasText: 'megan@fabrikam.com' });
    await expect.poll(() => megan.locator('.link').textContent(), { timeout: 15_000 }).toBe('This authenticator was removed from your account. Remove it here too; ask your administrator for a new activation link if you still need it.');
    await megan.getByRole('button', { name: 'Remove…' }).click();
    await megan.getByRole('button', { name: 'Remove', exact: true }).click();
    await page.getByText('Removed megan@fabrikam.com · fabrikam from this browser.').waitFor();
    await expect.poll(() => page.locator('li.account').count(), soon).toBe(1);
  });

  it('counts the link as live only over a real event stream: a Web Push notice reconnects a silent one, else it is dropped within 15 s; an HTML page is not live; coming online reconnects at once', async () => {
    await expect.poll(() => adeleLink().textContent(), soon).toBe('Receiving requests');
    // The page's stream requests: held unanswered (a dead connection, a buffering proxy), passed
    // to the server, or answered with a proxy's HTML page. (One route throughout: removing a
    // route would let the requests it holds through.)
    let mode: 'hold' | 'pass' | 'html' = 'hold';
    let held = 0;
    let pages = 0;
    const stream = '**/v1/authenticator/stream';
    await page.route(stream, (route) => {
      if (mode === 'pass') return route.fallback();
      if (mode === 'html') {
        pages += 1;
        return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><p>Sign in to the Wi-Fi</p>' });
      }
      held += 1; // never answered
      return undefined;
    });
    try {
      await goOnline();
      await expect.poll(() => held).toBe(1);
      let since = Date.now();
      // A Web Push notice for a new request (delivered to the service worker as the push service
      // would) makes the page drop the stream that has been silent for 8 s and look again.
      await page.waitForTimeout(8_000);
      mode = 'pass';
      const created = await t.api('POST', '/v1/challenges', { username: 'adele@contoso.com', method: 'push', context: { app: 'Mail' } });
      expect(created.status).toBe(201);
      const session = await context.newCDPSession(page);
      const registrations: { registrationId: string; scopeURL: string; isDeleted: boolean }[] = [];
      session.on('ServiceWorker.workerRegistrationUpdated', (event: { registrations: typeof registrations }) => registrations.push(...event.registrations));
      await session.send('ServiceWorker.enable');
      await expect.poll(() => registrations.some((r) => r.scopeURL === `${base}/authenticator/` && !r.isDeleted), soon).toBe(true);
      const registration = registrations.find((r) => r.scopeURL === `${base}/authenticator/` && !r.isDeleted);
      await session.send('ServiceWorker.deliverPushMessage', { origin: base, registrationId: registration?.registrationId ?? '', data: JSON.stringify({ challenge_id: created.body.id, tenant: 'default' }) });
      const card = page.locator(`article.request[data-request="${created.body.id}"]`);
      await card.waitFor({ timeout: 5_000 });
      expect(Date.now() - since).toBeLessThan(14_000); // sooner than the 15 s that drop a silent stream
      await session.detach();
      await card.getByRole('button', { name: 'Deny' }).click();
      await page.getByText('The sign-in was denied.').waitFor();
      await expect.poll(() => adeleLink().textContent(), soon).toBe('Receiving requests');

      // Without a nudge, a silent stream is dropped after 15 s and the app fetches /pending meanwhile.
      mode = 'hold';
      await goOnline();
      await expect.poll(() => held).toBe(2);
      since = Date.now();
      await expect.poll(() => adeleLink().textContent(), { timeout: 25_000 }).toBe('Checking for requests every few seconds');
      expect(Date.now() - since).toBeGreaterThan(10_000);

      // A proxy's or captive portal's page instead of the stream is never live.
      mode = 'html';
      await goOnline();
      await expect.poll(() => pages, { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
      expect(await adeleLink().textContent()).toBe('Checking for requests every few seconds');
    } finally {
      await page.unroute(stream);
    }
    await goOnline();
    await expect.poll(() => adeleLink().textContent(), { timeout: 3_000 }).toBe('Receiving requests'); // at once, not after a backoff
  }, 60_000);

  it('backs off when streams end at once, and waits as long as a 503’s Retry-After says before asking again', async () => {
    await expect.poll(() => adeleLink().textContent(), soon).toBe('Receiving requests');
    let mode: 'empty' | 'unavailable' = 'empty';
    let streams = 0;
    let polls = 0;
    await page.route('**/v1/authenticator/stream', (route) => {
      streams += 1;
      if (mode === 'empty') return route.fulfill({ status: 200, contentType: 'text/event-stream', body: '' });
      return route.fulfill({ status: 503, headers: { 'retry-after': '4' }, contentType: 'application/json', body: JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'Down for maintenance' } }) });
    });
    await page.route('**/v1/authenticator/pending', (route) => {
      polls += 1;
      return route.fallback();
    });
    try {
      // Streams that end at once: 1 s, 2 s, 4 s … apart (with jitter), not a tight loop.
      await goOnline();
      await expect.poll(() => streams, soon).toBeGreaterThan(0);
      await page.waitForTimeout(5_000);
      expect(streams).toBeGreaterThanOrEqual(2);
      expect(streams).toBeLessThanOrEqual(5);

      // 503 with Retry-After: 4 — neither the stream nor /pending before 4 s have passed.
      mode = 'unavailable';
      await goOnline();
      await expect.poll(() => adeleLink().textContent(), soon).toBe('Checking every few seconds (Down for maintenance)');
      const [streamsThen, pollsThen] = [streams, polls];
      await page.waitForTimeout(3_000);
      expect([streams, polls]).toEqual([streamsThen, pollsThen]);
      await expect.poll(() => streams + polls > streamsThen + pollsThen, { timeout: 5_000 }).toBe(true);
    } finally {
      await page.unroute('**/v1/authenticator/stream');
      await page.unroute('**/v1/authenticator/pending');
    }
    await goOnline();
    await expect.poll(() => adeleLink().textContent(), soon).toBe('Receiving requests');
  }, 40_000);

  it('works with a device clock five minutes slow: it learns the server’s time from its answers to sign, count down and approve', async () => {
    await page.clock.setFixedTime(clock.ms() - 5 * 60_000);
    try {
      await page.reload();
      await expect.poll(() => adeleLink().textContent(), soon).toBe('Receiving requests');
      const created = await t.api('POST', '/v1/challenges', { username: 'adele@contoso.com', method: 'push', context: { app: 'Contoso VPN' } });
      expect(created.status).toBe(201);
      const card = page.locator(`article.request[data-request="${created.body.id}"]`);
      await card.waitFor();
      const left = Number(/^(\d+) s$/.exec((await card.locator('[data-expires]').textContent()) ?? '')?.[1]);
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThanOrEqual(60); // the tenant's push_ttl_seconds, not 5 minutes more
      await card.getByLabel('Number shown on the sign-in screen').fill(String(created.body.number));
      await card.getByRole('button', { name: 'Approve' }).click();
      await page.getByText('Approved. Go back to the sign-in.').waitFor();
      expect((await t.api('GET', `/v1/challenges/${created.body.id}`)).body).toMatchObject({ status: 'approved' });
    } finally {
      await page.clock.setFixedTime(clock.ms());
      await page.reload();
    }
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

    // From the first visit on: the service worker caches the page and what it names when it installs.
    const shellHtml = await shell.text();
    const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(shellHtml)?.[1];
    const style = /href="\.\/(assets\/[^"]+\.css)"/.exec(shellHtml)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    const fresh = await launchChromium(PHONE);
    try {
      const first = fresh.context.pages()[0] ?? (await fresh.context.newPage());
      await first.goto(`${base}/authenticator/`);
      await first.getByText('No accounts yet.').waitFor();
      const cached = () =>
        first.evaluate(async () => {
          const scope = globalThis as any;
          await scope.navigator.serviceWorker.ready;
          const cache = await scope.caches.open('countersign-authenticator-v1');
          return ((await cache.keys()) as { url: string }[]).map((request) => new URL(request.url).pathname).sort();
        });
      const shellFiles = ['/authenticator/', `/authenticator/${script}`, `/authenticator/${style}`, '/authenticator/manifest.webmanifest', '/authenticator/icon.svg', '/authenticator/icon-192.png', '/authenticator/icon-512.png'];
      await expect.poll(cached, soon).toEqual(expect.arrayContaining(shellFiles));
      expect(await cached()).not.toContain('/authenticator/sw.js');
      await fresh.context.setOffline(true);
      // The service worker's own network is down too: what it serves comes from its cache.
      expect(await first.evaluate(() => fetch('nothing-here.txt').then((response) => response.status, () => 'offline'))).toBe('offline');
      await first.reload();
      await first.getByText('No accounts yet.').waitFor();
      await first.getByText('Add an account', { exact: true }).waitFor();
    } finally {
      await fresh.close();
    }
  });
});
