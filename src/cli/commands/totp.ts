import type { Command } from 'commander';
import QRCode from 'qrcode';
import { activateMethod, enrollTotp } from '../../flows/methods.js';
import { findUser } from '../../flows/users.js';
import { addStoreOptions, CLI, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

type Options = GlobalOptions & { json?: boolean; tenant?: string };

export function registerTotpCommands(program: Command): void {
  const totp = program.command('totp').description('authenticator app (TOTP) enrollment');
  addStoreOptions(
    totp
      .command('enroll <username>')
      .description('start enrolling an authenticator app; prints the secret, otpauth URI and a QR code once')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--algorithm <alg>', 'SHA1, SHA256 or SHA512', 'SHA1')
      .option('--digits <n>', '6 or 8', '6')
      .option('--period <s>', '30 or 60', '30')
      .option('--label <label>', 'name shown in lists')
      .option('--json', 'print JSON'),
  ).action((username: string, options: Options & { algorithm: string; digits: string; period: string; label?: string }) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const enrollment = await enrollTotp(services, CLI, tenant, await findUser(services.db, tenant.id, username), {
        algorithm: options.algorithm,
        digits: Number(options.digits),
        period: Number(options.period),
        label: options.label,
      });
      const terminalQr = options.json === true ? '' : await QRCode.toString(enrollment.uri, { type: 'terminal', small: true });
      print(options.json, enrollment, () =>
        [
          `method ${enrollment.method.id} is pending: scan the code, then run`,
          `  countersign totp activate --tenant ${tenant.name} ${username} ${enrollment.method.id} CODE`,
          '',
          terminalQr,
          `secret: ${enrollment.secret}`,
          `uri:    ${enrollment.uri}`,
        ].join('\n'),
      );
    }),
  );
  addStoreOptions(
    totp
      .command('activate <username> <method-id> <code>')
      .description('activate a pending authenticator with its first code')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--json', 'print JSON'),
  ).action((username: string, methodId: string, code: string, options: Options) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const method = await activateMethod(services, CLI, tenant, await findUser(services.db, tenant.id, username), methodId, code);
      print(options.json, method, () => `method ${method.id} is active${method.default ? ' (default)' : ''}`);
    }),
  );
}
