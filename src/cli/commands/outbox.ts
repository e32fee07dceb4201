import type { Command } from 'commander';
import { invalidInput } from '../../core/errors.js';
import { listOutbox, pressOutbox, replyOutbox, showOutbox, type OutboxView } from '../../flows/outbox.js';
import type { Services } from '../../services.js';
import { addStoreOptions, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

/**
 * `countersign outbox …`: the local outbox (the default telephony provider) seen from the phone's
 * side — list and show the texts and calls Countersign sent, answer a call and press keys, reply
 * to a text. The same flows as `/v1/admin/outbox`; `--tenant` is optional (none = every tenant).
 */
type Options = GlobalOptions & { json?: boolean; tenant?: string; limit?: string };

/** A message as the CLI prints it in JSON: the outbox view without `created_at`, in this key order. */
interface OutboxMessage {
  id: string;
  kind: 'sms' | 'call' | 'email';
  to: string;
  text: string;
  status: string;
  challenge_id: string | null;
}

const MAX_LIMIT = 500;

function messageOf(view: OutboxView): OutboxMessage {
  return { id: view.id, kind: view.kind, to: view.to, text: view.text, status: view.status, challenge_id: view.challenge_id };
}

function describe(message: OutboxMessage): string {
  const challenge = message.challenge_id === null ? '' : `  (challenge ${message.challenge_id})`;
  const text = message.text.split('\n').map((line) => `    ${line}`).join('\n');
  return `${message.id}  ${message.kind}  ${message.to}  ${message.status}${challenge}\n${text}`;
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined) return 50;
  if (!/^\d+$/.test(raw)) throw invalidInput('--limit', `must be a whole number from 1 to ${MAX_LIMIT}`);
  const limit = Number(raw);
  if (limit < 1 || limit > MAX_LIMIT) throw invalidInput('--limit', `must be a whole number from 1 to ${MAX_LIMIT}`);
  return limit;
}

/** The tenant id a command is limited to, or undefined for every tenant. */
async function scope(services: Services, ref: string | undefined): Promise<string | undefined> {
  return ref === undefined ? undefined : (await tenantOf(services, ref)).id;
}

export function registerOutboxCommands(program: Command): void {
  const outbox = program.command('outbox').description('the local outbox: texts and calls sent through the default provider, seen from the phone');
  const tenantOption = (c: Command): Command => addStoreOptions(c.option('--tenant <tenant>', 'only this tenant (id or name; default every tenant)').option('--json', 'print JSON'));

  tenantOption(outbox.command('list').description('texts and calls, newest first').option('--limit <n>', `how many (1–${MAX_LIMIT})`, '50')).action(async (options: Options) => {
    // Checked before the store is opened.
    const limit = parseLimit(options.limit);
    await withServices(options, async (services) => {
      const messages = (await listOutbox(services, { tenantId: await scope(services, options.tenant), limit })).map(messageOf);
      print(options.json, messages, () => messages.map(describe).join('\n') || '(the outbox is empty)');
    });
  });

  tenantOption(outbox.command('show <id>').description('one text or call')).action((id: string, options: Options) =>
    withServices(options, async (services) => {
      const message = messageOf(await showOutbox(services, id, await scope(services, options.tenant)));
      print(options.json, message, () => describe(message));
    }),
  );

  tenantOption(
    outbox
      .command('press <id> <digits>')
      .description('answer a call (if it is still ringing) and press keys: # approves; 0# then 1 reports fraud; the PIN then # in PIN mode')
      .addHelpText('after', "\nExamples:\n  countersign outbox press ID '#'       approve\n  countersign outbox press ID '0#'      then: countersign outbox press ID 1   to report fraud\n  countersign outbox press ID '2580#'   the PIN, then #, in PIN mode"),
  ).action((id: string, digits: string, options: Options) =>
    withServices(options, async (services) => {
      const message = messageOf(await pressOutbox(services, id, digits, await scope(services, options.tenant)));
      print(options.json, message, () => describe(message));
    }),
  );

  tenantOption(outbox.command('reply <id> <text>').description('reply to a text from the phone it went to (two-way text messages: Y approves)')).action((id: string, text: string, options: Options) =>
    withServices(options, async (services) => {
      const replied = await replyOutbox(services, id, text, await scope(services, options.tenant));
      const message = messageOf(replied.message);
      print(options.json, { message, result: replied.result }, () => `reply to ${message.id}: ${replied.result}\n${describe(message)}`);
    }),
  );
}
