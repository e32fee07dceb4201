import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { CountersignError, invalidInput } from '../../core/errors.js';
import { AUDIO_TYPES, deleteGreeting, listGreetings, MAX_AUDIO_BYTES, PROMPT_KINDS, setGreeting, type GreetingInput, type GreetingView } from '../../flows/greetings.js';
import { preregisterPhone } from '../../flows/enrollment.js';
import { confirmPhoneVerification, startPhoneVerification } from '../../flows/phone-verification.js';
import { listTelephonyLog, type TelephonyLogView } from '../../flows/telephony.js';
import { findUser } from '../../flows/users.js';
import { addStoreOptions, CLI, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

/**
 * `countersign greeting …`, `countersign phone …` and `countersign telephony …`: the CLI beside
 * the phone admin APIs — a tenant's own call prompts (`/v1/admin/greetings`), proving a user's
 * phone number with a code (`/v1/admin/users/{user}/phones/{type}/verify`) or pre-registering it
 * without proof (`POST /v1/admin/users/{user}/phones`), and the telephony
 * log of texts and calls sent (`/v1/admin/telephony-log`, numbers masked). The same flows.
 */
type Options = GlobalOptions & { json?: boolean; tenant?: string };

const MAX_LOG_LIMIT = 1000;
const DEFAULT_LOG_LIMIT = 100;

function describeGreeting(greeting: GreetingView): string {
  return `${greeting.language}  ${greeting.kind}  ${greeting.audio ? 'audio' : 'text'}  ${greeting.text}`;
}

function describeEntry(entry: TelephonyLogView): string {
  return `${entry.at}  ${entry.kind}  ${entry.purpose}  ${entry.number}  ${entry.provider}  ${entry.status}  ${entry.units} unit${entry.units === 1 ? '' : 's'}`;
}

/** An audio file for `greeting set --file`: refused with one line naming it when missing, unreadable or over 1 MB. */
function readAudioFile(path: string): Buffer {
  let size: number;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) throw new CountersignError('INVALID_INPUT', `${path}: is not a file`);
    size = stat.size;
  } catch (error) {
    if (error instanceof CountersignError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new CountersignError('INVALID_INPUT', code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot be read (${code ?? 'error'})`);
  }
  if (size > MAX_AUDIO_BYTES) throw new CountersignError('PAYLOAD_TOO_LARGE', `${path}: at most 1 MB (${MAX_AUDIO_BYTES} bytes); this file has ${size} bytes`);
  try {
    return readFileSync(path);
  } catch (error) {
    throw new CountersignError('INVALID_INPUT', `${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function parseLogLimit(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_LOG_LIMIT;
  const limit = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(limit >= 1 && limit <= MAX_LOG_LIMIT)) throw invalidInput('--limit', `must be a whole number from 1 to ${MAX_LOG_LIMIT}`);
  return limit;
}

function parseSince(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const since = Date.parse(raw);
  if (Number.isNaN(since)) throw invalidInput('--since', 'must be an ISO 8601 time such as 2025-01-31 or 2025-01-31T09:00:00Z');
  return since;
}

export function registerPhoneCommands(program: Command): void {
  const tenantOption = (c: Command): Command => addStoreOptions(c.requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON'));

  // --- greeting: the tenant's own call prompts -------------------------------------------------
  const greeting = program.command('greeting').description('the tenant’s own call prompts (custom voice messages); the built-in ones apply where none is set');

  tenantOption(greeting.command('list').description('the tenant’s own call prompts, by language and kind')).action((options: Options) =>
    withServices(options, async (services) => {
      const greetings = await listGreetings(services, await tenantOf(services, options.tenant));
      print(options.json, greetings, () => greetings.map(describeGreeting).join('\n') || '(no custom greetings: the built-in prompts are used)');
    }),
  );

  tenantOption(
    greeting
      .command('set <language> <kind>')
      .description('set a call prompt: a text spoken by text-to-speech (--text), or an MP3 or WAV file of at most 1 MB played instead (--file)')
      .option('--text <text>', 'the words (1–500 characters); with --file, what the outbox and the list show')
      .option('--file <audio>', `an MP3 or WAV file (${AUDIO_TYPES.join(', ')}), at most 1 MB`)
      .addHelpText(
        'after',
        `\nLANGUAGE is a tag such as en-US or fr-FR. KIND is one of:\n  ${PROMPT_KINDS.join(', ')}\n` +
          'In a text, {fraud_code} is replaced by the tenant’s fraud code and {code} by the digits of the code\n' +
          '(the code prompt must include {code}).\n\nExamples:\n' +
          '  countersign greeting set --tenant acme en-US greeting --text "Acme sign-in: press pound to finish, or {fraud_code} then pound to report fraud."\n' +
          '  countersign greeting set --tenant acme en-US success --file thanks.wav',
      ),
  ).action(async (language: string, kind: string, options: Options & { text?: string; file?: string }) => {
    // Checked before the store is opened.
    let input: GreetingInput;
    if (options.file !== undefined) input = { audio: readAudioFile(options.file), ...(options.text === undefined ? {} : { text: options.text }) };
    else if (options.text !== undefined) input = { text: options.text };
    else throw invalidInput('--text', 'give the words with --text TEXT, or an audio file with --file AUDIO.mp3|.wav');
    await withServices(options, async (services) => {
      const view = await setGreeting(services, CLI, await tenantOf(services, options.tenant), language, kind, input);
      print(options.json, view, () => `set ${describeGreeting(view)}`);
    });
  });

  tenantOption(greeting.command('delete <language> <kind>').description('remove a call prompt (the built-in one applies again)')).action((language: string, kind: string, options: Options) =>
    withServices(options, async (services) => {
      await deleteGreeting(services, CLI, await tenantOf(services, options.tenant), language, kind);
      print(options.json, { deleted: { language, kind } }, () => `deleted the ${language} ${kind} greeting (the built-in prompt applies again)`);
    }),
  );

  // --- phone: proving a user's number -----------------------------------------------------------
  const phone = program.command('phone').description('prove a user’s phone number with a code, or pre-register it (only verified numbers take sign-in texts and calls)');
  const typeOption = (c: Command): Command => c.option('--type <type>', 'mobile (a text), office or alternate (a call)', 'mobile');

  tenantOption(typeOption(phone.command('verify <username> <number>').description('send a code to a number (E.164, or national in the tenant country); it becomes the user’s number of that type, verified once the code is read back'))).action(
    (username: string, number: string, options: Options & { type: string }) =>
      withServices(options, async (services) => {
        const tenant = await tenantOf(services, options.tenant);
        const view = await startPhoneVerification(services, CLI, tenant, await findUser(services.db, tenant.id, username), options.type, number);
        print(
          options.json,
          view,
          () =>
            `${view.type === 'mobile' ? 'a text with a code was sent to' : 'a call that reads out a code was placed to'} ${view.number} (${view.type}); it is good until ${view.expires_at} — read it back with: countersign phone confirm --tenant ${options.tenant ?? tenant.name} ${username} --type ${view.type} CODE`,
        );
      }),
  );

  tenantOption(typeOption(phone.command('confirm <username> <code>').description('read back the code sent by `phone verify`; exit 1 when it is not accepted'))).action(
    (username: string, code: string, options: Options & { type: string }) =>
      withServices(options, async (services) => {
        const tenant = await tenantOf(services, options.tenant);
        const result = await confirmPhoneVerification(services, CLI, tenant, await findUser(services.db, tenant.id, username), options.type, code);
        const reason = result.reason ?? result.status;
        print(options.json, result, () => (result.verified ? `the ${options.type} number of ${username} is verified` : `not verified: ${reason}`));
        if (!result.verified) {
          process.stderr.write(`countersign: the code was not accepted (${reason})\n`);
          process.exitCode = 1;
        }
      }),
  );

  tenantOption(
    typeOption(
      phone
        .command('preregister <username> <number>')
        .description('pre-register a number: it takes texts and calls at once, without proof by the user (audited with the reason; the user is told)')
        .requiredOption('--reason <text>', 'why the number needs no proof, e.g. "confirmed in person, ticket 4711"'),
    ),
  ).action((username: string, number: string, options: Options & { type: string; reason: string }) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const result = await preregisterPhone(services, CLI, tenant, await findUser(services.db, tenant.id, username), { number, type: options.type, verified: true, reason: options.reason });
      print(options.json, result, () => `${result.replaced ? 'replaced' : 'added'} the ${result.type} number ${result.number} of ${username}: pre-registered, usable for sign-in at once`);
    }),
  );

  // --- telephony: the log of texts and calls ----------------------------------------------------
  const telephony = program.command('telephony').description('texts and calls sent through the telephony provider');

  tenantOption(
    telephony
      .command('log')
      .description('texts and calls sent for the tenant, newest first (numbers masked): the telephony usage')
      .option('--limit <n>', `how many (1–${MAX_LOG_LIMIT})`, String(DEFAULT_LOG_LIMIT))
      .option('--since <time>', 'only those sent at or after this ISO 8601 time'),
  ).action(async (options: Options & { limit?: string; since?: string }) => {
    // Checked before the store is opened.
    const limit = parseLogLimit(options.limit);
    const since = parseSince(options.since);
    await withServices(options, async (services) => {
      const entries = await listTelephonyLog(services, await tenantOf(services, options.tenant), { limit, since });
      print(options.json, entries, () => (entries.length === 0 ? '(no texts or calls)' : ['TIME  KIND  PURPOSE  NUMBER  PROVIDER  STATUS  UNITS', ...entries.map(describeEntry)].join('\n')));
    });
  });
}
