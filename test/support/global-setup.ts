/**
 * Says plainly, once per run, which stores the tests use. The PostgreSQL half runs only when
 * COUNTERSIGN_TEST_DATABASE_URL points at a server; each test file then makes its own database.
 */
import { CHROMIUM_AVAILABLE, CHROMIUM_PATH } from './browser.js';

export default function setup(): void {
  if (!CHROMIUM_AVAILABLE) console.log(`[countersign] browser tests: SKIPPED (no Chromium at ${CHROMIUM_PATH}; apt-get install chromium, or set COUNTERSIGN_TEST_CHROMIUM).`);
  const url = process.env['COUNTERSIGN_TEST_DATABASE_URL'];
  if (url === undefined || url === '') {
    console.log('[countersign] store under test: SQLite. PostgreSQL tests: SKIPPED (set COUNTERSIGN_TEST_DATABASE_URL=postgres://… to run them).');
  } else {
    console.log('[countersign] store under test: PostgreSQL (COUNTERSIGN_TEST_DATABASE_URL) — every test file gets its own database; SQLite contract tests run too.');
  }
}
