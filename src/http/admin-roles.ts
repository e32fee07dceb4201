import { ADMIN_ROLES } from '../flows/api-keys.js';
import type { AdminRole } from '../store/schema.js';

/**
 * Which administrator role each admin route needs (issue 5 item 13; Azure's built-in roles).
 *
 * - `reader` reads (GET) and never a secret: routes whose answers carry one (the outbox holds
 *   texts with one-time codes) need more.
 * - `authentication_admin` manages users and everything of theirs — states, methods, phones,
 *   PINs, push devices, tokens, bypasses, app passwords, enrollment links, remembered devices,
 *   lock and block — and reads everything of its tenant.
 * - `global_admin` does everything: tenant settings, applications and their keys, administrator
 *   keys, tenants, encryption keys, webhooks, policies, named locations, greetings, templates.
 *
 * Deny by default: an admin route that no rule names needs `reader` to read and `global_admin`
 * for anything else, so a route added later is never open to less than the most powerful role
 * until someone decides otherwise here. Enforced for every request in one place
 * (src/http/auth.ts: an onRequest hook, before the body is even read), never in route files.
 * A tenant-scoped key acts on its tenant only whatever its role (flows/tenants.ts:
 * tenantForAdmin).
 */
export interface RoleRule {
  /** `read` = GET and HEAD; `write` = every other method. */
  readonly methods: 'read' | 'write' | 'any';
  /** A route URL as Fastify spells it (`/v1/admin/users/:user`); a trailing `/*` matches everything below. */
  readonly pattern: string;
  readonly role: AdminRole;
}

const USERS = 'authentication_admin';

/** The first rule that matches decides. */
export const ADMIN_ROUTE_ROLES: readonly RoleRule[] = [
  // The local outbox: its texts and calls carry one-time codes (a secret), and answering one
  // acts as the user's phone.
  { methods: 'any', pattern: '/v1/admin/outbox', role: USERS },
  { methods: 'any', pattern: '/v1/admin/outbox/*', role: USERS },
  // Users and everything of theirs.
  { methods: 'write', pattern: '/v1/admin/users', role: USERS },
  { methods: 'write', pattern: '/v1/admin/users/*', role: USERS },
  { methods: 'write', pattern: '/v1/admin/tokens/*', role: USERS },
  { methods: 'write', pattern: '/v1/admin/bypasses/*', role: USERS },
  { methods: 'write', pattern: '/v1/admin/registration-campaign/links', role: USERS },
  // "What would happen if this user signed in from here": a read with no side effects, sent as
  // POST for its body; a reader stays limited to GET.
  { methods: 'write', pattern: '/v1/admin/policies/evaluate', role: USERS },
];

const READ_METHODS = new Set(['GET', 'HEAD']);

export function isAdminRoute(url: string): boolean {
  return url === '/v1/admin' || url.startsWith('/v1/admin/');
}

function matches(pattern: string, url: string): boolean {
  return pattern.endsWith('/*') ? url.startsWith(pattern.slice(0, -1)) : url === pattern;
}

/** The least role a request to this route needs, and whether a rule named it or the default decided. */
export function roleDecision(method: string, url: string): { role: AdminRole; rule: RoleRule | undefined } {
  const read = READ_METHODS.has(method.toUpperCase());
  const rule = ADMIN_ROUTE_ROLES.find((r) => (r.methods === 'any' || (r.methods === 'read') === read) && matches(r.pattern, url));
  return { role: rule?.role ?? (read ? 'reader' : 'global_admin'), rule };
}

export function roleNeeded(method: string, url: string): AdminRole {
  return roleDecision(method, url).role;
}

/** "this needs the authentication_admin or global_admin role; this key is a reader" */
export function roleRefusal(needed: AdminRole, held: AdminRole): string {
  const enough = ADMIN_ROLES.slice(ADMIN_ROLES.indexOf(needed));
  const article = held === 'reader' ? 'a' : 'an';
  return `this needs the ${enough.join(' or ')} role; this key is ${article} ${held}`;
}
