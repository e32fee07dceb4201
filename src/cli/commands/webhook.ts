import type { Command } from 'commander';
import { invalidInput } from '../../core/errors.js';
import { getEmailTemplate, setEmailTemplate } from '../../flows/email.js';
import { createWebhook, deleteWebhook, listDeliveries, listWebhooks, redeliver } from '../../flows/webhooks.js';
import { addStoreOptions, CLI, print, readInputFile, tenantOf, withServices, type GlobalOptions } from '../context.js';

/**
 * `countersign webhook add|list|remove|deliveries|redeliver`: a tenant's webhook endpoints (the
 * signing secret is printed once) and their delivery log; `countersign email-template show|set`:
 * the tenant's e-mail templates. A running `countersign serve` sends what these queue.
 */
type Options = GlobalOptions & { json?: boolean; tenant?: string; events?: string; description?: string; limit?: string; subject?: string; bodyFile?: string; reset?: boolean };

export function registerWebhookCommands(program: Command): void {
  const webhook = program.command('webhook').description('webhook endpoints that receive the tenant’s events as signed JSON');
  addStoreOptions(
    webhook
      .command('add <url>')
      .description('add an endpoint (https, a public host); its signing secret is printed once')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--events <filters>', 'comma-separated event names or prefix.* filters, e.g. fraud.reported,bypass.* (default *: every event)')
      .option('--description <text>', 'what the endpoint is for')
      .option('--json', 'print JSON: {id, url, events, description, created_at, created_by, secret}'),
  ).action((url: string, options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const events = options.events === undefined ? undefined : options.events.split(',').map((e) => e.trim()).filter(Boolean);
      const created = await createWebhook(services, CLI, tenant, { url, events, description: options.description });
      print(
        options.json,
        created,
        () =>
          `webhook ${created.id} → ${created.url} (events: ${created.events.join(', ')})\nsigning secret, shown this once:\n\n  ${created.secret}\n\n` +
          'each POST carries Countersign-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>',
      );
    }),
  );
  addStoreOptions(webhook.command('list').description('the tenant’s endpoints (never their secrets; URL paths and queries masked)').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action((options: Options) =>
    withServices(options, async (services) => {
      const list = await listWebhooks(services, await tenantOf(services, options.tenant));
      print(options.json, list, () => list.map((w) => `${w.id}  ${w.url}  events ${w.events.join(',')}${w.description === '' ? '' : `  (${w.description})`}`).join('\n') || '(no webhooks)');
    }),
  );
  addStoreOptions(webhook.command('remove <id>').description('remove an endpoint and its delivery log').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action(
    (id: string, options: Options) =>
      withServices(options, async (services) => {
        await deleteWebhook(services, CLI, await tenantOf(services, options.tenant), id);
        print(options.json, { removed: id }, () => `removed webhook ${id}`);
      }),
  );
  addStoreOptions(
    webhook
      .command('deliveries <id>')
      .description('the endpoint’s delivery log, newest first')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--limit <n>', 'how many (1–500, default 50)')
      .option('--json', 'print JSON'),
  ).action((id: string, options: Options) =>
    withServices(options, async (services) => {
      const limit = options.limit === undefined ? 50 : Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw invalidInput('limit', 'must be a whole number from 1 to 500');
      const list = await listDeliveries(services, await tenantOf(services, options.tenant), id, limit);
      print(
        options.json,
        list,
        () =>
          list
            .map((d) => `${d.id}  ${d.event_id} ${d.event_type}  ${d.status}  attempts ${d.attempts}${d.last_status_code === null ? '' : `  HTTP ${d.last_status_code}`}${d.next_attempt_at === null ? '' : `  next ${d.next_attempt_at}`}${d.last_error === null ? '' : `  (${d.last_error})`}`)
            .join('\n') || '(no deliveries)',
      );
    }),
  );
  addStoreOptions(webhook.command('redeliver <id> <delivery>').description('send one delivery again (a running server sends it within a second)').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action(
    (id: string, delivery: string, options: Options) =>
      withServices(options, async (services) => {
        const queued = await redeliver(services, CLI, await tenantOf(services, options.tenant), id, delivery);
        print(options.json, queued, () => `delivery ${queued.id} (${queued.event_id} ${queued.event_type}) will be sent again`);
      }),
  );

  const template = program.command('email-template').description('the tenant’s e-mail templates: mfa_enabled (“MFA has been turned on for your account”), fraud_alert');
  addStoreOptions(template.command('show <name>').description('the template’s subject, body and placeholders').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action(
    (name: string, options: Options) =>
      withServices(options, async (services) => {
        const shown = await getEmailTemplate(services, await tenantOf(services, options.tenant), name);
        print(options.json, shown, () => `Subject: ${shown.subject}\n\n${shown.body}\n\n(placeholders: ${shown.placeholders.map((p) => `{${p}}`).join(' ')}; ${shown.customized ? `changed ${shown.updated_at ?? ''}` : 'the built-in text'})`);
      }),
  );
  addStoreOptions(
    template
      .command('set <name>')
      .description('replace the template’s subject and body (plain text with {placeholders}), or --reset to the built-in text')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--subject <text>', 'the subject line')
      .option('--body-file <file>', 'the body, from a file (- for standard input)')
      .option('--reset', 'go back to the built-in text')
      .option('--json', 'print JSON'),
  ).action((name: string, options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const saved =
        options.reset === true
          ? await setEmailTemplate(services, CLI, tenant, name, { reset: true })
          : await setEmailTemplate(services, CLI, tenant, name, { subject: options.subject, body: options.bodyFile === undefined ? undefined : readInputFile(options.bodyFile) });
      print(options.json, saved, () => `e-mail template ${saved.name} of ${tenant.name} ${saved.customized ? 'saved' : 'reset to the built-in text'}`);
    }),
  );
}
