import type { Command } from 'commander';
import { listNotifications } from '../../flows/notifications.js';
import { findUser } from '../../flows/users.js';
import { listAudit, verifyAuditChain } from '../../store/audit-log.js';
import { addStoreOptions, print, tenantOf, withServices, type GlobalOptions } from '../context.js';

type Options = GlobalOptions & { json?: boolean; tenant?: string; limit?: string };

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit log');
  addStoreOptions(audit.command('verify').description('check the hash chain; exit 1 naming the first broken record').option('--json', 'print JSON')).action((options: Options) =>
    withServices(options, async (services) => {
      const result = await verifyAuditChain(services.db, services.keyring.auditKey);
      if (result.ok) {
        print(options.json, result, () => `audit log intact: ${result.records} records`);
        return;
      }
      print(options.json, result, () => `audit log BROKEN at record ${result.firstBadSeq}: ${result.problem} (${result.records} records verified before it)`);
      process.stderr.write(`countersign: the audit log is broken at record ${result.firstBadSeq}: ${result.problem}\n`);
      process.exitCode = 1;
    }),
  );
  addStoreOptions(audit.command('list').description('newest audit records').option('--tenant <tenant>', 'only this tenant').option('--limit <n>', 'how many', '50').option('--json', 'print JSON')).action(
    (options: Options) =>
      withServices(options, async (services) => {
        const tenant = options.tenant === undefined ? undefined : await tenantOf(services, options.tenant);
        const records = await listAudit(services.db, { tenantId: tenant?.id, limit: Number(options.limit ?? 50) });
        print(options.json, records, () => records.map((r) => `${r.seq}  ${r.at}  ${r.actor}  ${r.action}  ${r.target ?? ''}  ${JSON.stringify(r.detail)}`).join('\n') || '(no records)');
      }),
  );

  const notifications = program.command('notifications').description('the notification outbox');
  addStoreOptions(
    notifications
      .command('list')
      .description('newest notifications queued for users and administrators')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--user <username>', 'only this user')
      .option('--limit <n>', 'how many', '50')
      .option('--json', 'print JSON'),
  ).action((options: Options & { user?: string }) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const user = options.user === undefined ? undefined : await findUser(services.db, tenant.id, options.user);
      const list = await listNotifications(services, tenant, { userId: user?.id, limit: Number(options.limit ?? 50) });
      print(options.json, list, () => list.map((n) => `${n.created_at}  ${n.status}  ${n.kind}  ${n.channel} → ${n.recipient ?? '(no e-mail address)'}  ${JSON.stringify(n.detail)}`).join('\n') || '(no notifications)');
    }),
  );
}
