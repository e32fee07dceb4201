import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { createTestApp, type FakeClock, type TestApp } from './harness.js';

/**
 * Debian's Chromium, driven by playwright-core (never a downloaded browser). Browser tests run
 * when it is installed (`apt-get install chromium`; CI does it) and say plainly that they were
 * skipped otherwise. COUNTERSIGN_TEST_CHROMIUM names another binary.
 */
export const CHROMIUM_PATH = process.env['COUNTERSIGN_TEST_CHROMIUM'] || '/usr/bin/chromium';
export const CHROMIUM_AVAILABLE = existsSync(CHROMIUM_PATH);

/**
 * Chromium with a real (temporary) profile, as a person's browser has: an incognito context
 * could not install a web app, and its storage would not be the one a reload keeps.
 */
export async function launchChromium(options: BrowserContextOptions = {}): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'countersign-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    ...options,
    executablePath: CHROMIUM_PATH,
    // This machine's network is closed: without these Chromium keeps trying Google's services.
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A phone-sized screen, as the authenticator web app is used. */
export const PHONE: BrowserContextOptions = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };

export interface PhoneOnServer {
  t: TestApp;
  /** The listening server's address, http://127.0.0.1:PORT. */
  base: string;
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/**
 * A real listening test server and Chromium on a phone-sized screen, the browser's clock pinned
 * to the server's settable clock (Playwright's page.clock), so signed timestamps agree and a TOTP
 * step can be moved forward on both sides; the server's `Date` header, from which the app learns
 * the server's time, tells that clock too.
 */
export async function openPhoneOnServer(clock: FakeClock): Promise<PhoneOnServer> {
  const t = await createTestApp({ clock });
  // A real server's Date header and the clock it checks signatures against are one clock: here the fake one.
  t.app.server.prependListener('request', (_request, response) => response.setHeader('date', clock().toUTCString()));
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  const launched = await launchChromium(PHONE);
  const { context } = launched;
  context.setDefaultTimeout(10_000);
  const page = context.pages()[0] ?? (await context.newPage());
  await page.clock.setFixedTime(clock.ms());
  return {
    t,
    base,
    context,
    page,
    close: async () => {
      await launched.close();
      t.app.server.closeAllConnections();
      await t.close();
    },
  };
}
