import type { Command } from 'commander';
import { BYPASS_DEFAULT_SECONDS, BYPASS_MAX_SECONDS, grantBypass, listBypasses, revokeBypass, type BypassView } from '../../flows/bypasses.js';
import type { Services } from '../../services.js';
import { addStoreOptions, CLI, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

/**
 * `countersign bypass …`: one-time bypasses (Azure MFA Server; SECURITY.md BYP-01). The user's
 * next sign-in within N seconds skips the second factor, once; granting, use, expiry and
 * revocation are audited and listed in the bypass report.
 */
type Options = GlobalOptions & { json?: boolean; tenant?: string; reason?: string; seconds?: string; username?: string; status?: string };

export function describeBypass(b: BypassView): string {
  const used = b.used_at === null ? '' : `  used ${b.used_at}${b.used_by === null ? '' : ` by ${b.used_by}`}`;
  return `${b.id}  ${b.username}  ${b.status}  expires ${b.expires_at}${used}  granted by ${b.granted_by}: ${b.reason}`;
}

/** `--seconds` as given: a whole number is passed on as one, anything else as text for the flow to refuse naming the field. */
function secondsOf(value: string | undefined): unknown {
  if (value === undefined) return undefined;
  return /^\d{1,9}$/.test(value.trim()) ? Number(value.trim()) : value;
}

/** Grants a bypass as the CLI: shared by `bypass grant` and `user bypass`. */
export async function grantFromCli(services: Services, options: Options, username: string): Promise<void> {
  const tenant = await tenantOf(services, options.tenant);
  const granted = await grantBypass(services, CLI, tenant, username, { seconds: secondsOf(options.seconds), reason: options.reason });
  print(options.json, granted, () => `bypass ${granted.id} for ${granted.username}: the next sign-in until ${granted.expires_at} skips the second factor, once`);
}

/** The options of a grant: `--reason` (required; also recorded as the why of its audit records) and `--seconds`. */
export function grantOptions(command: Command): Command {
  return command
    .requiredOption('--tenant <tenant>', 'tenant id or name')
    .requiredOption('--reason <text>', 'why the user may skip the second factor (audited)')
    .option('--seconds <n>', `how long it may be used: 1–${BYPASS_MAX_SECONDS} (default ${BYPASS_DEFAULT_SECONDS})`)
    .option('--json', 'print JSON: the bypass');
}

export function registerBypassCommands(program: Command): void {
  const bypass = program.command('bypass').description('one-time bypasses: a user’s next sign-in skips the second factor, once');
  addStoreOptions(grantOptions(bypass.command('grant <username>').description('grant a one-time bypass (a new one replaces one still open)'))).action((username: string, options: Options) =>
    withServices(options, (services) => grantFromCli(services, options, username)),
  );

  addStoreOptions(
    bypass
      .command('list')
      .description('the bypass report, newest first')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--username <username>', 'only this user’s bypasses')
      .option('--status <status>', 'only active, used, expired or revoked ones')
      .option('--json', 'print JSON'),
  ).action((options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const list = await listBypasses(services, tenant, { username: options.username, status: options.status });
      print(options.json, list, () => list.map(describeBypass).join('\n') || '(no bypasses)');
    }),
  );

  addStoreOptions(
    bypass.command('revoke <id>').description('revoke a bypass that is still open').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON'),
  ).action((id: string, options: Options) =>
    withServices(options, async (services) => {
      await revokeBypass(services, CLI, await tenantOf(services, options.tenant), id);
      print(options.json, { revoked: id }, () => `revoked bypass ${id}`);
    }),
  );
}
