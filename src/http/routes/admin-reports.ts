import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TSchema } from 'typebox';
import { invalidInput } from '../../core/errors.js';
import { writeCsv } from '../../core/csv.js';
import { MAX_LIMIT, type ReportInput, type ReportName } from '../../flows/report-query.js';
import { appPasswordReport, blockedUserReport, bypassReport, fraudReport, signInReport, signInSummary, telephonyReport, type Report } from '../../flows/reports.js';
import { serverStatus } from '../../flows/server-status.js';
import { usageReport } from '../../flows/usage.js';
import type { Services } from '../../services.js';
import type { TenantRow } from '../../store/schema.js';
import { adminTenant } from '../admin-context.js';
import { requireAdmin } from '../auth.js';
import { ErrorBody, Nullable } from '../schemas.js';

/**
 * Reports for administrators (issue 5 item 11): JSON by default, CSV with `?format=csv` or
 * `Accept: text/csv` (a header row, RFC 4180 quoting, formula-like cells prefixed with ').
 * Paged: `limit` (1–1000, default 100) and the opaque `cursor` from `next_cursor` (in CSV: the
 * `X-Next-Cursor` header). Filters are checked by the flows: a bad one is a 400 naming it.
 */
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody };
const security = [{ bearer: [] }];
const tags = ['Admin: reports'];

const ReportQuery = Type.Object(
  {
    tenant: Type.Optional(Type.String({ minLength: 1, description: 'Tenant id or name (a tenant-scoped key may omit it).' })),
    from: Type.Optional(Type.String({ maxLength: 64, description: 'ISO 8601 time or date (UTC), inclusive' })),
    to: Type.Optional(Type.String({ maxLength: 64, description: 'ISO 8601 time or date (UTC), exclusive' })),
    username: Type.Optional(Type.String({ maxLength: 256 })),
    application: Type.Optional(Type.String({ maxLength: 256, description: 'application id or name' })),
    result: Type.Optional(Type.String({ maxLength: 32 })),
    method: Type.Optional(Type.String({ maxLength: 32 })),
    limit: Type.Optional(Type.String({ maxLength: 8, description: `rows per page, 1–${MAX_LIMIT} (default 100)` })),
    cursor: Type.Optional(Type.String({ maxLength: 2000, description: 'next_cursor of the previous page' })),
    format: Type.Optional(Type.String({ maxLength: 8, description: 'json (default) or csv' })),
  },
  { additionalProperties: false },
);

const page = <T extends TSchema>(row: T, extra: Record<string, TSchema> = {}) => Type.Object({ rows: Type.Array(row), next_cursor: Nullable(Type.String()), ...extra });
const S = Type.String();
const NS = Nullable(Type.String());

const SignIn = Type.Object({ at: S, username: NS, application: NS, kind: S, method: S, result: S, reason: NS, ip: NS, challenge_id: NS });
const Summary = Type.Object({ day: S, method: S, result: S, count: Type.Integer() });
const Fraud = Type.Object({ at: S, username: NS, application: NS, method: S, source: NS, ip: NS, challenge_id: NS, user_blocked: Type.Boolean() });
const Blocked = Type.Object({ username: S, display_name: NS, status: S, reason: S, blocked_until: NS, locked_until: NS, failed_count: Type.Integer() });
const Bypass = Type.Object({ id: S, username: S, reason: S, granted_by: S, status: S, granted_at: S, expires_at: S, used_at: NS, used_by: NS, revoked_at: NS });
const AppPasswordUse = Type.Object({ at: S, username: NS, application: NS, result: S, reason: NS, ip: NS });
const Telephony = Type.Object({ day: S, kind: S, country: NS, status: S, count: Type.Integer(), units: Type.Integer() });
const UsageDay = Type.Object({ day: S, enabled_users: Nullable(Type.Integer()), authentications: Type.Integer(), seats: Nullable(Type.Integer()), exceeded: Type.Boolean() });
const UsageCurrent = Type.Object({ enabled_users: Type.Integer(), seats: Nullable(Type.Integer()), exceeded: Type.Boolean(), exceeded_since: NS });

const Status = Type.Object({
  version: S,
  uptime_seconds: Nullable(Type.Integer()),
  started_at: NS,
  now: S,
  store: Type.Object({ dialect: S, location: NS }),
  migrations: Type.Object({ applied: Type.Array(S), pending: Type.Array(S) }),
  tenant: NS,
  queues: Type.Object({ challenges_open: Type.Integer(), notifications_queued: Type.Integer(), outbox_waiting: Type.Integer(), sign_ins_behind: Type.Integer() }),
  audit: Type.Object({ records: Type.Integer() }),
});

/** JSON or CSV, as the caller asked. */
function wantsCsv(request: FastifyRequest<{ Querystring: { format?: string } }>): boolean {
  const format = request.query.format;
  if (format !== undefined && format !== 'json' && format !== 'csv') throw invalidInput('format', 'must be json or csv');
  if (format !== undefined) return format === 'csv';
  return /\btext\/csv\b/i.test(request.headers.accept ?? '');
}

