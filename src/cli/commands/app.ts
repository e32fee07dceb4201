import type { Command } from 'commander';
import { createAdminKey, createApplication, deleteApplication, listApplications } from '../../flows/api-keys.js';
import { addStoreOptions, CLI, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

type Options = GlobalOptions & { json?: boolean; tenant?: string };

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

  const adminKey = program.command('admin-key').description('administrator API keys');
  addStoreOptions(adminKey.command('create <name>').description('create an administrator key (every tenant, or only --tenant); shown once').option('--tenant <tenant>', 'limit the key to one tenant').option('--json', 'print JSON')).action(
    (name: string, options: Options) =>
      withServices(options, async (services) => {
        const tenant = options.tenant === undefined ? null : await tenantOf(services, options.tenant);
        const created = await createAdminKey(services, CLI, tenant?.id ?? null, name);
        print(options.json, created, () => `created administrator key ${created.id}${tenant === null ? '' : ` for tenant ${tenant.name}`}\nAPI key (shown once): ${created.api_key}`);
      }),
  );
}
