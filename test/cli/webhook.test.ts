import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCliSession, type CliSession } from '../support/cli.js';
import type { TestStoreLocation } from '../support/harness.js';
import { startReceiver, verifySignature, type Receiver } from '../support/webhook-receiver.js';

/**
 * `countersign webhook add|list|remove|deliveries|redeliver` and `countersign email-template
 * show|set` as an administrator runs them — the real CLI in child processes on one data
 * directory — and `countersign serve` delivering, from its dispatcher, the events another
 * process (the CLI) committed to the store.
 */
const SLOW = 300_000;

let session: CliSession;
let location: TestStoreLocation;
let receiver: Receiver;
const cli = (args: string[]) => session.cli(args);
const serve = () => session.serve();

beforeAll(async () => {
  // The receiver is http:// on 127.0.0.1: allowed for this test only.
  session = await openCliSession({ COUNTERSIGN_WEBHOOKS_ALLOW_HTTP: 'true', COUNTERSIGN_WEBHOOKS_ALLOW_PRIVATE: 'true', COUNTERSIGN_LOG_LEVEL: 'warn' });
  location = session.location;
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
  await session.close();
});

describe('countersign webhook / email-template (CLI)', () => {
  it(
    'adds an endpoint (the secret printed once), lists it without the secret, refuses bad URLs; serve delivers the CLI’s events, signed; the log, redelivery and removal work',
    async () => {
      expect((await cli(['tenant', 'create', 'acme'])).code).toBe(0);
      const bad = await cli(['webhook', 'add', '--tenant', 'acme', 'ftp://hooks.acme.com/x']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/^countersign: url: must be an https:\/\/ URL/);
      const badEvents = await cli(['webhook', 'add', '--tenant', 'acme', receiver.url, '--events', 'user.nothing']);
      expect(badEvents.code).toBe(1);
      expect(badEvents.stderr).toMatch(/^countersign: events: /);

      const added = await cli(['webhook', 'add', '--tenant', 'acme', receiver.url, '--events', 'user.created,user.deleted', '--description', 'SIEM', '--json']);
      expect(added.code).toBe(0);
      const webhook = JSON.parse(added.stdout) as { id: string; secret: string; events: string[] };
      expect(webhook).toMatchObject({ events: ['user.created', 'user.deleted'], secret: expect.stringMatching(/^whsec_/) });
      const listed = await cli(['webhook', 'list', '--tenant', 'acme', '--json']);
      // Listings mask the path and query (often a credential): the whole URL is in the answer to add only.
      expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ id: webhook.id, url: `${new URL(receiver.url).origin}/…`, description: 'SIEM' })]);
      expect(listed.stdout).not.toContain(webhook.secret);
      const human = await cli(['webhook', 'list', '--tenant', 'acme']);
      expect(human.stdout).toContain(`${webhook.id}  ${new URL(receiver.url).origin}/…  events user.created,user.deleted  (SIEM)`);

      // The server's dispatcher sends what another process (this CLI) commits.
      const server = await serve();
      try {
        expect((await cli(['user', 'add', '--tenant', 'acme', 'bob@acme.com'])).code).toBe(0);
        const deadline = Date.now() + 20_000;
        while (receiver.received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      } finally {
        const exited = new Promise((resolve) => server.once('exit', resolve));
        server.kill('SIGTERM');
        await exited;
      }
      expect(receiver.received.map((r) => r.event.type)).toEqual(['user.created']);
      const [delivery] = receiver.received;
      if (delivery === undefined) throw new Error('nothing delivered');
      expect(verifySignature(webhook.secret, delivery.headers['countersign-signature'] as string, delivery.body, Math.floor(Date.now() / 1000))).toBe(true);
      expect(delivery.event.data).toMatchObject({ username: 'bob@acme.com' });

      const log = await cli(['webhook', 'deliveries', '--tenant', 'acme', webhook.id, '--json']);
      const deliveries = JSON.parse(log.stdout) as { id: string; status: string; attempts: number; last_status_code: number }[];
      expect(deliveries).toEqual([expect.objectContaining({ id: delivery.headers['countersign-delivery'], status: 'delivered', attempts: 1, last_status_code: 200, event_type: 'user.created' })]);
      expect((await cli(['webhook', 'deliveries', '--tenant', 'acme', webhook.id, '--limit', '0'])).stderr).toMatch(/^countersign: limit: /);
      const again = await cli(['webhook', 'redeliver', '--tenant', 'acme', webhook.id, deliveries[0]?.id ?? '', '--json']);
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ status: 'pending' });
      expect((await cli(['webhook', 'redeliver', '--tenant', 'acme', webhook.id, 'nope'])).code).toBe(1);

      expect((await cli(['webhook', 'remove', '--tenant', 'acme', webhook.id])).stdout).toBe(`removed webhook ${webhook.id}\n`);
      expect(JSON.parse((await cli(['webhook', 'list', '--tenant', 'acme', '--json'])).stdout)).toEqual([]);
      expect((await cli(['webhook', 'remove', '--tenant', 'acme', webhook.id])).code).toBe(1);
    },
    SLOW,
  );

  it(
    'email-template show prints the built-in text; set saves a subject and a body file, refuses unknown placeholders; --reset restores it',
    async () => {
      const shown = await cli(['email-template', 'show', '--tenant', 'acme', 'mfa_enabled', '--json']);
      expect(JSON.parse(shown.stdout)).toMatchObject({ name: 'mfa_enabled', customized: false, placeholders: ['display_name', 'username', 'email', 'tenant', 'enrollment_url'] });
      const body = join(location.dataDir, 'welcome.txt');
      writeFileSync(body, 'Hello {display_name}, MFA is on at {tenant}.\n');
      const set = await cli(['email-template', 'set', '--tenant', 'acme', 'mfa_enabled', '--subject', 'MFA for {username}', '--body-file', body, '--json']);
      expect(set.code).toBe(0);
      expect(JSON.parse(set.stdout)).toMatchObject({ subject: 'MFA for {username}', body: 'Hello {display_name}, MFA is on at {tenant}.\n', customized: true });
      writeFileSync(body, 'Your code: {code}');
      const refused = await cli(['email-template', 'set', '--tenant', 'acme', 'mfa_enabled', '--subject', 'x', '--body-file', body]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^countersign: body: \{code\} is not a placeholder of mfa_enabled/);
      expect((await cli(['email-template', 'show', '--tenant', 'acme', 'mfa_enabled'])).stdout).toMatch(/^Subject: MFA for \{username\}\n\nHello \{display_name\}/);
      expect((await cli(['email-template', 'show', '--tenant', 'acme', 'welcome'])).code).toBe(1);
      const reset = await cli(['email-template', 'set', '--tenant', 'acme', 'mfa_enabled', '--reset']);
      expect(reset.stdout).toBe('e-mail template mfa_enabled of acme reset to the built-in text\n');
    },
    SLOW,
  );
});
