import type { Command } from 'commander';
import { invalidInput } from '../../core/errors.js';
import { createEnrollmentLink, ENROLLMENT_MAX_SECONDS, listEnrollmentLinks, parseExpiresIn, revokeEnrollmentLink } from '../../flows/enrollment.js';
import { createCampaignLinks, listCampaignTargets } from '../../flows/registration-campaign.js';
import { tenantSettings, updateTenantSettings } from '../../flows/tenants.js';
import { findUser } from '../../flows/users.js';
import { addStoreOptions, CLI, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

/**
 * `countersign enroll …`: registration, beside the admin API — a user's enrollment link
 * (`/v1/admin/users/{user}/enrollment-link`: created with its URL printed once, listed, revoked)
 * and the registration campaign (`/v1/admin/registration-campaign`: its settings, who it targets,
 * and links for all of them at once, with progress on stderr).
 */
type Options = GlobalOptions & { json?: boolean; tenant?: string };

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `7d`, `12h`, `90m`, `3600s` or `3600` (seconds) → seconds, checked like the API's expires_in_seconds. */
export function parseDuration(raw: string | undefined, field = '--expires'): number | undefined {
  if (raw === undefined) return undefined;
  const match = /^(\d{1,9})([smhd]?)$/.exec(raw.trim());
  if (match === null) throw invalidInput(field, 'must be a duration such as 7d, 12h, 90m or 3600 (seconds)');
  const seconds = Number(match[1]) * (UNITS[match[2] || 's'] ?? 1);
  // The flow's message speaks of seconds; here the duration was typed with a unit.
  if (seconds < 60 || seconds > ENROLLMENT_MAX_SECONDS) throw invalidInput(field, `must be from 60s to ${ENROLLMENT_MAX_SECONDS / 86_400}d (30 days), e.g. 7d, 12h or 90m; got ${raw.trim()}`);
  return parseExpiresIn(seconds, field);
}

function parseList(raw: string | undefined): string[] | undefined {
  return raw === undefined ? undefined : raw.split(',').map((m) => m.trim()).filter(Boolean);
}

export function registerEnrollCommands(program: Command): void {
  const tenantOption = (c: Command): Command => addStoreOptions(c.requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON'));
  const enroll = program.command('enroll').description('registration: enrollment links for users, and the registration campaign');

  tenantOption(
    enroll
      .command('link <username>')
      .description('create the user’s enrollment link (single use, expiring; replaces an open one); the URL is printed once')
      .option('--expires <duration>', `how long it is valid: 60s to ${ENROLLMENT_MAX_SECONDS / 86_400}d, e.g. 7d, 12h (default 7d)`)
      .option('--methods <list>', 'what may be registered, comma-separated: totp, push, sms, voice (default: all the tenant allows)'),
  ).action(async (username: string, options: Options & { expires?: string; methods?: string }) => {
    // Checked before the store is opened.
    const expires = parseDuration(options.expires);
    const methods = parseList(options.methods);
    await withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const link = await createEnrollmentLink(services, CLI, tenant, await findUser(services.db, tenant.id, username), { expires_in_seconds: expires, methods });
      print(options.json, link, () => `enrollment link for ${link.username} (${link.methods.join(', ')}), valid until ${link.expires_at}, shown this once:\n\n  ${link.enrollment_url}\n\nsend it to the user; it is spent when they complete registration`);
    });
  });

  tenantOption(enroll.command('revoke <username>').description('revoke the user’s open enrollment link: its next use is refused')).action((username: string, options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const link = await revokeEnrollmentLink(services, CLI, tenant, await findUser(services.db, tenant.id, username));
      print(options.json, link, () => `revoked the enrollment link ${link.id} of ${link.username}`);
    }),
  );

  tenantOption(enroll.command('list <username>').description('the user’s enrollment links, newest first (never a token)')).action((username: string, options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const links = await listEnrollmentLinks(services, tenant, await findUser(services.db, tenant.id, username));
      print(options.json, links, () => links.map((l) => `${l.id}  ${l.status}  ${l.methods.join(',')}  created ${l.created_at}  expires ${l.expires_at}${l.used_at === null ? '' : `  used ${l.used_at}`}`).join('\n') || '(no enrollment links)');
    }),
  );

  tenantOption(
    enroll
      .command('campaign')
      .description('the registration campaign: the users it targets (only texts and calls, not snoozed, not excluded); with --create-links, an enrollment link for each')
      .option('--create-links', 'create an enrollment link for the campaign’s method for every targeted user without an open one; the URLs are printed once')
      .option('--expires <duration>', 'with --create-links: how long the links are valid (default 7d)'),
  ).action(async (options: Options & { createLinks?: boolean; expires?: string }) => {
    const expires = parseDuration(options.expires);
    if (expires !== undefined && options.createLinks !== true) throw invalidInput('--expires', 'goes with --create-links');
    await withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      if (options.createLinks === true) {
        let shown = 0;
        const made = await createCampaignLinks(services, CLI, tenant, { expires_in_seconds: expires }, (done, total) => {
          // Progress on stderr, so stdout stays the result (and valid JSON with --json).
          if (done === total || done - shown >= 50) {
            shown = done;
            process.stderr.write(`${done}/${total} users\n`);
          }
        });
        print(options.json, made, () => [`created ${made.count} enrollment link${made.count === 1 ? '' : 's'} (${made.skipped} user${made.skipped === 1 ? '' : 's'} already had an open one); the URLs, shown this once:`, ...made.links.map((l) => `${l.username}  ${l.enrollment_url}  until ${l.expires_at}`)].join('\n'));
        return;
      }
      const users: Awaited<ReturnType<typeof listCampaignTargets>>['users'] = [];
      let view = await listCampaignTargets(services, tenant, { limit: 5000 });
      users.push(...view.users);
      while (view.next !== null) {
        view = await listCampaignTargets(services, tenant, { limit: 5000, after: view.next });
        users.push(...view.users);
      }
      const result = { ...view, users, next: null };
      print(options.json, result, () =>
        [
          `campaign ${result.enabled ? 'on' : 'off'}: nudging to ${result.method}${result.method_allowed ? '' : ' (not allowed by the tenant: nobody is nudged)'}, snooze ${result.snooze_days} day${result.snooze_days === 1 ? '' : 's'}, excluded groups: ${result.excluded_groups.join(', ') || 'none'}`,
          `${users.length} user${users.length === 1 ? '' : 's'} targeted${users.length === 0 ? '' : ':'}`,
          ...users.map((u) => `  ${u.username}  ${u.methods.join(',')}${u.snoozes > 0 ? `  snoozed ${u.snoozes}×` : ''}`),
        ].join('\n'),
      );
    });
  });

  tenantOption(
    enroll
      .command('campaign-set')
      .description('change the registration campaign setting (registration_campaign); a refused change leaves it as it was')
      .option('--enable', 'turn the campaign on')
      .option('--disable', 'turn the campaign off')
      .option('--method <method>', 'what users are nudged to register: push or totp')
      .option('--snooze-days <n>', 'days "not now" keeps the nudge away: 0–14')
      .option('--exclude-groups <list>', 'groups never nudged, comma-separated (empty string: none)'),
  ).action(async (options: Options & { enable?: boolean; disable?: boolean; method?: string; snoozeDays?: string; excludeGroups?: string }) => {
    if (options.enable === true && options.disable === true) throw invalidInput('--enable', 'and --disable cannot go together');
    const change: Record<string, unknown> = {};
    if (options.enable === true) change['enabled'] = true;
    if (options.disable === true) change['enabled'] = false;
    if (options.method !== undefined) change['method'] = options.method;
    if (options.snoozeDays !== undefined) change['snooze_days'] = /^\d+$/.test(options.snoozeDays) ? Number(options.snoozeDays) : options.snoozeDays;
    if (options.excludeGroups !== undefined) change['excluded_groups'] = parseList(options.excludeGroups);
    if (Object.keys(change).length === 0) throw invalidInput('--enable', 'say what to change: --enable, --disable, --method, --snooze-days or --exclude-groups');
    await withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const next = (await updateTenantSettings(services, CLI, tenant, { registration_campaign: { ...tenantSettings(tenant).registration_campaign, ...change } })).registration_campaign;
      print(options.json, next, () => `registration campaign ${next.enabled ? 'on' : 'off'}: method ${next.method}, snooze ${next.snooze_days} days, excluded groups: ${next.excluded_groups.join(', ') || 'none'}`);
    });
  });
}
