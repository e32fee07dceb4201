import type { Command } from 'commander';
import { CountersignError } from '../../core/errors.js';
import { assignToken, deleteToken, importTokens, withKeyHint, listTokens, resyncToken, unassignToken } from '../../flows/tokens.js';
import { addStoreOptions, CLI, print, readInputFile, tenantOf, withServices, type GlobalOptions } from '../context.js';

type Options = GlobalOptions & { json?: boolean; tenant?: string };

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('OATH hardware tokens');
  const withTenant = (c: Command): Command => addStoreOptions(c.requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON'));

  withTenant(
    token
      .command('import <file>')
      .description('import tokens from the Azure CSV (upn,serial number,secret key,time interval,manufacturer,model) or a PSKC file')
      .option('--psk <hex>', 'pre-shared AES key of an encrypted PSKC file, in hex (visible to other users of this machine: prefer --psk-file)')
      .option('--psk-file <file>', 'file holding the pre-shared AES key in hex')
      .option('--password-file <file>', 'file holding the password of a PBKDF2-protected PSKC file'),
  ).action((file: string, options: Options & { psk?: string; pskFile?: string; passwordFile?: string }) =>
    withServices(options, async (services) => {
      if (options.pskFile !== undefined) options.psk = readInputFile(options.pskFile).trim();
      if (options.psk !== undefined && !/^([0-9a-fA-F]{2}){16,32}$/.test(options.psk)) throw new CountersignError('INVALID_INPUT', '--psk: must be the key in hex (32 hex digits for AES-128)');
      const keys = {
        ...(options.psk === undefined ? {} : { preSharedKey: Buffer.from(options.psk, 'hex') }),
        ...(options.passwordFile === undefined ? {} : { password: readInputFile(options.passwordFile).replace(/\r?\n$/, '') }),
      };
      const tenant = await tenantOf(services, options.tenant);
      const report = await importTokens(services, CLI, tenant, readInputFile(file), keys).catch((error: unknown) => {
        throw withKeyHint(error, 'give it with --psk-file FILE (or --psk HEX)', 'give it with --password-file FILE');
      });
      print(options.json, report, () =>
        [
          ...report.imported.map((t) => `imported ${t.position}: serial ${t.serial} → ${t.username ?? 'inventory (unassigned)'}`),
          ...report.refused.map((r) => `refused ${r.position}: ${r.reason}`),
          `${report.format.toUpperCase()}: ${report.imported.length} imported, ${report.refused.length} refused`,
        ].join('\n'),
      );
      // SPEC: exit 1 comes with a one-line error on stderr; the report above says line by line why.
      if (report.imported.length === 0 && report.refused.length > 0) throw new CountersignError('INVALID_FILE', `no token was imported (${report.refused.length} refused)`);
    }),
  );

  withTenant(token.command('list').description('list tokens').option('--unassigned', 'only tokens in the inventory')).action((options: Options & { unassigned?: boolean }) =>
    withServices(options, async (services) => {
      const tokens = await listTokens(services, await tenantOf(services, options.tenant), { unassigned: options.unassigned });
      print(options.json, tokens, () => tokens.map((t) => `${t.serial ?? t.id}  ${t.otp_kind}  ${t.username ?? '(unassigned)'}  ${[t.manufacturer, t.model].filter(Boolean).join(' ')}`).join('\n') || '(no tokens)');
    }),
  );

  withTenant(token.command('assign <token> <username>').description('assign a token (serial number or id) to a user')).action((ref: string, username: string, options: Options) =>
    withServices(options, async (services) => {
      const view = await assignToken(services, CLI, await tenantOf(services, options.tenant), ref, username);
      print(options.json, view, () => `token ${view.serial ?? view.id} assigned to ${view.username ?? ''}`);
    }),
  );

  withTenant(token.command('unassign <token>').description('return a token to the inventory')).action((ref: string, options: Options) =>
    withServices(options, async (services) => {
      const view = await unassignToken(services, CLI, await tenantOf(services, options.tenant), ref);
      print(options.json, view, () => `token ${view.serial ?? view.id} is back in the inventory`);
    }),
  );

  withTenant(token.command('resync <token> <code1> <code2>').description('resynchronise an HOTP token with two consecutive codes')).action((ref: string, code1: string, code2: string, options: Options) =>
    withServices(options, async (services) => {
      const view = await resyncToken(services, CLI, await tenantOf(services, options.tenant), ref, { code1, code2 });
      print(options.json, view, () => `token ${view.serial ?? view.id} resynchronised`);
    }),
  );

  withTenant(token.command('delete <token>').description('delete a token')).action((ref: string, options: Options) =>
    withServices(options, async (services) => {
      await deleteToken(services, CLI, await tenantOf(services, options.tenant), ref);
      print(options.json, { deleted: ref }, () => `deleted token ${ref}`);
    }),
  );
}
