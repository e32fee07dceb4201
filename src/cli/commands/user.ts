import type { Command } from 'commander';
import { invalidInput } from '../../core/errors.js';
import { deleteMethod, listMethods } from '../../flows/methods.js';
import { clearPin, setPin } from '../../flows/pins.js';
import { bulkSetStates, importUsers } from '../../flows/user-import.js';
import { forgetRememberedDevices } from '../../flows/remembered-devices.js';
import { listBlockedUsers, unblockUser, unlockUser, type BlockedUserView } from '../../flows/user-blocks.js';
import { createUser, deleteUser, findUser, listUsers, blockUser, setUserState, updateUser, viewUser, type UserView } from '../../flows/users.js';
import { grantFromCli, grantOptions } from './bypass.js';
import { readFirstLine } from '../stdin.js';
import { addStoreOptions, CLI, print, readInputFile, tenantOf, withServices, type GlobalOptions } from '../context.js';

type Options = GlobalOptions & { json?: boolean; tenant?: string };

function describe(user: UserView): string {
  const phones = user.phones.map((p) => `${p.type} ${p.number}`).join(', ');
  return `${user.username}  state=${user.mfa_state}  status=${user.status}${user.email === null ? '' : `  email=${user.email}`}${phones === '' ? '' : `  phones=${phones}`}`;
}

