import type { Command } from 'commander';
import { createTenant, deleteTenant, findTenant, listTenants } from '../../flows/tenants.js';
import { addStoreOptions, CLI, print, withServices, type GlobalOptions } from '../context.js';

type Options = GlobalOptions & { json?: boolean };

export function registerTenantCommands(program: Command): void {
  const tenant = program.command('tenant').description('tenants (directories)');
  addStoreOptions(tenant.command('create <name>').description('create a tenant').option('--json', 'print JSON')).action((name: string, options: Options) =>
    withServices(options, async (services) => {
      const created = await createTenant(services, CLI, name);
      print(options.json, { id: created.id, name: created.name }, () => `created tenant ${created.name} (${created.id})`);
    }),
  );
  addStoreOptions(tenant.command('list').description('list tenants').option('--json', 'print JSON')).action((options: Options) =>
    withServices(options, async (services) => {
      const tenants = await listTenants(services, CLI);
      print(options.json, tenants, () => tenants.map((t) => `${t.id}  ${t.name}`).join('\n') || '(no tenants)');
    }),
  );
  addStoreOptions(tenant.command('delete <tenant>').description('delete a tenant and everything in it')).action((ref: string, options: Options) =>
    withServices(options, async (services) => {
      const row = await findTenant(services, ref);
      await deleteTenant(services, CLI, row);
      print(false, null, () => `deleted tenant ${row.name}`);
    }),
  );
}
