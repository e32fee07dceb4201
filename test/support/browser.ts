import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type BrowserContextOptions } from 'playwright-core';

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