export function registerUserCommands(program: Command): void {
  const user = program.command('user').description('users and their MFA state');
  const tenantOption = (c: Command): Command => addStoreOptions(c.requiredOption('--tenant <tenant>', 'tenant id or name'));

  tenantOption(
    user
      .command('add <username>')
      .description('create a user')
      .option('--display-name <name>', 'display name')
      .option('--email <email>', 'email address')
      .option('--phone <phone>', 'mobile phone number (E.164, or national in the tenant country)')
      .option('--state <state>', 'MFA state: disabled, enabled or enforced (default disabled)')
      .option('--group <group...>', 'groups')
      .option('--json', 'print JSON'),
  ).action((username: string, options: Options & { displayName?: string; email?: string; phone?: string; state?: string; group?: string[] }) =>
    withServices(options, async (services) => {
      const created = await createUser(services, CLI, await tenantOf(services, options.tenant), {
        username,
        display_name: options.displayName,
        email: options.email,
        phone: options.phone,
        mfa_state: options.state,
        groups: options.group,
      });
      print(options.json, created, () => `created ${describe(created)}`);
    }),
  );

  tenantOption(
    user
      .command('update <username>')
      .description('change a user: display name, e-mail, mobile phone, groups (each option given replaces that field)')
      .option('--display-name <name>', 'display name')
      .option('--email <email>', 'email address')
      .option('--phone <phone>', 'mobile phone number (E.164, or national in the tenant country)')
      .option('--group <group...>', 'the user\'s groups, all of them (as conditional access policies see them)')
      .option('--no-groups', 'remove the user from every group')
      .option('--json', 'print JSON'),
  ).action((username: string, options: Options & { displayName?: string; email?: string; phone?: string; group?: string[]; groups?: boolean }) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const groups = options.groups === false ? [] : options.group;
      if (options.displayName === undefined && options.email === undefined && options.phone === undefined && groups === undefined) {
        throw invalidInput('options', 'name what to change: --display-name, --email, --phone, --group or --no-groups');
      }
      const updated = await updateUser(services, CLI, tenant, await findUser(services.db, tenant.id, username), {
        display_name: options.displayName,
        email: options.email,
        phone: options.phone,
        groups,
      });
      print(options.json, updated, () => `updated ${describe(updated)}`);
    }),
  );

  tenantOption(user.command('show <username>').description('show a user').option('--json', 'print JSON')).action((username: string, options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const view = await viewUser(services.db, await findUser(services.db, tenant.id, username), services.clock().getTime());
      print(options.json, view, () => describe(view));
    }),
  );

  tenantOption(
    user
      .command('list')
      .description('list users (all pages)')
      .option('--search <text>', 'only users whose username, name or email contains this')
      .option('--json', 'print JSON'),
  ).action((options: Options & { search?: string }) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const users: UserView[] = [];
      let cursor: string | undefined;
      do {
        const page = await listUsers(services, tenant, { search: options.search, cursor, limit: 1000 });
        users.push(...page.users);
        cursor = page.next_cursor ?? undefined;
      } while (cursor !== undefined);
      print(options.json, users, () => users.map(describe).join('\n') || '(no users)');
    }),
  );

  tenantOption(
    user
      .command('set-state [username] [state]')
      .description('change the MFA state: disabled, enabled or enforced (or many at once with --file)')
      .option('--file <csv>', 'CSV of username,state')
      .option('--json', 'print JSON'),
  ).action((username: string | undefined, state: string | undefined, options: Options & { file?: string }) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      if (options.file !== undefined) {
        const report = await bulkSetStates(services, CLI, tenant, readInputFile(options.file));
        print(options.json, report, () => [`changed ${report.changed} users`, ...report.refused.map((r) => `refused line ${r.line}: ${r.reason}`)].join('\n'));
        if (report.changed === 0 && report.refused.length > 0) {
          process.stderr.write(`countersign: no state was changed (${report.refused.length} lines refused)\n`);
          process.exitCode = 1;
        }
        return;
      }
      if (username === undefined || state === undefined) throw new Error('give USERNAME and STATE, or --file CSV');
      const updated = await setUserState(services, CLI, tenant, await findUser(services.db, tenant.id, username), state);
      print(options.json, updated, () => `${updated.username} is now ${updated.mfa_state}`);
    }),
  );

  tenantOption(user.command('import <file>').description('create or update users from a CSV: username,display name,email,phone,state').option('--json', 'print JSON')).action(
    (file: string, options: Options) =>
      withServices(options, async (services) => {
        const started = Date.now();
        const report = await importUsers(services, CLI, await tenantOf(services, options.tenant), readInputFile(file));
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        print(options.json, report, () =>
          [`created ${report.created}, updated ${report.updated}, refused ${report.refused.length} (${seconds} s)`, ...report.refused.map((r) => `refused line ${r.line}: ${r.reason}`)].join('\n'),
        );
        if (report.refused.length > 0 && report.created + report.updated === 0) {
          process.stderr.write(`countersign: no user was imported (${report.refused.length} lines refused)\n`);
          process.exitCode = 1;
        }
      }),
  );

  for (const [name, description] of [
    ['delete', 'delete a user and their methods'],
    ['unlock', 'clear a lockout and the failure counter (fails when there is nothing to clear)'],
    ['block', 'block a user: every sign-in is denied'],
    ['unblock', 'lift a block by an administrator or after a fraud report (fails when the user is not blocked)'],
  ] as const) {
    tenantOption(user.command(`${name} <username>`).description(description).option('--json', 'print JSON')).action((username: string, options: Options) =>
      withServices(options, async (services) => {
        const tenant = await tenantOf(services, options.tenant);
        const row = await findUser(services.db, tenant.id, username);
        if (name === 'delete') {
          await deleteUser(services, CLI, tenant, row);
          print(options.json, { deleted: row.username }, () => `deleted ${row.username}`);
          return;
        }
        const view =
          name === 'unlock' ? await unlockUser(services, CLI, tenant, row) : name === 'unblock' ? await unblockUser(services, CLI, tenant, row) : await blockUser(services, CLI, tenant, row);
        print(options.json, view, () => describe(view));
      }),
    );
  }

  tenantOption(user.command('blocked').description('the blocked-users report: blocks (fraud, admin) and lockouts in force now').option('--json', 'print JSON')).action((options: Options) =>
    withServices(options, async (services) => {
      const list = await listBlockedUsers(services, await tenantOf(services, options.tenant));
      const line = (b: BlockedUserView) => `${b.username}  ${b.kind}  reason=${b.reason}  since ${b.since ?? 'unknown'}  until ${b.until ?? 'unblocked by an administrator'}`;
      print(options.json, list, () => list.map(line).join('\n') || '(no blocked or locked-out users)');
    }),
  );

  tenantOption(user.command('forget-devices <username>').description('revoke all the user’s remembered devices: their remember tokens fail from the next sign-in').option('--json', 'print JSON')).action(
    (username: string, options: Options) =>
      withServices(options, async (services) => {
        const tenant = await tenantOf(services, options.tenant);
        const row = await findUser(services.db, tenant.id, username);
        const revoked = await forgetRememberedDevices(services, CLI, tenant, row.id);
        print(options.json, { revoked }, () => `revoked ${revoked} remembered device${revoked === 1 ? '' : 's'} of ${row.username}`);
      }),
  );

  // The issue's spelling of `bypass grant`.
  addStoreOptions(grantOptions(user.command('bypass <username>').description('grant a one-time bypass (the same as `bypass grant`)'))).action((username: string, options: Options & { reason?: string; seconds?: string }) =>
    withServices(options, (services) => grantFromCli(services, options, username)),
  );

  tenantOption(
    user
      .command('set-pin <username>')
      .description('set the PIN asked on calls in PIN mode, read from the first line of standard input (never an argument)')
      .option('--pin-stdin', 'read the PIN from the first line of standard input (the default: a PIN is never taken as an argument)')
      .option('--json', 'print JSON')
      .addHelpText('after', "\nExample:\n  printf '%s\\n' \"$PIN\" | countersign user set-pin --tenant acme alice@acme.com --pin-stdin"),
  ).action(async (username: string, options: Options & { pinStdin?: boolean }) => {
    const pin = await readFirstLine();
    if (pin === '') throw invalidInput('pin', 'is required: give it as the first line of standard input');
    await withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const row = await findUser(services.db, tenant.id, username);
      await setPin(services, CLI, tenant, row.id, pin);
      print(options.json, { username: row.username, pin: 'set' }, () => `PIN set for ${row.username}`);
    });
  });

  tenantOption(user.command('clear-pin <username>').description('remove the user’s PIN').option('--json', 'print JSON')).action((username: string, options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const row = await findUser(services.db, tenant.id, username);
      await clearPin(services, CLI, tenant, row.id);
      print(options.json, { username: row.username, pin: 'cleared' }, () => `PIN cleared for ${row.username}`);
    }),
  );

  tenantOption(user.command('methods <username>').description('list a user’s methods').option('--json', 'print JSON')).action((username: string, options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const methods = await listMethods(services, await findUser(services.db, tenant.id, username));
      print(options.json, methods, () => methods.map((m) => `${m.id}  ${m.type}  ${m.status}${m.default ? '  default' : ''}  ${m.label}${m.serial === null ? '' : `  serial=${m.serial}`}`).join('\n') || '(no methods)');
    }),
  );

  tenantOption(user.command('remove-method <username> <method-id>').description('remove one of a user’s methods')).action((username: string, methodId: string, options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      await deleteMethod(services, CLI, tenant, await findUser(services.db, tenant.id, username), methodId);
      print(false, null, () => `removed method ${methodId}`);
    }),
  );
}
