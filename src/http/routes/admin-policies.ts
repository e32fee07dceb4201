import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MAX_LIST_ENTRIES } from '../../core/policies.js';
import {
  createNamedLocation,
  createPolicy,
  deleteNamedLocation,
  deletePolicy,
  getPolicy,
  listNamedLocations,
  listPolicies,
  reorderPolicies,
  updatePolicy,
} from '../../flows/policies.js';
import { previewPreauth } from '../../flows/preauth.js';
import type { Services } from '../../services.js';
import { adminTenant } from '../admin-context.js';
import { ErrorBody, Nullable, TenantQuery } from '../schemas.js';

/**
 * Conditional access policies and named locations (issue 5 item 9): ordered rules that preauth
 * consults, the first that applies deciding (core/policies.ts says why), and an evaluation that
 * answers "what would happen if this user signed in from here" without side effects.
 */
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };
const security = [{ bearer: [] }];
const tags = ['Admin: conditional access'];

const Names = Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1, maxItems: MAX_LIST_ENTRIES });
const IncludeExclude = (what: string) =>
  Type.Object({ include: Type.Optional(Names), exclude: Type.Optional(Names) }, { additionalProperties: false, description: `${what}: include leaves out everyone not named; exclude leaves out those named` });
const Conditions = Type.Object(
  {
    users: Type.Optional(IncludeExclude('usernames')),
    groups: Type.Optional(IncludeExclude('group names (the users’ groups)')),
    applications: Type.Optional(IncludeExclude('application names or ids')),
    client_types: Type.Optional(Type.Array(Type.Union([Type.Literal('browser'), Type.Literal('legacy')]), { minItems: 1, maxItems: 2 })),
    locations: Type.Optional(IncludeExclude('named locations, "trusted" (trusted IPs and trusted named locations) or CIDR ranges')),
  },
  { additionalProperties: false, description: 'an absent condition matches every sign-in' },
);
const Grant = Type.Union([Type.Literal('block'), Type.Literal('require_mfa'), Type.Literal('require_phishing_resistant'), Type.Literal('allow_without_mfa')]);
const Policy = Type.Object({
  id: Type.String(),
  name: Type.String(),
  position: Type.Integer(),
  enabled: Type.Boolean(),
  grant: Type.String(),
  exclude_group: Nullable(Type.String()),
  conditions: Conditions,
  created_at: Type.String(),
  updated_at: Type.String(),
});
const NamedLocation = Type.Object({ id: Type.String(), name: Type.String(), ranges: Type.Array(Type.String()), trusted: Type.Boolean(), created_at: Type.String() });
const RefParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100, description: 'id or name' }) });
const Decision = Type.Object({
  result: Type.String(),
  reason: Type.String(),
  methods: Type.Array(Type.Object({ id: Type.String(), type: Type.String(), label: Type.String(), default: Type.Boolean() })),
  trace: Type.Array(Type.Object({ check: Type.String(), said: Type.String(), decided: Type.Optional(Type.Boolean()) })),
});
const PolicyFields = {
  name: Type.String({ minLength: 1, maxLength: 100 }),
  position: Type.Integer({ minimum: 1, description: '1 = consulted first; default: last' }),
  enabled: Type.Boolean(),
  grant: Grant,
  exclude_group: Nullable(Type.String({ minLength: 1, maxLength: 128, description: 'Azure’s exclusion group: its members are never subject to the policy' })),
  conditions: Conditions,
};

