import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { CountersignError } from '../core/errors.js';
import { registerAppCommands } from './commands/app.js';
import { registerAppPasswordCommands } from './commands/app-password.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerAuthenticatorCommands } from './commands/authenticator.js';
import { registerEnrollCommands } from './commands/enroll.js';
import { registerBypassCommands } from './commands/bypass.js';
import { registerKeyCommands } from './commands/keys.js';
import { registerOutboxCommands } from './commands/outbox.js';
import { registerPolicyCommands } from './commands/policy.js';
import { registerPushCommands } from './commands/push.js';
import { registerReportCommands } from './commands/report.js';
import { registerPhoneCommands } from './commands/phone.js';
import { registerServeCommand } from './commands/serve.js';
import { registerSettingsCommands } from './commands/settings.js';
import { registerTenantCommands } from './commands/tenant.js';
import { registerTokenCommands } from './commands/token.js';
import { registerTotpCommands } from './commands/totp.js';
import { registerUserCommands } from './commands/user.js';
import { registerWebhookCommands } from './commands/webhook.js';

/**
 * `countersign …`: the CLI of SPEC's table. Exit code 0 on success, 1 with a one-line error on
 * stderr otherwise. Every command takes --data-dir / --database-url so it can share a store
 * with a running server.
 */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function buildProgram(): Command {
  const program = new Command('countersign')
    .description('Countersign — multi-factor authentication server and administration')
    .version(VERSION)
    .showSuggestionAfterError()
    .addHelpText(
      'after',
      '\nEvery command takes --data-dir DIR (or COUNTERSIGN_DATA_DIR) and --database-url postgres://… (or\nCOUNTERSIGN_DATABASE_URL), so it can share a store with a running server; most take --json.\nRun `countersign COMMAND --help` for a command\'s options.',
    )
    .exitOverride();
  registerServeCommand(program);
  registerTenantCommands(program);
  registerAppCommands(program);
  registerUserCommands(program);
  registerWebhookCommands(program);
  registerTotpCommands(program);
  registerTokenCommands(program);
  registerSettingsCommands(program);
  registerKeyCommands(program);
  registerAuditCommands(program);
  registerOutboxCommands(program);
  registerPushCommands(program);
  registerReportCommands(program);
  registerPolicyCommands(program);
  registerAppPasswordCommands(program);
  registerPhoneCommands(program);
  registerAuthenticatorCommands(program);
  registerEnrollCommands(program);
  registerBypassCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; usage errors were already printed by commander.
      return error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 1;
    }
    const message = error instanceof CountersignError ? error.message : error instanceof Error ? error.message : String(error);
    process.stderr.write(`countersign: ${message.split('\n').join('\n  ')}\n`);
    return 1;
  }
}
