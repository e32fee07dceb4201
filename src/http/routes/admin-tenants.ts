import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { CountersignError, invalidInput } from '../../core/errors.js';
import {
  createAdminKey,
  createApplication,
  createApplicationKey,
  deleteApplication,
  listAdminKeys,
  listApplicationKeys,
  listApplications,
  revokeAdminKey,
  revokeApplicationKey,
} from '../../flows/api-keys.js';
import { createTenant, deleteTenant, listTenants, publicTenant, tenantForAdmin, tenantSettings, updateTenantSettings } from '../../flows/tenants.js';
import type { Services } from '../../services.js';
import { listAudit, verifyAuditChain } from '../../store/audit-log.js';
import { requireAdmin } from '../auth.js';
import { adminTenant } from '../admin-context.js';
import { ErrorBody, IdParams, Nullable, Tenant, TenantQuery } from '../schemas.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };
const security = [{ bearer: [] }];

const Settings = Type.Object({
  lockout_threshold: Type.Integer(),
  lockout_reset_minutes: Type.Integer(),
  lockout_minutes: Type.Integer(),
  totp_window: Type.Integer(),
  hotp_look_ahead: Type.Integer(),
  allowed_methods: Type.Array(Type.String()),
  default_country: Type.String(),
  challenge_ttl_seconds: Type.Integer(),
  challenge_max_attempts: Type.Integer(),
  challenge_max_open: Type.Integer(),
  voice_mode: Type.String(),
  sms_mode: Type.String(),
  sms_two_way_timeout_seconds: Type.Integer(),
  caller_id: Nullable(Type.String()),
  phone_language: Type.String(),
  fraud_alert_enabled: Type.Boolean(),
  fraud_code: Type.String(),
  fraud_block_user: Type.Boolean(),
  fraud_block_days: Type.Integer(),
  fraud_notify_emails: Type.Array(Type.String()),
  phone_countries: Type.Array(Type.String()),
  phone_limit_per_number: Type.Integer(),
  phone_limit_per_user: Type.Integer(),
  phone_limit_per_ip: Type.Integer(),
  phone_limit_per_country: Type.Integer(),
  phone_limit_window_minutes: Type.Integer(),
  push_ttl_seconds: Type.Integer(),
  push_approve_only: Type.Boolean(),
  push_limit_per_5_minutes: Type.Integer(),
  push_limit_since_success: Type.Integer(),
  push_pin_mode: Type.Boolean(),
  app_passwords_allowed: Type.Boolean(),
  trusted_ips: Type.Array(Type.String()),
  remember_mfa_days: Type.Integer(),
  cache_seconds: Type.Integer(),
  cache_by_ip: Type.Boolean(),
  seats: Nullable(Type.Integer()),
  registration_campaign: Type.Object({ enabled: Type.Boolean(), method: Type.String(), snooze_days: Type.Integer(), excluded_groups: Type.Array(Type.String()) }),
});