export const adminPolicyRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.get(
    '/v1/admin/policies',
    { schema: { tags, security, summary: 'The tenant’s policies in the order preauth consults them', querystring: TenantQuery, response: { 200: Type.Object({ policies: Type.Array(Policy) }), ...errors } } },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return { policies: await listPolicies(services, tenant) };
    },
  );

  app.post(
    '/v1/admin/policies',
    {
      schema: {
        tags,
        security,
        summary: 'Add a policy (at most 100 per tenant)',
        description:
          'The first enabled policy whose conditions all match a sign-in decides it: block → deny policy_block; require_mfa → trusted IPs, remembered devices and cached successes no longer skip the second factor; require_phishing_resistant → deny phishing_resistant_required (until WebAuthn exists); allow_without_mfa → allow policy_allow. Names of users, groups, applications and locations must exist.',
        querystring: TenantQuery,
        body: Type.Object({ ...PolicyFields, position: Type.Optional(PolicyFields.position), enabled: Type.Optional(PolicyFields.enabled), exclude_group: Type.Optional(PolicyFields.exclude_group), conditions: Type.Optional(Conditions) }, { additionalProperties: false }),
        response: { 201: Policy, ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      return reply.code(201).send(await createPolicy(services, principal, tenant, request.body));
    },
  );

  app.post(
    '/v1/admin/policies/evaluate',
    {
      schema: {
        tags,
        security,
        summary: 'What preauth would answer if this user signed in from here — without side effects',
        description: 'The decision and its full trace, as POST /v1/preauth would give them now; no bypass is used, nothing is recorded or audited.',
        querystring: TenantQuery,
        body: Type.Object(
          {
            username: Type.String({ minLength: 1, maxLength: 256 }),
            application: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'name or id; without it, policies naming applications do not apply' })),
            client: Type.Optional(Type.Union([Type.Literal('browser'), Type.Literal('legacy')])),
            ip: Type.Optional(Type.String({ maxLength: 64 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Decision, ...errors },
      },
    },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return previewPreauth(services, tenant, request.body);
    },
  );

  app.put(
    '/v1/admin/policies/order',
    {
      schema: {
        tags,
        security,
        summary: 'Put all the tenant’s policies in a new order',
        querystring: TenantQuery,
        body: Type.Object({ ids: Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 100, description: 'every policy (id or name), first consulted first' }) }, { additionalProperties: false }),
        response: { 200: Type.Object({ policies: Type.Array(Policy) }), ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await adminTenant(services, request);
      return { policies: await reorderPolicies(services, principal, tenant, request.body.ids) };
    },
  );

  app.get(
    '/v1/admin/policies/:id',
    { schema: { tags, security, summary: 'One policy (by id or name)', params: RefParams, querystring: TenantQuery, response: { 200: Policy, ...errors } } },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return getPolicy(services, tenant, request.params.id);
    },
  );

  app.patch(
    '/v1/admin/policies/:id',
    {
      schema: {
        tags,
        security,
        summary: 'Change a policy: the fields given; `conditions` replaces them whole; `position` moves it',
        params: RefParams,
        querystring: TenantQuery,
        body: Type.Partial(Type.Object(PolicyFields), { additionalProperties: false }),
        response: { 200: Policy, ...errors },
      },
    },
    async (request) => {
      const { principal, tenant } = await adminTenant(services, request);
      return updatePolicy(services, principal, tenant, request.params.id, request.body);
    },
  );

  app.delete(
    '/v1/admin/policies/:id',
    { schema: { tags, security, summary: 'Remove a policy; those after it move up', params: RefParams, querystring: TenantQuery, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      await deletePolicy(services, principal, tenant, request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/admin/named-locations',
    { schema: { tags, security, summary: 'The tenant’s named locations', querystring: TenantQuery, response: { 200: Type.Object({ named_locations: Type.Array(NamedLocation) }), ...errors } } },
    async (request) => {
      const { tenant } = await adminTenant(services, request);
      return { named_locations: await listNamedLocations(services, tenant) };
    },
  );

  app.post(
    '/v1/admin/named-locations',
    {
      schema: {
        tags,
        security,
        summary: 'Name a set of IP ranges for policy conditions (trusted: counted as "trusted")',
        querystring: TenantQuery,
        body: Type.Object(
          { name: Type.String({ minLength: 1, maxLength: 100 }), ranges: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 100, description: 'CIDR ranges, IPv4 or IPv6' }), trusted: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        response: { 201: NamedLocation, ...errors },
      },
    },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      return reply.code(201).send(await createNamedLocation(services, principal, tenant, request.body));
    },
  );

  app.delete(
    '/v1/admin/named-locations/:id',
    { schema: { tags, security, summary: 'Remove a named location no policy uses (409 otherwise)', params: RefParams, querystring: TenantQuery, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const { principal, tenant } = await adminTenant(services, request);
      await deleteNamedLocation(services, principal, tenant, request.params.id);
      return reply.code(204).send(null);
    },
  );
};
