import { Type } from 'typebox';

/**
 * Response and request schemas shared by routes. Response schemas are also the allow-list of
 * what leaves the server: Fastify's serializer drops every field a schema does not declare,
 * so a seed or hash on a row can never reach a client by accident.
 */
export const ErrorBody = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { $id: 'Error', description: 'Every error: a stable code and a message for people.' },
);

export const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

export const TenantQuery = Type.Object(
  { tenant: Type.Optional(Type.String({ minLength: 1, description: 'Tenant id or name (a tenant-scoped key may omit it).' })) },
  { additionalProperties: false },
);

export const Tenant = Type.Object({ id: Type.String(), name: Type.String(), created_at: Type.String() });

export const Phone = Type.Object({ type: Type.String(), number: Type.String(), verified: Type.Boolean() });

export const User = Type.Object({
  id: Type.String(),
  username: Type.String(),
  display_name: Nullable(Type.String()),
  email: Nullable(Type.String()),
  phones: Type.Array(Phone),
  groups: Type.Array(Type.String()),
  mfa_state: Type.String(),
  status: Type.String(),
  blocked_reason: Nullable(Type.String()),
  blocked_until: Nullable(Type.String()),
  locked_until: Nullable(Type.String()),
  failed_count: Type.Integer(),
  created_at: Type.String(),
  updated_at: Type.String(),
});

export const Method = Type.Object({
  id: Type.String(),
  type: Type.String(),
  label: Type.String(),
  default: Type.Boolean(),
  status: Type.String(),
  otp_kind: Type.String(),
  algorithm: Type.String(),
  digits: Type.Integer(),
  period: Nullable(Type.Integer()),
  serial: Nullable(Type.String()),
  manufacturer: Nullable(Type.String()),
  model: Nullable(Type.String()),
  created_at: Type.String(),
  last_used_at: Nullable(Type.String()),
});

export const Token = Type.Object({
  id: Type.String(),
  serial: Nullable(Type.String()),
  username: Nullable(Type.String()),
  otp_kind: Type.String(),
  algorithm: Type.String(),
  digits: Type.Integer(),
  period: Nullable(Type.Integer()),
  manufacturer: Nullable(Type.String()),
  model: Nullable(Type.String()),
  created_at: Type.String(),
});

export const RefusedLine = Type.Object({ line: Type.Integer(), reason: Type.String() });
export const RefusedEntry = Type.Object({ position: Type.String(), reason: Type.String() });

export const UserInputProperties = {
  display_name: Type.Optional(Nullable(Type.String({ maxLength: 256 }))),
  email: Type.Optional(Nullable(Type.String({ maxLength: 320 }))),
  phone: Type.Optional(Nullable(Type.String({ maxLength: 40 }))),
  phones: Type.Optional(Type.Array(Type.Object({ type: Type.String(), number: Type.String({ maxLength: 40 }) }, { additionalProperties: false }), { maxItems: 3 })),
  groups: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 200 })),
  mfa_state: Type.Optional(Type.String()),
};

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });
export const UserParams = Type.Object({ user: Type.String({ minLength: 1, maxLength: 256, description: 'User id or username' }) });
export const UserMethodParams = Type.Object({ user: Type.String({ minLength: 1, maxLength: 256 }), method: Type.String({ minLength: 1, maxLength: 64 }) });