export const adminTenantRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const tags = ['Admin: tenants'];
  app.get('/v1/admin/tenants', { schema: { tags, security, summary: 'List tenants', response: { 200: Type.Object({ tenants: Type.Array(Tenant) }), ...errors } } }, async (request) => {
    const principal = await requireAdmin(services, request);
    return { tenants: await listTenants(services, principal) };
  });

  app.post(
    '/v1/admin/tenants',
    { schema: { tags, security, summary: 'Create a tenant', body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }) }, { additionalProperties: false }), response: { 201: Tenant, ...errors } } },
    async (request, reply) => {
      const principal = await requireAdmin(services, request);
      return reply.code(201).send(await createTenant(services, principal, request.body.name));
    },
  );

  app.get('/v1/admin/tenants/:id', { schema: { tags, security, summary: 'Get a tenant by id or name', params: IdParams, response: { 200: Tenant, ...errors } } }, async (request) => {
    const principal = await requireAdmin(services, request);
    return publicTenant(await tenantForAdmin(services, principal, request.params.id));
  });

  app.delete('/v1/admin/tenants/:id', { schema: { tags, security, summary: 'Delete a tenant and everything in it', params: IdParams, response: { 204: Type.Null(), ...errors } } }, async (request, reply) => {
    const principal = await requireAdmin(services, request);
    await deleteTenant(services, principal, await tenantForAdmin(services, principal, request.params.id));
    return reply.code(204).send(null);
  });

  app.get('/v1/admin/settings', { schema: { tags, security, summary: 'The tenant’s service settings', querystring: TenantQuery, response: { 200: Settings, ...errors } } }, async (request) => {
    const { tenant } = await adminTenant(services, request);
    return tenantSettings(tenant);
  });

  app.patch(
    '/v1/admin/settings',
    {
      schema: {
        tags,
        security,
        summary: 'Change service settings; a refused change leaves every setting as it was',
        querystring: TenantQuery,
        body: Type.Record(Type.String(), Type.Unknown()),
        response: { 200: Settings, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await adminTenant(services, request);
      return updateTenantSettings(services, principal, tenant, request.body);
    },
  );

  const appTags = ['Admin: applications and keys'];
  const Application = Type.Object({ id: Type.String(), name: Type.String(), created_at: Type.String() });
  app.get('/v1/admin/applications', { schema: { tags: appTags, security, summary: 'List applications', querystring: TenantQuery, response: { 200: Type.Object({ applications: Type.Array(Application) }), ...errors } } }, async (request) => {
    const { tenant } = await adminTenant(services, request);
    return { applications: await listApplications(services, tenant) };
  });

  app.post(
    '/v1/admin/applications',
    {
      schema: {
        tags: appTags,
        security,
        summary: 'Create an application; its API key is shown once',
        querystring: TenantQuery,
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) }, { additionalProperties: false }),
        response: { 201: Type.Object({ id: Type.String(), name: Type.String(), api_key: Type.String() }), ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      return reply.code(201).send(await createApplication(services, principal, tenant, request.body.name));
    },
  );

  app.delete('/v1/admin/applications/:id', { schema: { tags: appTags, security, summary: 'Delete an application and its keys', params: IdParams, querystring: TenantQuery, response: { 204: Type.Null(), ...errors } } }, async (request, reply) => {
    const { principal, tenant } = await adminTenant(services, request);
    await deleteApplication(services, principal, tenant, request.params.id);
    return reply.code(204).send(null);
  });

  app.post(
    '/v1/admin/admin-keys',
    {
      schema: {
        tags: appTags,
        security,
        summary: 'Create an administrator key (for every tenant, or only one tenant) with a role; shown once',
        description:
          'Body {"name", "role"?: "global_admin" | "authentication_admin" | "reader" (default global_admin, what every key was before roles), "tenant"?: id or name (or ?tenant=)}. Only a global_admin creates keys, and a tenant’s key only for its tenant: a key never creates one with more power than its own.',
        querystring: TenantQuery,
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 100 }),
            // Checked by the flow, which names the roles in its 400 (a union here would say "must be equal to constant").
            role: Type.Optional(Type.String({ maxLength: 40, description: 'global_admin | authentication_admin | reader (default global_admin)' })),
            tenant: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ id: Type.String(), api_key: Type.String() }), ...errors },
      },
    },
    async (request, reply) => {
      const principal = await requireAdmin(services, request);
      const { query, body } = request;
      if (query.tenant !== undefined && body.tenant !== undefined && query.tenant !== body.tenant) throw invalidInput('tenant', 'given twice (body and ?tenant=) with different values');
      const ref = body.tenant ?? query.tenant;
      const tenant = ref === undefined && principal.tenantId === null ? null : await tenantForAdmin(services, principal, ref);
      return reply.code(201).send(await createAdminKey(services, principal, tenant?.id ?? null, body.name, body.role));
    },
  );

  // Keys are listed without their secret: these schemas are the allow-list of what leaves.
  const AdminKey = Type.Object({ id: Type.String(), name: Type.String(), tenant: Nullable(Type.String()), role: Type.String(), created_at: Type.String(), revoked_at: Nullable(Type.String()) });
  const ApplicationKey = Type.Object({ id: Type.String(), name: Type.String(), created_at: Type.String(), revoked_at: Nullable(Type.String()) });
  const CreatedKey = Type.Object({ id: Type.String(), api_key: Type.String() });
  const KeyParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }), keyId: Type.String({ minLength: 1, maxLength: 200 }) });

  app.get(
    '/v1/admin/admin-keys',
    {
      schema: {
        tags: appTags,
        security,
        summary: 'List administrator keys (never the keys themselves); a tenant administrator sees its tenant’s keys only',
        response: { 200: Type.Object({ admin_keys: Type.Array(AdminKey) }), ...errors },
      },
    },
    async (request) => {
      const principal = await requireAdmin(services, request);
      return { admin_keys: await listAdminKeys(services, principal) };
    },
  );

  app.delete(
    '/v1/admin/admin-keys/:id',
    {
      schema: {
        tags: appTags,
        security,
        summary: 'Revoke an administrator key (401 from its next request); the last active global_admin key for every tenant cannot be revoked (409)',
        params: IdParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const principal = await requireAdmin(services, request);
      await revokeAdminKey(services, principal, request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/admin/applications/:id/keys',
    {
      schema: {
        tags: appTags,
        security,
        summary: 'List an application’s keys (never the keys themselves)',
        params: IdParams,
        querystring: TenantQuery,
        response: { 200: Type.Object({ keys: Type.Array(ApplicationKey) }), ...errors },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return { keys: await listApplicationKeys(services, tenant, request.params.id) };
    },
  );

  app.post(
    '/v1/admin/applications/:id/keys',
    {
      schema: {
        tags: appTags,
        security,
        summary: 'Create a further key for an application (rotation); shown once; older keys stay valid until revoked',
        params: IdParams,
        querystring: TenantQuery,
        body: Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })) }, { additionalProperties: false }),
        response: { 201: CreatedKey, ...errors },
      },
      // The body is optional: no body at all means `{}` (a key named after the application).
      preValidation: async (request) => {
        if (request.body === undefined) request.body = {};
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      return reply.code(201).send(await createApplicationKey(services, principal, tenant, request.params.id, request.body.name));
    },
  );

  app.delete(
    '/v1/admin/applications/:id/keys/:keyId',
    {
      schema: {
        tags: appTags,
        security,
        summary: 'Revoke one key of an application (401 from its next request)',
        params: KeyParams,
        querystring: TenantQuery,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      await revokeApplicationKey(services, principal, tenant, request.params.id, request.params.keyId);
      return reply.code(204).send(null);
    },
  );

  const auditTags = ['Admin: audit'];
  app.get(
    '/v1/admin/audit',
    {
      schema: {
        tags: auditTags,
        security,
        summary: 'Audit records, newest first',
        querystring: Type.Object(
          { tenant: Type.Optional(Type.String()), before: Type.Optional(Type.Integer({ minimum: 1 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            records: Type.Array(
              Type.Object({
                seq: Type.Integer(),
                at: Type.String(),
                tenant_id: Type.Union([Type.String(), Type.Null()]),
                actor: Type.String(),
                action: Type.String(),
                target: Type.Union([Type.String(), Type.Null()]),
                detail: Type.Record(Type.String(), Type.Unknown()),
              }),
            ),
          }),
          ...errors,
        },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      const records = await listAudit(services.db, { tenantId: tenant.id, limit: request.query.limit ?? 100, ...(request.query.before === undefined ? {} : { afterSeq: request.query.before }) });
      return { records: records.map((r) => ({ ...r, tenant_id: r.tenantId })) };
    },
  );

  app.get(
    '/v1/admin/audit/verify',
    {
      schema: {
        tags: auditTags,
        security,
        summary: 'Check the whole audit chain (administrators of every tenant only)',
        response: { 200: Type.Object({ ok: Type.Boolean(), records: Type.Integer(), first_bad_seq: Type.Optional(Type.Integer()), problem: Type.Optional(Type.String()) }), ...errors },
      },
    },
    async (request) => {
      const principal = await requireAdmin(services, request);
      if (principal.tenantId !== null) throw new CountersignError('FORBIDDEN', 'only an administrator of every tenant can check the whole chain');
      const result = await verifyAuditChain(services.db, services.keyring.auditKey);
      return result.ok ? { ok: true, records: result.records } : { ok: false, records: result.records, first_bad_seq: result.firstBadSeq, problem: result.problem };
    },
  );
};
