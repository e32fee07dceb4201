import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { CHROMIUM_AVAILABLE, openPhoneOnServer, type PhoneOnServer } from '../support/browser.js';
import { fakeClock, type TestApp } from '../support/harness.js';

/**
 * An enrollment link (`<server>/authenticator/#enroll=TOKEN`) opened in Debian's Chromium: the
 * authenticator web app names the account and what the link allows, registers this browser as
 * the user's authenticator in place, and "Done" completes the registration — the user is then
 * enforced and has a push device. A spent link shows the server’s message. Set up by
 * openPhoneOnServer (a real listening server, the browser’s clock pinned to the server’s).
 */
describe.skipIf(!CHROMIUM_AVAILABLE)('enrollment link in the authenticator web app (Chromium)', () => {
  let t: TestApp;
  let base: string;
  let page: Page;
  let session: PhoneOnServer | undefined;
  const clock = fakeClock(Math.floor(Date.now() / 30_000) * 30_000 + 1_000);

  beforeAll(async () => {
    session = await openPhoneOnServer(clock);
    ({ t, base, page } = session);
  });
  afterAll(async () => {
    await session?.close();
  });

  it('opens the link, registers this browser as the authenticator, completes: the user is enforced with a push device', async () => {
    const username = 'lidia@contoso.com';
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, mfa_state: 'enabled' })).status).toBe(201);
    const created = await t.admin('POST', `/v1/admin/users/${username}/enrollment-link?tenant=default`, { methods: ['push', 'totp'] });
    expect(created.status).toBe(201);
    const token: string = created.body.token;
    expect(created.body.enrollment_url.endsWith(`/authenticator/#enroll=${token}`)).toBe(true);
    // As the server writes it with its public URL set to this server.
    const url = `${base}/authenticator/#enroll=${token}`;

    await page.goto(url);
    await page.getByRole('heading', { name: 'Register your sign-in methods' }).waitFor();
    await page.getByText(`Register for ${username} · default`).waitFor();
    // The token leaves the address bar once read.
    await expect.poll(() => new URL(page.url()).hash).toBe('');
    expect(await page.locator('#enrollment-methods li').allTextContents()).toEqual(['an authenticator app (codes)', 'this authenticator (approve sign-ins)']);
    await page.getByText('Nothing yet.').waitFor();
    expect(await page.getByRole('button', { name: 'Done' }).isDisabled()).toBe(true);

    await page.getByRole('button', { name: 'Use this browser as your authenticator' }).click();
    await page.getByText('This browser is now your authenticator.').waitFor();
    await page.locator('#enrollment-registered li[data-type="push"]').waitFor();
    // The account is in the app, receiving requests.
    const account = page.locator('li.account', { hasText: username });
    await expect.poll(() => account.locator('.link').textContent(), { timeout: 10_000 }).toBe('Receiving requests');

    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByText('Registration is complete.').waitFor();
    expect(await page.getByRole('button', { name: 'Done' }).isVisible()).toBe(false);

    const user = await t.admin('GET', `/v1/admin/users/${username}?tenant=default`);
    expect(user.body.mfa_state).toBe('enforced');
    const devices = await t.admin('GET', `/v1/admin/users/${username}/push/devices?tenant=default`);
    expect(devices.body.devices).toHaveLength(1);
    expect((await t.admin('GET', `/v1/admin/users/${username}/enrollment-link?tenant=default`)).body.links[0]).toMatchObject({ status: 'used' });
    expect((await t.api('POST', '/v1/preauth', { username })).body.methods).toEqual([expect.objectContaining({ type: 'push' })]);

    // Opened again, the spent link shows the server's message, with nothing to press.
    await page.goto(`${base}/authenticator/`);
    await page.goto(url);
    await page.getByText('the enrollment link was already used: registration is complete; ask your administrator for a new link to register more').waitFor();
    expect(await page.locator('#enrollment-actions').isHidden()).toBe(true);
  });

  it('a revoked link says so; a broken one is called incomplete', async () => {
    const username = 'joni@contoso.com';
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, mfa_state: 'enabled' })).status).toBe(201);
    const { token } = (await t.admin('POST', `/v1/admin/users/${username}/enrollment-link?tenant=default`, {})).body;
    expect((await t.admin('DELETE', `/v1/admin/users/${username}/enrollment-link?tenant=default`)).status).toBe(200);
    await page.goto(`${base}/authenticator/#enroll=${token}`);
    await page.getByText('the enrollment link was revoked by an administrator: ask for a new one').waitFor();
    await page.goto(`${base}/authenticator/#enroll=cse_short`);
    await page.getByText('This enrollment link is incomplete.').waitFor();
  });
});
