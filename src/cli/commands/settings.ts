import type { Command } from 'commander';
import { invalidInput } from '../../core/errors.js';
import { DEFAULT_SETTINGS, type TenantSettings } from '../../core/settings.js';
import { tenantSettings, updateTenantSettings } from '../../flows/tenants.js';
import { addStoreOptions, CLI, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

type Options = GlobalOptions & { json?: boolean; tenant?: string };

/**
 * `key=value` → a value of the setting's own type (read off its default): numbers, true/false,
 * comma-separated lists (allowed_methods, phone_countries; empty = none), text (`null` clears
 * caller_id), so `fraud_code=0` stays the text "0".
 */
function parseAssignment(text: string): [string, unknown] {
  const at = text.indexOf('=');
  if (at <= 0) throw invalidInput(text, 'write settings as name=value, e.g. lockout_threshold=5');
  const name = text.slice(0, at);
  const raw = text.slice(at + 1);
  const example: unknown = Object.hasOwn(DEFAULT_SETTINGS, name) ? DEFAULT_SETTINGS[name as keyof TenantSettings] : undefined;
  if (Array.isArray(example)) return [name, raw.split(',').map((m) => m.trim()).filter(Boolean)];
  if (typeof example === 'boolean') return [name, raw === 'true' ? true : raw === 'false' ? false : raw];
  if (typeof example === 'string' || example === null) return [name, raw === 'null' ? null : raw];
  return [name, /^-?\d+$/.test(raw) ? Number(raw) : raw];
}

export function registerSettingsCommands(program: Command): void {
  const settings = program.command('settings').description('tenant service settings');
  addStoreOptions(settings.command('show').description('show the settings').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action((options: Options) =>
    withServices(options, async (services) => {
      const current = tenantSettings(await tenantOf(services, options.tenant));
      print(options.json, current, () => Object.entries(current).map(([k, v]) => `${k} = ${Array.isArray(v) ? v.join(',') : String(v)}`).join('\n'));
    }),
  );
  addStoreOptions(
    settings.command('set <assignments...>').description('change settings: name=value … (all or nothing)').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON'),
  ).action((assignments: string[], options: Options) =>
    withServices(options, async (services) => {
      const change = Object.fromEntries(assignments.map(parseAssignment));
      const updated = await updateTenantSettings(services, CLI, await tenantOf(services, options.tenant), change);
      print(options.json, updated, () => `updated ${Object.keys(change).join(', ')}`);
    }),
  );
}