function sendReport<T>(reply: FastifyReply, csv: boolean, name: ReportName, report: Report<T> & Record<string, unknown>): unknown {
  const { columns, ...body } = report;
  if (!csv) return body;
  if (report.next_cursor !== null) void reply.header('x-next-cursor', report.next_cursor);
  return reply
    .type('text/csv; charset=utf-8')
    .header('content-disposition', `attachment; filename="${name}.csv"`)
    .send(writeCsv(columns, report.rows.map((row) => columns.map((c) => row[c] as string | number | boolean | null))));
}

type ReportFlow = (services: Services, tenant: TenantRow, input: ReportInput) => Promise<Report<never> & Record<string, unknown>>;

export const adminReportRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const reports: { name: ReportName; path: string; summary: string; description: string; flow: ReportFlow; schema: TSchema }[] = [
    {
      name: 'sign-ins',
      path: '/v1/admin/reports/sign-ins',
      summary: 'Sign-ins: every preauth that ended a sign-in, every verification and challenge outcome, app-password use',
      description: 'Newest first. Filters: from, to, username, application (id or name), result (approved, denied, fraud), method (none, totp, oath, sms, voice, push, code, app_password).',
      flow: signInReport as unknown as ReportFlow,
      schema: page(SignIn),
    },
    {
      name: 'summary',
      path: '/v1/admin/reports/sign-ins/summary',
      summary: 'Sign-ins counted by UTC day, method and result',
      description: 'Newest day first. The same filters as the sign-in report.',
      flow: signInSummary as unknown as ReportFlow,
      schema: page(Summary),
    },
    { name: 'fraud', path: '/v1/admin/reports/fraud', summary: 'Fraud alerts reported by users (0# on a call, the fraud code by text, "report fraud" in the app)', description: 'Newest first. Filters: from, to, username, application.', flow: fraudReport as unknown as ReportFlow, schema: page(Fraud) },
    {
      name: 'blocked-users',
      path: '/v1/admin/reports/blocked-users',
      summary: 'Users blocked (fraud report, administrator) or locked out now',
      description: 'By username. Filters: username, result (blocked, locked_out). Unblock and unlock are admin operations on the user.',
      flow: blockedUserReport as unknown as ReportFlow,
      schema: page(Blocked),
    },
    {
      name: 'bypasses',
      path: '/v1/admin/reports/bypasses',
      summary: 'One-time bypasses: granted, used, expired, revoked',
      description: 'Newest grant first. Filters: from, to (on the grant time), username, application (the one that used it), result (active, used, expired, revoked).',
      flow: bypassReport as unknown as ReportFlow,
      schema: page(Bypass),
    },
    { name: 'app-passwords', path: '/v1/admin/reports/app-passwords', summary: 'App-password sign-ins of legacy clients (single factor)', description: 'Newest first. Filters: from, to, username, application, result (approved, denied).', flow: appPasswordReport as unknown as ReportFlow, schema: page(AppPasswordUse) },
    {
      name: 'telephony',
      path: '/v1/admin/reports/telephony',
      summary: 'Texts and calls per UTC day, kind, country and status, with provider units',
      description: 'Newest day first. Filters: from, to, username, result (the provider status: sent, delivered, completed, failed, …).',
      flow: telephonyReport as unknown as ReportFlow,
      schema: page(Telephony),
    },
    {
      name: 'usage',
      path: '/v1/admin/reports/usage',
      summary: 'Usage per UTC day: enabled users, authentications, seats, and whether the seats are exceeded',
      description: 'Both Azure usage models: per enabled user (state enabled or enforced) and per authentication (second-factor verifications). from/to default to the last 30 days. `current` is the count now.',
      flow: usageReport as unknown as ReportFlow,
      schema: page(UsageDay, { current: UsageCurrent }),
    },
  ];
  for (const report of reports) {
    app.get(
      report.path,
      { schema: { tags, security, summary: report.summary, description: report.description, querystring: ReportQuery, produces: ['application/json', 'text/csv'], response: { 200: report.schema, ...errors } } },
      async (request, reply) => {
        const csv = wantsCsv(request);
        const { tenant } = await adminTenant(services, request);
        const { from, to, username, application, result, method, limit, cursor } = request.query;
        return sendReport(reply, csv, report.name, await report.flow(services, tenant, { from, to, username, application, result, method, limit, cursor }));
      },
    );
  }

  app.get(
    '/v1/admin/status',
    {
      schema: {
        tags,
        security,
        summary: 'Server status: version, uptime, store, migrations, queue depths',
        description: 'An administrator of every tenant sees every queue and where the store is; a tenant-scoped key sees its tenant’s queues only.',
        response: { 200: Status, ...errors },
      },
    },
    async (request) => serverStatus(services, await requireAdmin(services, request), process.uptime()),
  );
};
