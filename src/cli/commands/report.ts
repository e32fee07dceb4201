import type { Command } from 'commander';
import { writeCsv } from '../../core/csv.js';
import { invalidInput } from '../../core/errors.js';
import { REPORTS, type ReportInput } from '../../flows/report-query.js';
import { appPasswordReport, blockedUserReport, bypassReport, fraudReport, signInReport, signInSummary, telephonyReport, type Report } from '../../flows/reports.js';
import { serverStatus } from '../../flows/server-status.js';
import { usageReport } from '../../flows/usage.js';
import type { Services } from '../../services.js';
import type { TenantRow } from '../../store/schema.js';
import { addStoreOptions, CLI, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

/**
 * `countersign report KIND --tenant T …`: the admin API's reports from the CLI, as a table, as
 * JSON (`--json`: {rows, next_cursor, …}) or as CSV (`--csv`, the same file the API gives; the
 * next page's cursor goes to stderr so stdout stays one CSV document). `countersign status`:
 * version, store, migrations and queue depths (no uptime: the CLI is not the server).
 */
type Options = GlobalOptions & { tenant?: string; from?: string; to?: string; username?: string; application?: string; result?: string; method?: string; limit?: string; cursor?: string; csv?: boolean; json?: boolean };

type ReportFlow = (services: Services, tenant: TenantRow, input: ReportInput) => Promise<Report<never> & Record<string, unknown>>;
const FLOWS: Record<(typeof REPORTS)[number], ReportFlow> = {
  'sign-ins': signInReport as unknown as ReportFlow,
  summary: signInSummary as unknown as ReportFlow,
  fraud: fraudReport as unknown as ReportFlow,
  'blocked-users': blockedUserReport as unknown as ReportFlow,
  bypasses: bypassReport as unknown as ReportFlow,
  'app-passwords': appPasswordReport as unknown as ReportFlow,
  telephony: telephonyReport as unknown as ReportFlow,
  usage: usageReport as unknown as ReportFlow,
};

type Cell = string | number | boolean | null | undefined;

function table(columns: readonly string[], rows: readonly Record<string, Cell>[]): string {
  const cells = [columns as string[], ...rows.map((row) => columns.map((c) => (row[c] === null || row[c] === undefined ? '-' : String(row[c]))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => (line[i] ?? '').length)));
  return cells.map((line) => line.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

export function registerReportCommands(program: Command): void {
  addStoreOptions(
    program
      .command('report <kind>')
      .description(`a report: ${REPORTS.join(', ')}`)
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--from <time>', 'ISO 8601 time or date (UTC), inclusive')
      .option('--to <time>', 'ISO 8601 time or date (UTC), exclusive')
      .option('--username <username>', 'only this user')
      .option('--application <application>', 'only this application (id or name)')
      .option('--result <result>', 'only this result (approved, denied, fraud; blocked, locked_out; active, used, expired, revoked; a telephony status)')
      .option('--method <method>', 'sign-ins and summary: only this method (none, totp, oath, sms, voice, push, code, app_password)')
      .option('--limit <n>', 'rows per page, 1–1000 (default 100)')
      .option('--cursor <cursor>', 'the next page: the cursor the previous page printed')
      .option('--csv', 'print CSV (header row; the next cursor on stderr)')
      .option('--json', 'print JSON: {rows, next_cursor, …}'),
  ).action((kind: string, options: Options) =>
    withServices(options, async (services) => {
      if (!(REPORTS as readonly string[]).includes(kind)) throw invalidInput('kind', `must be one of ${REPORTS.join(', ')}`);
      if (options.csv === true && options.json === true) throw invalidInput('--csv', 'choose --csv or --json, not both');
      const tenant = await tenantOf(services, options.tenant);
      const { from, to, username, application, result, method, limit, cursor } = options;
      const report = await FLOWS[kind as (typeof REPORTS)[number]](services, tenant, { from, to, username, application, result, method, limit, cursor });
      const { columns, ...body } = report;
      const rows = report.rows as unknown as Record<string, Cell>[];
      if (options.csv === true) {
        process.stdout.write(writeCsv(columns, rows.map((row) => columns.map((c) => row[c]))));
        if (report.next_cursor !== null) process.stderr.write(`next page: --cursor ${report.next_cursor}\n`);
        return;
      }
      print(options.json, body, () => {
        const lines = [rows.length === 0 ? '(no rows)' : table(columns, rows)];
        const current = (body as { current?: Record<string, Cell> }).current;
        if (current !== undefined) lines.unshift(`now: ${Object.entries(current).map(([k, v]) => `${k} ${v === null ? '-' : String(v)}`).join(', ')}`);
        if (report.next_cursor !== null) lines.push(`next page: --cursor ${report.next_cursor}`);
        return lines.join('\n');
      });
    }),
  );

  addStoreOptions(program.command('status').description('server status: version, store, migrations, queue depths').option('--json', 'print JSON')).action((options: Options) =>
    withServices(options, async (services) => {
      const status = await serverStatus(services, CLI, null);
      print(options.json, status, () =>
        [
          `countersign ${status.version}`,
          `store: ${status.store.dialect} ${status.store.location ?? ''}`.trimEnd(),
          `migrations: ${status.migrations.applied.length} applied${status.migrations.pending.length === 0 ? '' : `, pending: ${status.migrations.pending.join(', ')}`}`,
          `queues: ${Object.entries(status.queues).map(([k, v]) => `${k} ${v}`).join(', ')}`,
          `audit records: ${status.audit.records}`,
        ].join('\n'),
      );
    }),
  );
}
