import type { Command } from 'commander';
import { invalidInput } from '../../core/errors.js';
import {
  ADMIN_ROLES,
  createAdminKey,
  createApplication,
  createApplicationKey,
  DEFAULT_ADMIN_ROLE,
  deleteApplication,
  isAdminRole,
  listAdminKeys,
  listApplicationKeys,
  listApplications,
  revokeAdminKey,
  revokeApplicationKey,
} from '../../flows/api-keys.js';
import { addStoreOptions, CLI, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

type Options = GlobalOptions & { json?: boolean; tenant?: string; name?: string };

const revokedNote = (revokedAt: string | null): string => (revokedAt === null ? 'active' : `revoked ${revokedAt}`);

export function registerAppCommands(program: Command): void {
  const app = program.command('app').description('applications (relying parties) and their API keys');
  addStoreOptions(app.command('create <name>').description('create an application; its API key is shown once').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action(
    (name: string, options: Options) =>
      withServices(options, async (services) => {
        const created = await createApplication(services, CLI, await tenantOf(services, options.tenant), name);
        print(options.json, { id: created.id, api_key: created.api_key }, () => `created application ${created.name} (${created.id})\nAPI key (shown once): ${created.api_key}`);
      }),
  );
  addStoreOptions(app.command('list').description('list applications').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action((options: Options) =>
    withServices(options, async (services) => {
      const apps = await listApplications(services, await tenantOf(services, options.tenant));
      print(options.json, apps, () => apps.map((a) => `${a.id}  ${a.name}`).join('\n') || '(no applications)');
    }),
  );
  addStoreOptions(app.command('delete <application>').description('delete an application (id or name) and its keys').requiredOption('--tenant <tenant>', 'tenant id or name')).action(
    (ref: string, options: Options) =>
      withServices(options, async (services) => {
        await deleteApplication(services, CLI, await tenantOf(services, options.tenant), ref);
        print(false, null, () => `deleted application ${ref}`);
      }),
  );

  const key = app.command('key').description('the API keys of an application: create another (rotation), list, revoke');
  addStoreOptions(
    key
      .command('create <application>')
      .description('create a further key for an application (id or name); shown once; older keys stay valid until revoked')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--name <name>', 'a name for the key (default: the application name)')
      .option('--json', 'print JSON'),
  ).action((ref: string, options: Options) =>
    withServices(options, async (services) => {
      const created = await createApplicationKey(services, CLI, await tenantOf(services, options.tenant), ref, options.name);
      print(options.json, created, () => `created key ${created.id} for application ${ref}\nAPI key (shown once): ${created.api_key}`);
    }),
  );
  addStoreOptions(key.command('list <application>').description('list an application’s keys (never the keys themselves)').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action(
    (ref: string, options: Options) =>
      withServices(options, async (services) => {
        const keys = await listApplicationKeys(services, await tenantOf(services, options.tenant), ref);
        print(options.json, keys, () => keys.map((k) => `${k.id}  ${k.name}  created ${k.created_at}  ${revokedNote(k.revoked_at)}`).join('\n') || '(no keys)');
      }),
  );
  addStoreOptions(key.command('revoke <application> <key-id>').description('revoke one key of an application').requiredOption('--tenant <tenant>', 'tenant id or name')).action(
    (ref: string, keyId: string, options: Options) =>
      withServices(options, async (services) => {
        await revokeApplicationKey(services, CLI, await tenantOf(services, options.tenant), ref, keyId);
        print(false, null, () => `revoked key ${keyId} of application ${ref}`);
      }),
  );

  const adminKey = program.command('admin-key').description('administrator API keys and their roles');
  addStoreOptions(
    adminKey
      .command('create <name>')
      .description('create an administrator key (every tenant, or only --tenant) with a role; shown once')
      .option('--tenant <tenant>', 'limit the key to one tenant')
      .option('--role <role>', `${ADMIN_ROLES.join(' | ')} (default ${DEFAULT_ADMIN_ROLE}, what every key was before roles; give the least that suffices)`)
      .option('--json', 'print JSON: {id, api_key}'),
  ).action((name: string, options: Options & { role?: string }) =>
    withServices(options, async (services) => {
      // Checked before the tenant is looked up, so a typo in the role is named first.
      if (options.role !== undefined && !isAdminRole(options.role)) throw invalidInput('--role', `must be one of ${ADMIN_ROLES.join(', ')}`);
      const tenant = options.tenant === undefined ? null : await tenantOf(services, options.tenant);
      const created = await createAdminKey(services, CLI, tenant?.id ?? null, name, options.role);
      // The human text keeps its two lines (scripts read the key from the last one).
      print(options.json, created, () => `created administrator key ${created.id}${tenant === null ? '' : ` for tenant ${tenant.name}`}\nAPI key (shown once): ${created.api_key}`);
    }),
  );
  addStoreOptions(adminKey.command('list').description('list administrator keys with their roles (never the keys themselves)').option('--json', 'print JSON')).action((options: Options) =>
    withServices(options, async (services) => {
      const keys = await listAdminKeys(services, CLI);
      print(
        options.json,
        keys,
        () => keys.map((k) => `${k.id}  ${k.name}  ${k.tenant ?? '(every tenant)'}  ${k.role}  created ${k.created_at}  ${revokedNote(k.revoked_at)}`).join('\n') || '(no administrator keys)',
      );
    }),
  );
  addStoreOptions(adminKey.command('revoke <id>').description('revoke an administrator key; the last active global_admin key for every tenant cannot be revoked')).action((id: string, options: Options) =>
    withServices(options, async (services) => {
      await revokeAdminKey(services, CLI, id);
      print(false, null, () => `revoked administrator key ${id}`);
    }),
  );
}
