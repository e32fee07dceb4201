import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CountersignError } from '../core/errors.js';
import { parseReason, runAsActor, type ActorDetail } from '../flows/actor-context.js';
import { authenticateKey, roleAllows } from '../flows/api-keys.js';
import type { TenantRow } from '../store/schema.js';
import { actorOf, type Principal, type Services } from '../services.js';
import { isAdminRoute, roleNeeded, roleRefusal } from './admin-roles.js';

type AdminPrincipal = Extract<Principal, { kind: 'admin' }>;

/** The optional "why" of an admin request, recorded on its audit records. */
export const REASON_HEADER = 'x-countersign-reason';

/** Reads `Authorization: Bearer <key>` and returns who is calling, or throws 401/403. */
async function callerOf(services: Services, request: FastifyRequest): Promise<{ principal: Principal; tenant: TenantRow | undefined }> {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (match?.[1] === undefined) throw new CountersignError('UNAUTHORIZED', 'authorization: send "Authorization: Bearer <api key>"');
  const caller = await authenticateKey(services, match[1]);
  if (caller === undefined) throw new CountersignError('UNAUTHORIZED', 'authorization: the API key is not valid or was revoked');
  return caller;
}

/**
 * A header's text. Node hands header bytes over as latin1; a reason typed in any language
 * arrives as UTF-8, so bytes that are valid UTF-8 are read as such (and checked afterwards).
 */
function headerText(value: string | string[] | undefined): unknown {
  if (typeof value !== 'string') return value;
  const bytes = Buffer.from(value, 'latin1');
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : value;
}

/** Admin requests already authorized (by the hook, or a first requireAdmin), with their audit detail. */
const authorized = new WeakMap<FastifyRequest, { principal: AdminPrincipal; actor: ActorDetail }>();

/**
 * An administrator key whose role allows this route (src/http/admin-roles.ts), or 401/403; and
 * a valid X-Countersign-Reason, if any, or 400. Read once per request.
 */
export async function requireAdmin(services: Services, request: FastifyRequest): Promise<AdminPrincipal> {
  const known = authorized.get(request);
  if (known !== undefined) return known.principal;
  const { principal } = await callerOf(services, request);
  if (principal.kind !== 'admin') throw new CountersignError('FORBIDDEN', 'this endpoint needs an administrator key');
  const needed = roleNeeded(request.method, request.routeOptions.url ?? request.url);
  if (!roleAllows(principal.role, needed)) throw new CountersignError('FORBIDDEN', roleRefusal(needed, principal.role));
  const reason = parseReason('X-Countersign-Reason', headerText(request.headers[REASON_HEADER]));
  // Who: the actor `admin-key:<id>` on every record; the key's name and role are on its own
  // `admin_key.created` record (neither ever changes), so they are not repeated on each one.
  // Why: the reason, when given, on every record of this request.
  authorized.set(request, { principal, actor: { actor: actorOf(principal), detail: reason === undefined ? {} : { actor_reason: reason } } });
  return principal;
}

/**
 * Authorization of every admin route in one place: before the body is read, a request to a
 * `/v1/admin/` route must carry an administrator key whose role allows it — whatever the route
 * file does, and for routes added later too (deny by default, see admin-roles.ts). The handler
 * then runs as that key (flows/actor-context.ts), so its audit records say who (key id, name,
 * role) and why (the reason header).
 */
export function installAdminAuthorization(app: FastifyInstance, services: Services): void {
  app.addHook('onRequest', async (request) => {
    const url = request.routeOptions.url;
    if (url !== undefined && isAdminRoute(url)) await requireAdmin(services, request);
  });
  app.addHook('preHandler', (request, _reply, done) => {
    const known = authorized.get(request);
    // Only a request that gave a reason runs in an async context: on Node 20 the first
    // AsyncLocalStorage.run turns on promise hooks for the whole process, a cost every later
    // request (the Auth API's too) would pay for nothing.
    if (known === undefined || Object.keys(known.actor.detail).length === 0) done();
    else runAsActor(known.actor, () => done());
  });
}

/** An application key and the tenant it belongs to. */
export async function requireApplication(services: Services, request: FastifyRequest): Promise<{ principal: Extract<Principal, { kind: 'application' }>; tenant: TenantRow }> {
  const { principal, tenant } = await callerOf(services, request);
  if (principal.kind !== 'application' || tenant === undefined) throw new CountersignError('FORBIDDEN', 'the Auth API needs an application key (countersign app create)');
  return { principal, tenant };
}
