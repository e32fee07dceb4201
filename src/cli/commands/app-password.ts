import type { Command } from 'commander';
import { invalidInput } from '../../core/errors.js';
import { createAppPassword, listAppPasswords, revokeAllAppPasswords, revokeAppPassword } from '../../flows/app-passwords.js';
import { findUser } from '../../flows/users.js';
import { addStoreOptions, CLI, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

/**
 * `countersign app-password …`: app passwords for a user's legacy clients (IMAP, EAS, SMTP). A
 * new password is printed once; only its hash is kept. The tenant must allow them
 * (`countersign settings set --tenant T app_passwords_allowed=true`).
 */
type Options = GlobalOptions & { json?: boolean; tenant?: string; all?: boolean };

export function registerAppPasswordCommands(program: Command): void {
  const appPassword = program.command('app-password').description('app passwords for legacy clients that cannot do MFA (IMAP, EAS, SMTP)');
  addStoreOptions(
    appPassword
      .command('create <username> <name>')
      .description('create an app password named after the device; it is printed once')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--json', 'print JSON: {id, name, password, created_at}'),
  ).action((username: string, name: string, options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const created = await createAppPassword(services, CLI, tenant, await findUser(services.db, tenant.id, username), name);
      print(options.json, created, () => `app password "${created.name}" for ${username} (id ${created.id}), shown this once:\n\n  ${created.password}\n\ntype it into the device's mail or calendar app instead of the account password`);
    }),
  );
  addStoreOptions(appPassword.command('list <username>').description('the user’s app passwords (never the passwords)').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action(
    (username: string, options: Options) =>
      withServices(options, async (services) => {
        const tenant = await tenantOf(services, options.tenant);
        const list = await listAppPasswords(services, await findUser(services.db, tenant.id, username));
        print(
          options.json,
          list,
          () => list.map((p) => `${p.id}  ${p.name}  created ${p.created_at}  last used ${p.last_used_at === null ? 'never' : `${p.last_used_at} from ${p.last_used_ip ?? 'an unknown address'}`}`).join('\n') || '(no app passwords)',
        );
      }),
  );
  addStoreOptions(
    appPassword
      .command('revoke <username> [id]')
      .description('revoke one app password (by id or name), or all of them with --all: the next use fails')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--all', 'revoke every app password of the user')
      .option('--json', 'print JSON'),
  ).action((username: string, id: string | undefined, options: Options) =>
    withServices(options, async (services) => {
      if ((id === undefined) === (options.all !== true)) throw invalidInput('id', 'name one app password (its id or name), or pass --all, not both');
      const tenant = await tenantOf(services, options.tenant);
      const user = await findUser(services.db, tenant.id, username);
      if (id === undefined) {
        const revoked = await revokeAllAppPasswords(services, CLI, tenant, user);
        print(options.json, { revoked }, () => `revoked ${revoked} app password${revoked === 1 ? '' : 's'} of ${user.username}`);
      } else {
        await revokeAppPassword(services, CLI, tenant, user, id);
        print(options.json, { revoked: 1 }, () => `revoked app password ${id} of ${user.username}`);
      }
    }),
  );
}
