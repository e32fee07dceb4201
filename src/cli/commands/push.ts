import type { Command } from 'commander';
import QRCode from 'qrcode';
import { invalidInput } from '../../core/errors.js';
import { listDevices, removeDevice, startActivation } from '../../flows/push.js';
import { findUser } from '../../flows/users.js';
import { addStoreOptions, CLI, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

/**
 * `countersign push …`: activation links for the Countersign Authenticator (a QR code in the
 * terminal), and the user's activated authenticators. The link points at the server's
 * public_url, or http://localhost:<port>; `--url` names another address people reach it by.
 */
type Options = GlobalOptions & { json?: boolean; tenant?: string; url?: string; withTotp?: boolean };

export function registerPushCommands(program: Command): void {
  const push = program.command('push').description('push approval: authenticator activation and devices');
  addStoreOptions(
    push
      .command('activate <username>')
      .description('start activating an authenticator: prints a single-use link (and its QR code), valid 10 minutes')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--url <base>', 'the address authenticators reach the server at (default: public_url, or http://localhost:<port>)')
      .option('--with-totp', 'the authenticator also gets a TOTP secret, for codes when it is offline')
      .option('--json', 'print JSON: {activation_url, expires_at}'),
  ).action((username: string, options: Options) =>
    withServices(options, async (services) => {
      if (options.url !== undefined && !/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(options.url)) throw invalidInput('--url', 'must be an http:// or https:// address');
      const tenant = await tenantOf(services, options.tenant);
      const user = await findUser(services.db, tenant.id, username);
      const started = await startActivation(services, CLI, tenant, user, { withTotp: options.withTotp === true });
      const url = options.url === undefined ? started.activation_url : started.activation_url.replace(/^.*(?=\/authenticator#activate=)/, options.url.replace(/\/+$/, ''));
      const qr = options.json === true ? '' : await QRCode.toString(url, { type: 'terminal', small: true });
      const local = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?\//.test(url)
        ? `\n\nthis link points at ${new URL(url).host}, which only this computer reaches: for a phone, set public_url (COUNTERSIGN_PUBLIC_URL) to an https:// address the phone reaches, or pass --url`
        : '';
      print(options.json, { activation_url: url, expires_at: started.expires_at }, () => `${qr}\nactivation link for ${user.username} (single use, until ${started.expires_at}):\n${url}\n\nscan it with the authenticator, or run: countersign authenticator activate "${url}"${local}`);
    }),
  );
  addStoreOptions(push.command('devices <username>').description('the user’s activated authenticators').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action(
    (username: string, options: Options) =>
      withServices(options, async (services) => {
        const tenant = await tenantOf(services, options.tenant);
        const devices = await listDevices(services, (await findUser(services.db, tenant.id, username)).id);
        print(options.json, devices, () => devices.map((d) => `${d.id}  ${d.name}  activated ${d.created_at}  last seen ${d.last_seen_at ?? 'never'}`).join('\n') || '(no authenticators)');
      }),
  );
  addStoreOptions(push.command('remove <username> <device>').description('remove an authenticator: it can no longer answer').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action(
    (username: string, device: string, options: Options) =>
      withServices(options, async (services) => {
        const tenant = await tenantOf(services, options.tenant);
        await removeDevice(services, CLI, tenant, await findUser(services.db, tenant.id, username), device);
        print(options.json, { removed: device }, () => `removed authenticator ${device}`);
      }),
  );
}
